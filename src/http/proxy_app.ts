/**
 * The HTTP surface of server mode, declared in one place: for the default server `/sse`, `/messages/`
 * and `/mcp`; for each named server the same under `/servers/NAME/`; `/status` for health; CORS when
 * `--allow-origin` is given.
 *
 * @module
 */

import { Hono } from "hono";
import { cors } from "hono/cors";
import type { Logger } from "@logtape/logtape";
import type { SessionSource } from "../shared_server.ts";
import type { ModernServer } from "../modern_server.ts";
import type { ServerStatus } from "../supervised_server.ts";
import { apiKeyAuth, apiKeyRefusal } from "./api_key_auth.ts";
import { hostCheck, hostRefusal } from "./host_check.ts";
import { limitPostBody } from "./request_body.ts";
import { SessionLimit } from "./session_limit.ts";
import { type LegacySseEndpoint, legacySseEndpoint } from "./legacy_sse_endpoint.ts";
import { type StreamableHttpEndpoint, streamableHttpEndpoint } from "./streamable_http_endpoint.ts";
import { jsonRpcErrorResponse } from "./streamable_http_session.ts";

/** Options of {@link createProxyApp}. */
export interface ProxyAppOptions {
  /** The servers to serve: the one named {@link rootServer} at `/`, the others at `/servers/NAME/`. */
  servers: SessionSource[];
  /** Each server's child of the stateless revision, by name. */
  modernServers?: ReadonlyMap<string, ModernServer>;
  /** The name of the server given as the command (the default server), if one was; see {@link mountPrefix}. */
  rootServer?: string;
  stateless: boolean;
  /** Streamable HTTP sessions idle this long are closed; 0: never. */
  sessionIdleTimeoutMs: number;
  /** `--allow-origin` values; empty: no CORS headers at all. */
  allowOrigins: string[];
  exposeHeaders: string[];
  /** Host names accepted in `Host` and `Origin` (DNS-rebinding protection); undefined: any. */
  allowedHosts?: readonly string[];
  /** Each server's state, by name, for `/status` and `/health`. */
  status(): Record<string, ServerStatus>;
  /** `--api-key`: when any, every request but OPTIONS and `/health` must carry one. */
  apiKeys: readonly string[];
  maxBodyBytes: number;
  /** `--max-sessions`; 0: no limit. */
  maxSessions: number;
  /** An SSE client this many bytes behind its stream is dropped. */
  maxBacklogBytes: number;
  logger: Logger;
}

/** The app and what shutdown needs from it. */
export interface ProxyApp {
  fetch(request: Request): Response | Promise<Response>;
  /** Ends every open SSE stream and session, so that the HTTP server can stop. */
  closeAll(): Promise<void>;
}

/** The head of `/sse`'s answer, for a HEAD. */
const SSE_HEAD: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream",
  "Cache-Control": "no-cache",
};

/** 405, with the methods the path takes. */
function methodNotAllowed(allow: string): Response {
  return new Response("Method Not Allowed", { status: 405, headers: { Allow: allow } });
}

/**
 * Where a server's endpoints are mounted: `""` for the default server (`rootServer`, the name of the one
 * given as the command), `/servers/NAME` for a named one, even one named "default" when no command was
 * given.
 */
export function mountPrefix(serverName: string, rootServer: string | undefined): string {
  return serverName === rootServer ? "" : `/servers/${serverName}`;
}

/** The path of a request URL, without query or fragment. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start === -1) return "/";
  let end = url.indexOf("?", start);
  if (end === -1) end = url.length;
  const hash = url.indexOf("#", start);
  if (hash !== -1 && hash < end) end = hash;
  return url.slice(start, end);
}

/**
 * A time as Python's `datetime.isoformat()` writes one in UTC, as the Python version's `/status` gives it:
 * `2026-12-07T11:40:01.662000+00:00` (microseconds; none when there are none), which Python before 3.11
 * reads back, unlike a `Z`.
 */
export function pythonIsoFormat(ms: number): string {
  const iso = new Date(ms).toISOString();
  const fraction = iso.slice(20, 23) === "000" ? "" : `.${iso.slice(20, 23)}000`;
  return `${iso.slice(0, 19)}${fraction}+00:00`;
}

/** Builds the Hono app of server mode. */
export function createProxyApp(options: ProxyAppOptions): ProxyApp {
  const { logger } = options;
  const app = new Hono();
  const sessionLimit = new SessionLimit(options.maxSessions);
  const endpoints: { sse: LegacySseEndpoint; mcp: StreamableHttpEndpoint }[] = [];
  let lastActivity = Date.now();
  const touch = () => {
    lastActivity = Date.now();
  };

  if (options.allowedHosts !== undefined) {
    app.use("*", hostCheck({ allowedHosts: options.allowedHosts, allowedOrigins: options.allowOrigins }));
  }
  if (options.allowOrigins.length > 0) {
    app.use(
      "*",
      cors({
        origin: options.allowOrigins.includes("*") ? "*" : options.allowOrigins,
        allowMethods: ["GET", "POST", "DELETE", "OPTIONS"],
        exposeHeaders: options.exposeHeaders,
        maxAge: 86400,
      }),
    );
  }

  // The reference's two keys first; `servers` adds each server's state.
  if (options.apiKeys.length > 0) app.use("*", apiKeyAuth(options.apiKeys));
  // Only a POST's body is ever read.
  app.use(
    "*",
    limitPostBody(
      options.maxBodyBytes,
      () =>
        jsonRpcErrorResponse(413, -32600, `Payload Too Large: the limit is ${options.maxBodyBytes} bytes`),
    ),
  );

  app.get("/status", (c) =>
    c.json({
      api_last_activity: pythonIsoFormat(lastActivity),
      server_instances: Object.fromEntries(options.servers.map((server) => [server.name, "configured"])),
      servers: options.status(),
    }));
  app.get("/health", (c) => {
    const servers = options.status();
    // A child for revision 2026-07-28 counts once it serves (one that does not is stopped on purpose).
    const healthy = Object.values(servers).every((server) =>
      server.state === "running" && server.initialize_overdue === undefined &&
      (server.modern?.process?.state ?? "running") === "running"
    );
    return c.json({ status: healthy ? "ok" : "degraded", servers }, healthy ? 200 : 503);
  });
  for (const path of ["/status", "/health"]) app.all(path, () => methodNotAllowed("GET, HEAD"));

  // The per-message routes, also reachable without the middleware chain (see `fetch` below).
  const direct = new Map<string, (request: Request) => Promise<Response> | undefined>();

  for (const server of options.servers) {
    const prefix = mountPrefix(server.name, options.rootServer);
    const sse = legacySseEndpoint(server, {
      messagesPath: `${prefix}/messages/`,
      sessionLimit,
      maxBacklogBytes: options.maxBacklogBytes,
      logger,
    });
    const mcp = streamableHttpEndpoint(server, {
      modern: options.modernServers?.get(server.name),
      stateless: options.stateless,
      idleTimeoutMs: options.sessionIdleTimeoutMs,
      sessionLimit,
      maxBacklogBytes: options.maxBacklogBytes,
      logger,
    });
    endpoints.push({ sse, mcp });
    app.get(`${prefix}/sse`, (c) => {
      // A HEAD says what a GET would get, and opens no session: its stream would have no reader, and
      // the session would stay until the proxy stops (found by QA: HEADs filled --max-sessions).
      if (c.req.method === "HEAD") {
        return sessionLimit.full ? sessionLimit.refusal() : new Response(null, { headers: SSE_HEAD });
      }
      touch();
      return sse.openStream(c.req.raw);
    });
    app.all(`${prefix}/sse`, () => methodNotAllowed("GET, HEAD"));
    const handleMcp = (request: Request) => {
      touch();
      return mcp.handle(request);
    };
    for (const path of [`${prefix}/mcp`, `${prefix}/mcp/`]) {
      app.all(path, (c) => handleMcp(c.req.raw));
      direct.set(path, handleMcp);
    }
    for (const path of [`${prefix}/messages/`, `${prefix}/messages`]) {
      app.post(path, (c) => sse.postMessage(c.req.raw));
      app.all(path, () => methodNotAllowed("POST"));
      direct.set(path, (request) => request.method === "POST" ? sse.postMessage(request) : undefined);
    }
  }

  app.notFound((c) => c.text("Not Found", 404));
  app.onError((error, c) => {
    logger.error("HTTP {method} {path} failed: {error}", { method: c.req.method, path: c.req.path, error });
    return c.text("Internal Server Error", 500);
  });

  // What the middleware chain would do to a message, done inline: the same checks, and a body limit
  // known from Content-Length. A request that fails a check, or that needs CORS headers or a streamed
  // body limit, goes through the app, which answers it as usual.
  const refusedHost = options.allowedHosts === undefined
    ? undefined
    : hostRefusal({ allowedHosts: options.allowedHosts, allowedOrigins: options.allowOrigins });
  const refusedKey = options.apiKeys.length > 0 ? apiKeyRefusal(options.apiKeys) : undefined;
  const directly = options.allowOrigins.length === 0;
  function withinBodyLimit(request: Request): boolean {
    // Only a POST's body is ever read (see `limitBody`).
    if (request.method !== "POST") return true;
    // Each header by `get`, which Deno reads alone: `has` first lists every header by its lower-cased name.
    const length = request.headers.get("content-length");
    return length !== null && Number(length) <= options.maxBodyBytes &&
      request.headers.get("transfer-encoding") === null;
  }

  return {
    fetch(request: Request): Response | Promise<Response> {
      const route = directly ? direct.get(pathOf(request.url)) : undefined;
      if (
        route === undefined || refusedHost?.(request.headers) !== undefined ||
        refusedKey?.(request.headers) !== undefined || !withinBodyLimit(request)
      ) {
        return app.fetch(request);
      }
      const response = route(request);
      if (response === undefined) return app.fetch(request);
      return response.catch((error) => {
        logger.error("HTTP {method} {path} failed: {error}", {
          method: request.method,
          path: pathOf(request.url),
          error,
        });
        return new Response("Internal Server Error", { status: 500 });
      });
    },
    async closeAll() {
      for (const { sse } of endpoints) sse.closeAll();
      await Promise.all(endpoints.map(({ mcp }) => mcp.closeAll()));
    },
  };
}
