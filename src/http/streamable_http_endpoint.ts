/**
 * The Streamable HTTP transport (`…/mcp`, MCP 2025-03-26 and later) for one server: the wire rules
 * (methods, `Accept` and `Content-Type`, `Mcp-Session-Id`, `MCP-Protocol-Version`, batches, the one
 * `initialize` that opens a session) are checked here, and each session's traffic is handled by a
 * {@link StreamableSession}.
 *
 * With `stateless`, every POST is a session of its own that ends with its last answer.
 *
 * A POST of the stateless revision (2026-07-28 and later; see `protocol_era.ts`) is such a session too,
 * always, on the server's child of that revision (`modern_server.ts`), once its headers agree with its body.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import {
  batchLines,
  isBatch,
  isRequest,
  type JsonRpcMessage,
  oneMessageLine,
  parseMessages,
  reusedRequestId,
  singleMessageLine,
} from "../jsonrpc.ts";
import { bodyAsLine } from "../large_answer.ts";
import { DEFAULT_HTTP_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from "../protocol_versions.ts";
import { type SessionSource, SessionUnavailableError } from "../shared_server.ts";
import { isModernVersion } from "../modern_headers.ts";
import type { ModernServer } from "../modern_server.ts";
import { eraOf, HEADER_MISMATCH } from "./protocol_era.ts";
import { bodyText, NOT_UTF8, requestBody, STALLED_BODY, UNREADABLE_BODY } from "./request_body.ts";
import type { SessionLimit } from "./session_limit.ts";
import { jsonRpcErrorResponse, StreamableSession } from "./streamable_http_session.ts";
import { waitsForEarlierPosts } from "./arrival_order.ts";

/** The most messages one POST may carry (as the SDK allows). */
export const MAX_BATCH_SIZE = 100;

/** Options of {@link streamableHttpEndpoint}. */
export interface StreamableHttpEndpointOptions {
  /** The server's child of the stateless revision; without it, that revision's requests get `-32022`. */
  modern?: ModernServer;
  stateless: boolean;
  /** A stateful session without requests (and none running) for this long is closed; 0: never. */
  idleTimeoutMs: number;
  sessionLimit: SessionLimit;
  /** A client this many bytes behind one of its streams is dropped with its session. */
  maxBacklogBytes: number;
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

/** True for `application/json`, with or without parameters. */
function isJsonContentType(header: string | null): boolean {
  if (header === null) return false;
  if (header === "application/json") return true;
  return header.split(";", 1)[0].trim().toLowerCase() === "application/json";
}

/**
 * The request's `MCP-Protocol-Version`, or a 400 response when it names no supported revision. Without the
 * header: the revision the session's client asked for in its `initialize`, else 2025-03-26.
 */
function protocolVersionOf(request: Request, session?: StreamableSession): string | Response {
  const version = request.headers.get("mcp-protocol-version");
  if (version === null) return session?.protocolVersion ?? DEFAULT_HTTP_PROTOCOL_VERSION;
  if (SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return version;
  return jsonRpcErrorResponse(
    400,
    -32000,
    `Bad Request: Unsupported protocol version: ${version} (supported versions: ${
      SUPPORTED_PROTOCOL_VERSIONS.join(", ")
    })`,
  );
}

const METHOD_NOT_ALLOWED = { Allow: "GET, POST, DELETE" };

/**
 * How long a request of the stateless revision waits for the server's child to say whether it serves it
 * (see `ModernServer.available`); past that it is refused with `-32022` while the child is still asked. An
 * SDK client's probe gives up after 60 s and does not fall back then: it must hear well before.
 */
export const PROBE_WAIT_MS = 10_000;

/** The error of a revision the server does not serve: the revision's code, and the versions it does. */
const UNSUPPORTED_PROTOCOL_VERSION = -32022;

/** Creates the Streamable HTTP endpoint of `server`. */
export function streamableHttpEndpoint(
  server: SessionSource,
  options: StreamableHttpEndpointOptions,
): StreamableHttpEndpoint {
  const { logger, idleTimeoutMs, sessionLimit } = options;
  const sessions = new Map<string, StreamableSession>();
  const statelessSessions = new Set<StreamableSession>();
  const sweeper = idleTimeoutMs > 0 && !options.stateless
    ? setInterval(() => closeIdleSessions(), Math.min(Math.max(idleTimeoutMs / 4, 50), 30_000))
    : undefined;

  function closeIdleSessions(): void {
    const now = Date.now();
    for (const [id, session] of sessions) {
      if (now - session.lastSeen < idleTimeoutMs || session.busy) continue;
      logger.info("Streamable HTTP session {id} of {server} idle for {seconds} s: closed", {
        id,
        server: server.name,
        seconds: Math.round((now - session.lastSeen) / 1000),
      });
      session.close();
    }
  }

  /** Opens a session (the limit allowing); throws {@link SessionUnavailableError} if no server runs. */
  /**
   * Opens a session, which takes a place of `--max-sessions` unless `counted` is false: a stateless POST
   * of answers and notifications only, which ends at once (found by QA: an answer to the child's sampling
   * request refused while the tool call waiting for it held the last place, which it never gave back).
   */
  function openSession(
    id: string | undefined,
    counted = true,
    source: Pick<SessionSource, "openSession"> = server,
  ): StreamableSession | Response {
    if (counted && !sessionLimit.tryOpen()) return sessionLimit.refusal();
    const session = new StreamableSession({
      id,
      maxBacklogBytes: options.maxBacklogBytes,
      logger,
      onClose: () => {
        if (counted) sessionLimit.close();
        if (id === undefined) statelessSessions.delete(session);
        else {
          sessions.delete(id);
          logger.debug("Streamable HTTP session {id} of {server} closed", { id, server: server.name });
        }
      },
    });
    try {
      session.serverSession = source.openSession(session, {
        label: id === undefined
          ? source === server ? "mcp (stateless)" : "mcp (2026-07-28)"
          : `mcp ${id.slice(0, 8)}`,
        stateless: id === undefined,
      });
    } catch (error) {
      if (counted) sessionLimit.close();
      throw error;
    }
    if (id === undefined) statelessSessions.add(session);
    else {
      sessions.set(id, session);
      logger.debug("Streamable HTTP session {id} of {server} opened", { id, server: server.name });
    }
    return session;
  }

  async function handlePost(request: Request): Promise<Response> {
    const accept = request.headers.get("accept") ?? "";
    // As clients write it, told at once; else read as RFC 9110 says (any case, wildcards, `q=0`).
    if (
      !COMMON_ACCEPT.has(accept) &&
      !(accepts(accept, "application/json") && accepts(accept, "text/event-stream"))
    ) {
      return jsonRpcErrorResponse(
        406,
        -32000,
        "Not Acceptable: Client must accept both application/json and text/event-stream",
      );
    }
    if (!isJsonContentType(request.headers.get("content-type"))) {
      return jsonRpcErrorResponse(
        415,
        -32000,
        "Unsupported Media Type: Content-Type must be application/json",
      );
    }
    const sessionId = options.stateless ? null : request.headers.get("mcp-session-id");
    if (sessionId !== null) {
      const session = sessions.get(sessionId);
      if (session === undefined) return jsonRpcErrorResponse(404, -32001, "Session not found");
      const ticket = session.arrivals.arrive();
      try {
        return await postTo(session, ticket, request);
      } finally {
        session.arrivals.handedOver(ticket);
      }
    }
    return await postTo(undefined, undefined, request);
  }

  /**
   * The rest of a POST (its headers checked), to `session` when it named one (with its place in the
   * session's `ArrivalOrder`), else to a session it opens.
   */
  async function postTo(
    session: StreamableSession | undefined,
    ticket: number | undefined,
    request: Request,
  ): Promise<Response> {
    const bytes = await requestBody(request, logger);
    if (bytes === undefined) return jsonRpcErrorResponse(400, -32600, UNREADABLE_BODY);
    if (bytes === "stalled") return jsonRpcErrorResponse(408, -32600, STALLED_BODY);
    const text = bodyText(bytes);
    if (text === undefined) return jsonRpcErrorResponse(400, -32700, NOT_UTF8);
    const messages = parseMessages(text);
    if (typeof messages === "string") {
      const code = messages === "the text is not JSON" ? -32700 : -32600;
      const what = code === -32700 ? "Parse error: Invalid JSON" : `Invalid Request: ${messages}`;
      return jsonRpcErrorResponse(400, code, what);
    }
    const batch = isBatch(text);
    if (messages.length > MAX_BATCH_SIZE) {
      return jsonRpcErrorResponse(
        400,
        -32600,
        `Invalid Request: Batch must not exceed ${MAX_BATCH_SIZE} messages`,
      );
    }
    // Before its ids are checked against those in flight: they may change while it waits.
    if (ticket !== undefined && waitsForEarlierPosts(messages as JsonRpcMessage[])) {
      const earlier = session!.arrivals.after(ticket);
      if (earlier !== undefined) await earlier;
    }
    const era = eraOf(messages as JsonRpcMessage[], batch, request.headers);
    if (era.era === "refused") {
      return jsonRpcErrorResponse(era.status, era.code, era.message, undefined, { id: era.id });
    }
    if (era.era === "modern") {
      return await postModern(messages[0] as JsonRpcMessage, era.version, request.headers, text, bytes);
    }
    const initialize = messages.find((message) => isRequest(message) && message.method === "initialize");
    let protocolVersion: string;
    if (initialize !== undefined) {
      if (session !== undefined) {
        return jsonRpcErrorResponse(400, -32600, "Invalid Request: Server already initialized");
      }
      if (messages.length > 1) {
        return jsonRpcErrorResponse(
          400,
          -32600,
          "Invalid Request: Only one initialization request is allowed",
        );
      }
      const asked = (initialize as { params?: { protocolVersion?: unknown } }).params?.protocolVersion;
      protocolVersion = typeof asked === "string" ? asked : DEFAULT_HTTP_PROTOCOL_VERSION;
    } else {
      const version = protocolVersionOf(request, session);
      if (version instanceof Response) return version;
      protocolVersion = version;
      if (session === undefined && !options.stateless) {
        return jsonRpcErrorResponse(400, -32000, "Bad Request: Mcp-Session-Id header is required");
      }
    }
    if (session !== undefined) {
      const reused = reusedRequestId(messages, (id) => session!.isInFlight(id));
      if (reused !== undefined) {
        return jsonRpcErrorResponse(
          400,
          -32600,
          `Invalid Request: id ${
            JSON.stringify(reused)
          } is already used by a request in flight, or twice in this batch`,
        );
      }
    } else {
      if (reusedRequestId(messages, () => false) !== undefined) {
        return jsonRpcErrorResponse(400, -32600, "Invalid Request: a batch uses a request id twice");
      }
      const opened = options.stateless
        ? openSession(undefined, messages.some((message) => isRequest(message)))
        : openSession(crypto.randomUUID());
      if (opened instanceof Response) return opened;
      session = opened;
      if (initialize !== undefined) session.protocolVersion = protocolVersion;
    }
    const asIs = batch ? undefined : singleMessageLine(text);
    // Laid out on several lines: one line of it, every value as written (its bytes are not that line).
    const json = asIs ?? (batch ? batchLines(text, messages.length) : oneMessageLine(text));
    const line = asIs === undefined ? undefined : bodyAsLine(bytes, asIs);
    const answer = session.post(messages as JsonRpcMessage[], batch, protocolVersion, json, line);
    // Its messages are with the child: the session's later POSTs need not wait for its answer.
    if (ticket !== undefined) session.arrivals.handedOver(ticket);
    const response = await answer;
    if (options.stateless && !session.closed && response.status === 202) session.close();
    return response;
  }

  /**
   * A POST of the stateless revision `version` (one request or notification, its headers checked): a
   * session of its own on the modern child, or `-32022` when the server does not serve that revision.
   */
  async function postModern(
    message: JsonRpcMessage,
    version: string,
    headers: Headers,
    text: string,
    bytes: Uint8Array<ArrayBuffer>,
  ): Promise<Response> {
    const modern = options.modern;
    const request = isRequest(message);
    const served = modern !== undefined && (modern.served || await modern.available(PROBE_WAIT_MS));
    if (!served || !modern.supportedVersions.includes(version)) {
      // The child's revisions of the stateless era, then the ones of the sessions: a client may retry with
      // one of the first, or fall back to `initialize`.
      const legacy = SUPPORTED_PROTOCOL_VERSIONS.filter((known) => !isModernVersion(known));
      const supported = served ? [...modern.supportedVersions.filter(isModernVersion), ...legacy] : legacy;
      return jsonRpcErrorResponse(
        400,
        UNSUPPORTED_PROTOCOL_VERSION,
        `Unsupported protocol version: ${version} (supported versions: ${supported.join(", ")})`,
        undefined,
        { id: request ? message.id : null, data: { supported, requested: version } },
      );
    }
    // Known once the child serves the revision (it lists its tools first): the `x-mcp-header` arguments.
    if (request && message.method === "tools/call") {
      const params = message.params as { name?: unknown; arguments?: unknown } | undefined;
      const mismatch = typeof params?.name === "string"
        ? modern.tools.paramMismatch(params.name, params.arguments, headers)
        : undefined;
      if (mismatch !== undefined) {
        return jsonRpcErrorResponse(400, HEADER_MISMATCH, `Header mismatch: ${mismatch}`, undefined, {
          id: message.id,
        });
      }
    }
    const opened = openSession(undefined, request, modern);
    if (opened instanceof Response) return opened;
    const asIs = singleMessageLine(text);
    const json = asIs ?? oneMessageLine(text);
    const line = asIs === undefined ? undefined : bodyAsLine(bytes, asIs);
    const response = await opened.post([message], false, version, json, line);
    if (!opened.closed && response.status === 202) opened.close();
    return response;
  }

  function existingSession(request: Request): StreamableSession | Response {
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId === null) {
      return jsonRpcErrorResponse(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    }
    return sessions.get(sessionId) ?? jsonRpcErrorResponse(404, -32001, "Session not found");
  }

  function handleGet(request: Request): Response {
    if (!accepts(request.headers.get("accept") ?? "", "text/event-stream")) {
      return jsonRpcErrorResponse(406, -32000, "Not Acceptable: Client must accept text/event-stream");
    }
    const session = existingSession(request);
    if (session instanceof Response) return session;
    const version = protocolVersionOf(request, session);
    if (version instanceof Response) return version;
    return session.openStream(request.headers.get("last-event-id"), version);
  }

  function handleDelete(request: Request): Response {
    const session = existingSession(request);
    if (session instanceof Response) return session;
    const version = protocolVersionOf(request);
    if (version instanceof Response) return version;
    session.close();
    return new Response(null, { status: 200 });
  }

  return {
    get size() {
      return options.stateless ? statelessSessions.size : sessions.size;
    },

    async handle(request: Request): Promise<Response> {
      try {
        if (request.method === "POST") return await handlePost(request);
        const version = request.headers.get("mcp-protocol-version");
        if (options.stateless) {
          return jsonRpcErrorResponse(405, -32000, "Method not allowed: this server is stateless", {
            Allow: "POST",
          });
        }
        if (version !== null && isModernVersion(version) && !request.headers.has("mcp-session-id")) {
          return jsonRpcErrorResponse(
            405,
            -32000,
            `Method not allowed: protocol revision ${version} has no ${request.method} without a session`,
            { Allow: "POST" },
          );
        }
        if (request.method === "GET") return handleGet(request);
        if (request.method === "DELETE") return handleDelete(request);
        return jsonRpcErrorResponse(405, -32000, "Method not allowed.", METHOD_NOT_ALLOWED);
      } catch (error) {
        if (error instanceof SessionUnavailableError) return jsonRpcErrorResponse(503, -32000, error.message);
        logger.error("Streamable HTTP request to {server} failed: {error}", { server: server.name, error });
        return jsonRpcErrorResponse(500, -32603, "Internal error");
      }
    },

    closeAll(): Promise<void> {
      clearInterval(sweeper);
      for (const session of [...sessions.values(), ...statelessSessions]) session.close();
      return Promise.resolve();
    },
  };
}

/** `Accept` values as clients write them, taking both media types a POST needs. */
const COMMON_ACCEPT = new Set([
  "application/json, text/event-stream",
  "text/event-stream, application/json",
  "application/json,text/event-stream",
  "text/event-stream,application/json",
]);

/**
 * Whether an `Accept` header value takes the media type `type` (lower case): named in any case, or through
 * `type/*` or `*\/*`, the most specific range that matches deciding, refused by `q=0` (RFC 9110 §12.5.1).
 */
export function accepts(accept: string, type: string): boolean {
  const main = type.slice(0, type.indexOf("/"));
  let best = -1;
  let taken = false;
  for (const range of accept.toLowerCase().split(",")) {
    const [media, ...parameters] = range.split(";").map((part) => part.trim());
    const specificity = media === type ? 2 : media === `${main}/*` ? 1 : media === "*/*" ? 0 : -1;
    if (specificity <= best) continue;
    best = specificity;
    taken = !parameters.some((parameter) => /^q\s*=\s*0(\.0*)?$/.test(parameter));
  }
  return taken;
}
