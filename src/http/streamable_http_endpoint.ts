/**
 * The Streamable HTTP transport (`…/mcp`) for one shared server. Each client session is one SDK
 * `WebStandardStreamableHTTPServerTransport`, which handles the wire rules (Accept and Content-Type
 * checks, `Mcp-Session-Id`, `MCP-Protocol-Version`, the GET stream, DELETE, keep-alive); its messages are
 * relayed raw to a session of the {@link SharedServer}.
 *
 * Answers stream as SSE so that what belongs to a request (progress, log messages, the server's own
 * requests) travels on that request's stream before its answer.
 *
 * With `stateless`, every POST is a session of its own that ends with its last answer.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { type JsonRpcMessage, type RequestId, reusedRequestId } from "../jsonrpc.ts";
import { type JSONRPCMessage, WebStandardStreamableHTTPServerTransport } from "../mcp_sdk.ts";
import {
  type ServerSession,
  type SessionPeer,
  type SessionSource,
  SessionUnavailableError,
} from "../shared_server.ts";
import { onStreamEnd } from "../stream_end.ts";
import { BoundedEventStore } from "./event_store.ts";
import type { SessionLimit } from "./session_limit.ts";

/** How long a client waits before reconnecting a stream the server closed (the SSE `retry` field). */
const RETRY_INTERVAL_MS = 1000;

/** Options of {@link streamableHttpEndpoint}. */
export interface StreamableHttpEndpointOptions {
  stateless: boolean;
  /** A stateful session without requests (and none running) for this long is closed; 0: never. */
  idleTimeoutMs: number;
  sessionLimit: SessionLimit;
  maxBodyBytes: number;
  logger: Logger;
}

/** The handler of one server's Streamable HTTP endpoint. */
export interface StreamableHttpEndpoint {
  /** Handles POST, GET and DELETE on `…/mcp`. */
  handle(request: Request): Promise<Response>;
  /** Ends every session (at shutdown). */
  closeAll(): Promise<void>;
  /** Number of open sessions. */
  readonly size: number;
}

type Transport = WebStandardStreamableHTTPServerTransport;

function jsonRpcErrorResponse(
  status: number,
  code: number,
  message: string,
  headers?: HeadersInit,
): Response {
  return new Response(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/**
 * Joins an SDK transport to a session: what the session delivers goes out through the transport. The
 * transport writes after an await (its event store), so sends still under way are kept in `inFlight`
 * for shutdown to wait for.
 */
function transportPeer(transport: Transport, logger: Logger, inFlight: Set<Promise<void>>): SessionPeer {
  return {
    deliver(message: JsonRpcMessage, relatedRequestId?: RequestId) {
      const sent: Promise<void> = transport.send(message as JSONRPCMessage, { relatedRequestId })
        .catch((error) =>
          logger.debug("message for a closed stream of session {id} dropped: {error}", {
            id: transport.sessionId ?? "(stateless)",
            error,
          })
        )
        .finally(() => inFlight.delete(sent));
      inFlight.add(sent);
    },
    requestAbandoned(clientId: RequestId) {
      transport.closeSSEStream(clientId);
    },
  };
}

/** Creates the Streamable HTTP endpoint of `server`. */
export function streamableHttpEndpoint(
  server: SessionSource,
  options: StreamableHttpEndpointOptions,
): StreamableHttpEndpoint {
  const { logger, idleTimeoutMs, sessionLimit, maxBodyBytes } = options;
  const sessions = new Map<string, { transport: Transport; session: ServerSession; lastSeen: number }>();
  const sweeper = idleTimeoutMs > 0
    ? setInterval(() => closeIdleSessions(), Math.min(Math.max(idleTimeoutMs / 4, 50), 30_000))
    : undefined;

  function closeIdleSessions(): void {
    const now = Date.now();
    for (const [id, entry] of sessions) {
      if (now - entry.lastSeen < idleTimeoutMs || entry.session.hasRequestInFlight) continue;
      logger.info("Streamable HTTP session {id} of {server} idle for {seconds} s: closed", {
        id,
        server: server.name,
        seconds: Math.round((now - entry.lastSeen) / 1000),
      });
      entry.transport.close();
    }
  }
  const statelessInFlight = new Set<{ transport: Transport; session: ServerSession }>();
  const sendsInFlight = new Set<Promise<void>>();

  function connect(transport: Transport, stateless: boolean): ServerSession {
    const session = server.openSession(transportPeer(transport, logger, sendsInFlight), {
      label: stateless ? "mcp (stateless)" : "mcp",
      stateless,
    });
    transport.onmessage = (message) => session.handleClientMessage(message as JsonRpcMessage);
    transport.onerror = (error) => logger.debug("Streamable HTTP: {error}", { error });
    return session;
  }

  async function handleStateful(request: Request): Promise<Response> {
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId !== null) {
      const entry = sessions.get(sessionId);
      if (entry === undefined) return jsonRpcErrorResponse(404, -32001, "Session not found");
      entry.lastSeen = Date.now();
      if (request.method !== "POST") return await entry.transport.handleRequest(request);
      // Parsed here once, to refuse a request id already in flight: the transport routes answers to
      // streams by id, so a second request with the same id would leave the first one unanswered.
      let parsedBody: unknown;
      try {
        parsedBody = JSON.parse(await request.text());
      } catch {
        return jsonRpcErrorResponse(400, -32700, "Parse error: Invalid JSON");
      }
      const messages = Array.isArray(parsedBody) ? parsedBody : [parsedBody];
      const reused = reusedRequestId(messages, (id) => entry.session.isInFlight(id));
      if (reused !== undefined) {
        return jsonRpcErrorResponse(
          400,
          -32600,
          `Invalid Request: id ${JSON.stringify(reused)} is already used by a request in flight`,
        );
      }
      return await entry.transport.handleRequest(request, { parsedBody });
    }
    if (request.method !== "POST") {
      return jsonRpcErrorResponse(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    if (!sessionLimit.tryOpen()) return sessionLimit.refusal();
    const transport: Transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      maxRequestBodySize: maxBodyBytes,
      // Resumability: priming events, and replay after Last-Event-ID.
      eventStore: new BoundedEventStore(),
      retryInterval: RETRY_INTERVAL_MS,
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, session, lastSeen: Date.now() });
        logger.debug("Streamable HTTP session {id} of {server} opened", { id, server: server.name });
      },
    });
    const session = connect(transport, false);
    transport.onclose = () => {
      sessionLimit.close();
      session.close();
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
      logger.debug("Streamable HTTP session {id} of {server} closed", {
        id: transport.sessionId,
        server: server.name,
      });
    };
    try {
      return await transport.handleRequest(request);
    } finally {
      // A first POST that was not an initialize was refused by the transport: nothing to keep.
      if (transport.sessionId === undefined) await transport.close();
    }
  }

  async function handleStateless(request: Request): Promise<Response> {
    if (request.method !== "POST") {
      return jsonRpcErrorResponse(405, -32000, "Method not allowed: this server is stateless", {
        Allow: "POST",
      });
    }
    if (!sessionLimit.tryOpen()) return sessionLimit.refusal();
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      maxRequestBodySize: maxBodyBytes,
    });
    const entry = { transport, session: connect(transport, true) };
    statelessInFlight.add(entry);
    const finish = () => {
      sessionLimit.close();
      statelessInFlight.delete(entry);
      entry.session.close();
      transport.close().catch(() => {});
    };
    const response = await transport.handleRequest(request);
    if (response.body === null) {
      finish();
      return response;
    }
    return new Response(onStreamEnd(response.body, finish), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  return {
    get size() {
      return options.stateless ? statelessInFlight.size : sessions.size;
    },

    async handle(request: Request): Promise<Response> {
      try {
        return options.stateless ? await handleStateless(request) : await handleStateful(request);
      } catch (error) {
        if (error instanceof SessionUnavailableError) return jsonRpcErrorResponse(503, -32000, error.message);
        logger.error("Streamable HTTP request to {server} failed: {error}", { server: server.name, error });
        return jsonRpcErrorResponse(500, -32603, "Internal error");
      }
    },

    async closeAll(): Promise<void> {
      clearInterval(sweeper);
      // Let the last messages (error answers at shutdown) reach their streams before they close.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all(sendsInFlight),
        new Promise((resolve) => timer = setTimeout(resolve, 500)),
      ]);
      clearTimeout(timer);
      const transports = [...sessions.values(), ...statelessInFlight].map((entry) => entry.transport);
      await Promise.all(transports.map((transport) => transport.close()));
    },
  };
}
