/**
 * DNS-rebinding protection. A web page on a hostile domain can make the browser resolve that domain to
 * 127.0.0.1 and reach a local MCP server; the browser still sends the hostile name in `Host` and
 * `Origin`. So a server bound to a loopback address answers 403 to any request naming another host.
 *
 * @module
 */

import type { MiddlewareHandler } from "hono";

/** Host names always accepted by a server bound to a loopback address. */
export const LOOPBACK_NAMES: readonly string[] = ["localhost", "127.0.0.1", "[::1]"];

/** True for `127.0.0.0/8`, `::1` and `localhost`: addresses only this machine can reach. */
export function isLoopbackAddress(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Options of {@link hostCheck}. */
export interface HostCheckOptions {
  /** Lower-case host names (no port) accepted in `Host` and `Origin`; IPv6 in brackets. */
  allowedHosts: readonly string[];
  /** `--allow-origin` values: origins trusted for CORS are trusted here too (`*`: any origin). */
  allowedOrigins: readonly string[];
}

/** The host name of a `Host` header value (`name`, `name:port`, `[v6]:port`), lower-cased. */
function hostnameOf(host: string): string {
  const value = host.trim().toLowerCase();
  if (value.startsWith("[")) return value.slice(0, value.indexOf("]") + 1);
  const colon = value.indexOf(":");
  return colon === -1 ? value : value.slice(0, colon);
}

function forbidden(message: string): Response {
  return new Response(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }), {
    status: 403,
    headers: { "Content-Type": "application/json" },
  });
}

/**
 * Checks `Host` and, when present, `Origin` against the allowed hosts: returns why the request is refused,
 * or undefined when it may pass.
 */
export function hostRefusal(options: HostCheckOptions): (headers: Headers) => string | undefined {
  const hosts = new Set(options.allowedHosts);
  const anyOrigin = options.allowedOrigins.includes("*");
  const origins = new Set(options.allowedOrigins);
  return (headers) => {
    const host = headers.get("host");
    if (host !== null && !hosts.has(hostnameOf(host))) {
      return `Forbidden: Host ${JSON.stringify(host)} is not allowed (see --allow-host)`;
    }
    const origin = headers.get("origin");
    if (origin !== null && !anyOrigin && !origins.has(origin)) {
      let hostname: string | undefined;
      try {
        hostname = new URL(origin).hostname;
      } catch {
        hostname = undefined;
      }
      if (hostname === undefined || !hosts.has(hostname.toLowerCase())) {
        return `Forbidden: Origin ${JSON.stringify(origin)} is not allowed (see --allow-origin)`;
      }
    }
    return undefined;
  };
}

/**
 * Answers 403 to a request whose `Host`, or `Origin` when present, names a host that is not allowed.
 *
 * @example
 * ```ts
 * app.use("*", hostCheck({ allowedHosts: [...LOOPBACK_NAMES, "box.local"], allowedOrigins: [] }));
 * ```
 */
export function hostCheck(options: HostCheckOptions): MiddlewareHandler {
  const refusal = hostRefusal(options);
  return async (c, next) => {
    const reason = refusal(c.req.raw.headers);
    if (reason !== undefined) return forbidden(reason);
    await next();
  };
}
