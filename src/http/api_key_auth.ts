/**
 * Inbound authentication for server mode: with `--api-key` (or env `MCP_PROXY_API_KEY`), every request
 * must carry one of the keys, as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Keys are compared in
 * constant time (as SHA-256 digests, so that their lengths do not show either); several keys allow
 * rotation. Preflight requests (OPTIONS) and `/health` need no key.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";

function digest(value: string): Uint8Array {
  return createHash("sha256").update(value).digest();
}

/** The key a request presents, if any. */
function presentedKey(
  authorization: string | undefined,
  apiKeyHeader: string | undefined,
): string | undefined {
  const bearer = authorization === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
  return bearer ?? apiKeyHeader?.trim();
}

/**
 * Checks the key a request presents against `keys`: returns why it is refused, or undefined when it
 * carries one of them.
 */
export function apiKeyRefusal(keys: readonly string[]): (headers: Headers) => string | undefined {
  // An empty key would let in whoever sends an empty header: the command line refuses one, and so does this.
  const digests = keys.filter((key) => key !== "").map(digest);
  return (headers) => {
    const key = presentedKey(
      headers.get("authorization") ?? undefined,
      headers.get("x-api-key") ?? undefined,
    );
    if (key === undefined || key === "") {
      return "Unauthorized: send an API key as Authorization: Bearer KEY or X-API-Key: KEY";
    }
    const presented = digest(key);
    // Every key is compared, so that the time taken does not tell which one matched.
    let accepted = false;
    for (const known of digests) accepted = timingSafeEqual(known, presented) || accepted;
    return accepted ? undefined : "Unauthorized: the API key is not valid";
  };
}

/**
 * Answers 401 (with `WWW-Authenticate`) to a request without one of `keys`.
 *
 * @example
 * ```ts
 * app.use("*", apiKeyAuth(["k1", "k2"]));
 * ```
 */
export function apiKeyAuth(keys: readonly string[]): MiddlewareHandler {
  const refusal = apiKeyRefusal(keys);
  return async (c, next) => {
    if (c.req.method === "OPTIONS" || c.req.path === "/health") return await next();
    const message = refusal(c.req.raw.headers);
    if (message === undefined) return await next();
    return new Response(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }), {
      status: 401,
      headers: { "Content-Type": "application/json", "WWW-Authenticate": 'Bearer realm="mcp-proxy"' },
    });
  };
}
