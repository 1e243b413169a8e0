/**
 * The legacy HTTP+SSE transport (MCP 2024-11-05) for one shared server: `GET …/sse` opens a session
 * whose first event, `endpoint`, names the URL to POST messages to; `POST …/messages/?session_id=…`
 * delivers one message (or a batch) and answers 202; everything for the client comes as `message`
 * events on the stream.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import {
  batchLines,
  isBatch,
  isNotification,
  isResponse,
  oneMessageLine,
  parseMessages,
  reusedRequestId,
  singleMessageLine,
} from "../jsonrpc.ts";
import { asEventData, bodyAsLine, cutShortAnswer } from "../large_answer.ts";
import { type ServerSession, type SessionSource, SessionUnavailableError } from "../shared_server.ts";
import { ArrivalOrder, waitsForEarlierPosts } from "./arrival_order.ts";
import { EVENT_STREAM_HEADERS, EventStream } from "./event_stream.ts";
import { bodyText, NOT_UTF8, requestBody, STALLED_BODY, UNREADABLE_BODY } from "./request_body.ts";
import type { SessionLimit } from "./session_limit.ts";

/** Options of {@link legacySseEndpoint}. */
export interface LegacySseEndpointOptions {
  /** Path of the messages endpoint as the client must use it, e.g. `/servers/fetch/messages/`. */
  messagesPath: string;
  sessionLimit: SessionLimit;
  /** A client that falls this many bytes behind its stream is dropped. */
  maxBacklogBytes: number;
  logger: Logger;
}

/** The handlers of one server's legacy SSE endpoint. */
export interface LegacySseEndpoint {
  /** `GET …/sse`. */
  openStream(request: Request): Response;
  /** `POST …/messages/?session_id=…`. */
  postMessage(request: Request): Promise<Response>;
  /** Ends every open stream (at shutdown). */
  closeAll(): void;
  /** Number of open streams. */
  readonly size: number;
}

const SESSION_ID = /^[0-9a-f]{32}$/;

/** The `session_id` query parameter of `url`, without building a URL object for every message. */
function sessionIdOf(url: string): string | null {
  const query = url.indexOf("?");
  if (query === -1) return null;
  // The common case: the parameter first, an id as the proxy wrote it. Anything else (another parameter
  // first, an encoded value) is left to URLSearchParams.
  if (url.startsWith("session_id=", query + 1)) {
    const start = query + 1 + "session_id=".length;
    const end = url.indexOf("&", start);
    const value = end === -1 ? url.slice(start) : url.slice(start, end);
    if (/^[0-9a-fA-F-]*$/.test(value)) return value;
  }
  return new URL(url).searchParams.get("session_id");
}

/**
 * A plain-text response, as the reference gives one (every message gets `202 Accepted`). Its type is the
 * one Deno gives text, `text/plain;charset=UTF-8`: any header set here would cost the per-message path
 * a header list of its own (Deno.serve writes a response with that type alone by a shorter way).
 */
function textResponse(status: number, text: string): Response {
  return new Response(text, { status });
}

/** An open legacy SSE session: its stream, its side of the shared server, the order its POSTs came in. */
interface LegacySession {
  stream: EventStream;
  session: ServerSession;
  arrivals: ArrivalOrder;
}

/** Creates the legacy SSE endpoint of `server`. */
export function legacySseEndpoint(
  server: SessionSource,
  options: LegacySseEndpointOptions,
): LegacySseEndpoint {
  const { messagesPath, sessionLimit, logger } = options;
  const sessions = new Map<string, LegacySession>();

  return {
    get size() {
      return sessions.size;
    },

    openStream(): Response {
      if (!sessionLimit.tryOpen()) return sessionLimit.refusal();
      const id = crypto.randomUUID().replaceAll("-", "");
      const stream = new EventStream({
        maxBacklogBytes: options.maxBacklogBytes,
        onSlowConsumer: () =>
          logger.warn("SSE session {id} of {server} fell more than {bytes} bytes behind: closed", {
            id,
            server: server.name,
            bytes: options.maxBacklogBytes,
          }),
        onClose: () => {
          sessionLimit.close();
          const entry = sessions.get(id);
          entry?.arrivals.close();
          entry?.session.close();
          sessions.delete(id);
          logger.debug("SSE session {id} of {server} closed", { id, server: server.name });
        },
      });
      let session: ServerSession;
      try {
        session = server.openSession(
          {
            // Kinds, so that an answer does not share a chunk with the progress before it (see
            // `EventStream.send`).
            deliver: (message, _related, json) =>
              stream.send(
                "message",
                json ?? JSON.stringify(message),
                undefined,
                isResponse(message)
                  ? "answer"
                  : isNotification(message) && message.method === "notifications/progress"
                  ? "progress"
                  : undefined,
              ),
            deliverAnswer: (_clientId, json, noCarriageReturn) =>
              stream.send("message", noCarriageReturn ? json : asEventData(json), undefined, "answer"),
            streamAnswer: (clientId) => {
              if (stream.closed || stream.sendingInPieces) return undefined;
              const pieces = stream.sendInPieces("message", "answer");
              return {
                write: (bytes, noCarriageReturn) =>
                  pieces.write(noCarriageReturn ? bytes : asEventData(bytes)),
                end: () => pieces.end(),
                abort: (reason) => {
                  pieces.abort();
                  stream.send("message", cutShortAnswer(clientId, reason));
                },
              };
            },
            end: () => stream.close(),
          },
          { label: `sse ${id.slice(0, 8)}` },
        );
      } catch (error) {
        stream.close();
        if (!(error instanceof SessionUnavailableError)) throw error;
        return textResponse(503, error.message);
      }
      sessions.set(id, { stream, session, arrivals: new ArrivalOrder() });
      stream.send("endpoint", `${messagesPath}?session_id=${id}`);
      logger.debug("SSE session {id} of {server} opened", { id, server: server.name });
      return new Response(stream.body, { headers: EVENT_STREAM_HEADERS });
    },

    async postMessage(request: Request): Promise<Response> {
      const id = sessionIdOf(request.url);
      if (id === null) return textResponse(400, "session_id is required");
      // The id as the proxy wrote it is found at once; another spelling of it (dashes, capitals) after it
      // is brought to that form.
      let entry = sessions.get(id);
      if (entry === undefined) {
        const normalized = id.replaceAll("-", "").toLowerCase();
        if (!SESSION_ID.test(normalized)) return textResponse(400, "Invalid session ID");
        entry = sessions.get(normalized);
        if (entry === undefined) return textResponse(404, "Could not find session");
      }
      const ticket = entry.arrivals.arrive();
      try {
        return await postTo(entry, ticket, request);
      } finally {
        entry.arrivals.handedOver(ticket);
      }
    },

    closeAll(): void {
      for (const { stream } of [...sessions.values()]) stream.close();
    },
  };

  /** The rest of a POST to the session of `entry`, with its place in the order the session's POSTs came. */
  async function postTo(entry: LegacySession, ticket: number, request: Request): Promise<Response> {
    const bytes = await requestBody(request, logger);
    if (bytes === undefined) return textResponse(400, UNREADABLE_BODY);
    if (bytes === "stalled") return textResponse(408, STALLED_BODY);
    const text = bodyText(bytes);
    if (text === undefined) return textResponse(400, `Could not parse message: ${NOT_UTF8}`);
    const messages = parseMessages(text);
    if (typeof messages === "string") return textResponse(400, `Could not parse message: ${messages}`);
    // Before its ids are checked against those in flight: they may change while it waits.
    if (waitsForEarlierPosts(messages)) {
      const earlier = entry.arrivals.after(ticket);
      if (earlier !== undefined) await earlier;
      // Closed meanwhile: as if it were unknown.
      if (entry.stream.closed) return textResponse(404, "Could not find session");
    }
    const reused = reusedRequestId(messages, (id) => entry.session.isInFlight(id));
    if (reused !== undefined) {
      return textResponse(
        400,
        `Invalid request: id ${
          JSON.stringify(reused)
        } is already used by a request in flight, or twice in this batch`,
      );
    }
    if (messages.length === 1 && !isBatch(text)) {
      const asIs = singleMessageLine(text);
      // Laid out on several lines: one line of it, every value as written (its bytes are not that line).
      entry.session.handleClientMessage(
        messages[0],
        asIs ?? oneMessageLine(text),
        asIs === undefined ? undefined : bodyAsLine(bytes, asIs),
      );
    } else {
      const lines = batchLines(text, messages.length);
      messages.forEach((message, i) => entry.session.handleClientMessage(message, lines?.[i]));
    }
    return textResponse(202, "Accepted");
  }
}
