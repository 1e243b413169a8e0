/**
 * One Streamable HTTP session: what the client POSTs goes to its {@link ServerSession}, and what the
 * server sends comes back on the right HTTP response.
 *
 * A POST holding requests gets one answer channel. While only answers arrive, the response waits and
 * leaves as one `application/json` body when the last one is in: the common case costs no stream at
 * all. The first message that is not an answer (progress, a log message, a request of the server), or a
 * request still running after {@link STREAM_AFTER_MS}, turns the response into an SSE stream, and
 * everything for those requests follows on it in order. Messages that belong to no request go to the
 * session's GET stream, or wait for one.
 *
 * Events on streams carry ids and are kept in a bounded {@link SessionEventLog}: a client whose stream
 * broke reconnects with `Last-Event-ID` and gets what it missed, and the answers still to come.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { isRequest, isResponse, type JsonRpcMessage, type RequestId } from "../jsonrpc.ts";
import { PRIMING_PROTOCOL_VERSION } from "../protocol_versions.ts";
import type { AnswerSink, ServerSession, SessionPeer } from "../shared_server.ts";
import { asEventData, asText, type JsonText } from "../large_answer.ts";
import { DelayQueue } from "../delay_queue.ts";
import { ArrivalOrder } from "./arrival_order.ts";
import { BodyCutShort, EVENT_STREAM_HEADERS, EventStream } from "./event_stream.ts";
import { GET_STREAM, parseEventId, SessionEventLog } from "./session_event_log.ts";

/** The error of an answer the event log forgot before the client came back for it (see `#resume`). */
const LOST_ANSWER_ERROR = JSON.stringify({
  code: -32000,
  message: "mcp-proxy: the answer was lost: the stream broke, and the session's event log no longer held " +
    "the answer when the client came back for it",
});

/** A request not answered this soon gets an SSE stream: keep-alives, and an event id to resume from. */
export const STREAM_AFTER_MS = 100;
/** How long a client waits before reconnecting a stream the server closed (the SSE `retry` field). */
export const RETRY_INTERVAL_MS = 1000;

/** Options of {@link StreamableSession}. */
export interface StreamableSessionOptions {
  /** The `Mcp-Session-Id`; undefined for a stateless session (one POST). */
  id: string | undefined;
  /** A client that falls this many bytes behind one of its streams is dropped with its session. */
  maxBacklogBytes: number;
  logger: Logger;
  /** Called once when the session ends. */
  onClose(): void;
}

/** The HTTP side of the requests of one POST. */
interface AnswerChannel {
  readonly streamId: string;
  /** The POST's request ids, in order: a batch's answers go out in that order. */
  readonly requestIds: readonly RequestId[];
  readonly batch: boolean;
  /** Requests still waiting for their answer. */
  readonly pending: Set<RequestId>;
  /** Whether the client expects priming events. */
  readonly primed: boolean;
  /** While the response waits: resolves it. */
  resolve?: (response: Response) => void;
  /** While the response waits: answers in, as JSON text (or its bytes), by request id. */
  answers?: Map<RequestId, JsonText>;
  /** Once the response is a stream, while the client reads it. */
  stream?: EventStream;
  done: boolean;
}

const JSON_CONTENT_TYPE = "application/json";

/** JSON text, or its bytes, as the data of an SSE event. */
function eventData(json: JsonText): JsonText {
  return typeof json === "string" ? json : asEventData(json);
}

/** A stream of `bytes` as one chunk, which it takes over (no copy). */
function oneChunk(bytes: Uint8Array<ArrayBuffer>): ReadableStream<Uint8Array<ArrayBuffer>> {
  return new ReadableStream({
    type: "bytes",
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

/** A JSON-RPC error answer to `id`, as JSON text. */
function errorText(id: RequestId, code: number, message: string): string {
  return JSON.stringify({ jsonrpc: "2.0", id, error: { code, message } });
}

/**
 * A JSON-RPC error response for the HTTP-level refusals: without id, unless `answer` names the request it
 * refuses (and `data` to go with the error).
 */
export function jsonRpcErrorResponse(
  status: number,
  code: number,
  message: string,
  headers?: Record<string, string>,
  answer: { id?: RequestId | null; data?: unknown } = {},
): Response {
  const error = answer.data === undefined ? { code, message } : { code, message, data: answer.data };
  return new Response(JSON.stringify({ jsonrpc: "2.0", error, id: answer.id ?? null }), {
    status,
    headers: { "Content-Type": JSON_CONTENT_TYPE, ...headers },
  });
}

/** The HTTP side of one client session; the peer of its {@link ServerSession}. */
export class StreamableSession implements SessionPeer {
  readonly id: string | undefined;
  /** Set right after construction: the shared server's side of the session. */
  serverSession!: ServerSession;
  /** The protocol revision the client asked for in its `initialize`, once it did. */
  protocolVersion: string | undefined;
  /** When the client last sent anything, a request of its was answered, or its GET stream closed. */
  lastSeen = Date.now();
  /** The order its POSTs arrived in, which its notifications keep (see {@link ArrivalOrder}). */
  readonly arrivals = new ArrivalOrder();
  readonly #log: SessionEventLog | undefined;
  readonly #logger: Logger;
  readonly #maxBacklogBytes: number;
  readonly #onClose: () => void;
  /** Request id → its POST's channel, while the request waits for its answer. */
  readonly #channels = new Map<RequestId, AnswerChannel>();
  /** Stream id → channel, until all its answers are out (a broken stream can be resumed). */
  readonly #streams = new Map<string, AnswerChannel>();
  /**
   * The streams that serve resumptions (`#resume`), by the stream they resume: also one whose requests
   * are all answered, which no channel holds. A next resumption of the same stream cuts it off, and so does
   * the end of the session (found by QA: such streams outlived both, each replaying the whole log to a
   * client that did not read it).
   */
  readonly #resumed = new Map<string, EventStream>();
  /** Waiting responses, each turned into a stream {@link STREAM_AFTER_MS} after its POST. */
  readonly #streamAfter = new DelayQueue<AnswerChannel>(
    STREAM_AFTER_MS,
    (channel) => this.#startStream(channel),
  );
  #streamSeq = 0;
  #getStream: EventStream | undefined;
  /** Sequence number of the last GET-stream event a connected client was sent. */
  #getDelivered = 0;
  #closed = false;
  /** The id of the client's `initialize` while it waits for its answer. */
  #initializeId: RequestId | undefined;
  /** Set when the answer to `initialize` is an error: the session ends with it, so it names no session. */
  #initializeFailed = false;
  /** Answers being streamed as POST bodies ({@link streamAnswer}) that have not ended yet. */
  #streaming = 0;

  constructor(options: StreamableSessionOptions) {
    this.id = options.id;
    this.#log = options.id === undefined ? undefined : new SessionEventLog();
    this.#logger = options.logger;
    this.#maxBacklogBytes = options.maxBacklogBytes;
    this.#onClose = options.onClose;
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True while a request of this session waits for its answer, or its answer is being streamed. */
  get busy(): boolean {
    // An open GET stream is a client still there, listening: only a session nobody listens to idles out.
    return this.#channels.size > 0 || this.#streaming > 0 || this.#getStream !== undefined ||
      this.serverSession.hasRequestInFlight;
  }

  /** Whether a request with this id waits for its answer (ids must be unique among those). */
  isInFlight(id: RequestId): boolean {
    return this.#channels.has(id) || this.serverSession.isInFlight(id);
  }

  /**
   * Takes the messages of one POST (already validated) and returns its response: 202 without requests,
   * else the answers as JSON or as an SSE stream. `json`, for a POST of one message, is its text on one
   * line, and `bytes`, for a large one, that text's bytes (see {@link ServerSession.handleClientMessage});
   * for a batch, the text of each message on one line, when known.
   */
  post(
    messages: readonly JsonRpcMessage[],
    batch: boolean,
    protocolVersion: string,
    json?: string | readonly string[],
    bytes?: Uint8Array<ArrayBuffer>,
  ): Promise<Response> {
    // Closed while its body was read (idle timeout, a slow stream, DELETE): as if it were unknown.
    if (this.#closed) return Promise.resolve(jsonRpcErrorResponse(404, -32001, "Session not found"));
    this.lastSeen = Date.now();
    const requestIds: RequestId[] = [];
    for (const message of messages) {
      if (!isRequest(message)) continue;
      requestIds.push(message.id);
      if (message.method === "initialize") this.#initializeId = message.id;
    }
    const texts = typeof json === "string" || json === undefined ? undefined : json;
    if (messages.length !== 1 || texts !== undefined) json = bytes = undefined;
    const handle = () => {
      for (let i = 0; i < messages.length; i++) {
        this.serverSession.handleClientMessage(messages[i], texts?.[i] ?? json as string | undefined, bytes);
      }
    };
    if (requestIds.length === 0) {
      handle();
      return Promise.resolve(new Response(null, { status: 202 }));
    }
    const channel: AnswerChannel = {
      streamId: String(++this.#streamSeq),
      requestIds,
      batch,
      pending: new Set(requestIds),
      primed: this.#log !== undefined && protocolVersion >= PRIMING_PROTOCOL_VERSION,
      answers: new Map(),
      done: false,
    };
    for (const id of requestIds) this.#channels.set(id, channel);
    this.#streams.set(channel.streamId, channel);
    const response = new Promise<Response>((resolve) => channel.resolve = resolve);
    handle();
    if (channel.resolve !== undefined) this.#streamAfter.add(channel);
    return response;
  }

  /** `GET`: the stream of the session's own messages, or the rest of a broken stream (`lastEventId`). */
  openStream(lastEventId: string | null, protocolVersion: string): Response {
    if (this.#closed) return jsonRpcErrorResponse(404, -32001, "Session not found");
    this.lastSeen = Date.now();
    if (lastEventId !== null) return this.#resume(lastEventId);
    if (this.#getStream !== undefined) {
      return jsonRpcErrorResponse(409, -32000, "Conflict: Only one SSE stream is allowed per session");
    }
    const stream = this.#newStream(() => {
      if (this.#getStream !== stream) return;
      this.#getStream = undefined;
      // Idle from now on, if nothing else comes.
      this.lastSeen = Date.now();
    });
    // What came while no GET stream was open, then the priming event: its id comes after theirs, so that
    // a client that resumes from the last id it got, whichever that is, misses none of them.
    const missed = this.#log?.since(GET_STREAM, this.#getDelivered) ?? [];
    // Paced, as the client takes them (see `EventStream.replay`). They count as delivered once on their
    // way, as they did when they were queued at once: a client that leaves this stream before it took them
    // all resumes from the last event id it got, not with a plain GET.
    stream.replay(missed);
    if (missed.length > 0) this.#getDelivered = missed.at(-1)!.seq;
    if (this.#log !== undefined && protocolVersion >= PRIMING_PROTOCOL_VERSION) {
      stream.prime(this.#log.mark(GET_STREAM), RETRY_INTERVAL_MS);
    }
    this.#getStream = stream;
    return this.#streamResponse(stream);
  }

  /** Ends the session: streams close, requests still waiting get an error, the child cancels them. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const channel of new Set(this.#channels.values())) {
      for (const id of channel.pending) {
        // As the client wrote the id (found by QA: `1.0` came back as `1`).
        const answerId = this.serverSession.answerId(id);
        this.#answer(channel, id, errorText(answerId, -32000, "Connection closed: the session ended"));
      }
    }
    // A stream still replaying what it missed is cut off (see `EventStream.close`), the error answers
    // above with it: the session is gone, and its events are not kept for a client that may not read.
    for (const channel of this.#streams.values()) channel.stream?.close();
    this.#streams.clear();
    this.#getStream?.close();
    for (const stream of [...this.#resumed.values()]) stream.close();
    this.#resumed.clear();
    this.#streamAfter.clear();
    this.arrivals.close();
    this.serverSession.close();
    this.#onClose();
  }

  // ---- SessionPeer ------------------------------------------------------------------------------

  listening(): boolean {
    return this.#getStream !== undefined;
  }

  deliver(message: JsonRpcMessage, relatedRequestId?: RequestId, json?: string): void {
    const data = json ?? JSON.stringify(message);
    const answer = isResponse(message);
    // An answer's own id may be the client's spelling of it (`idAsWritten`): the request it answers is
    // named by value, as its channel is.
    const key = answer ? (relatedRequestId ?? message.id ?? undefined) : relatedRequestId;
    const channel = key === undefined ? undefined : this.#channels.get(key);
    if (channel === undefined) {
      if (!answer) this.#sendUnrelated(data);
      else this.#logger.debug("answer to {id} has no request waiting: dropped", { id: key });
      return;
    }
    if (answer && key === this.#initializeId) {
      this.#initializeId = undefined;
      this.#initializeFailed = "error" in message;
    }
    if (answer) this.#answer(channel, key!, data);
    else this.#sendOnChannel(channel, data);
  }

  streamAnswer(clientId: RequestId): AnswerSink | undefined {
    const channel = this.#channels.get(clientId);
    // Only the answer of a POST of this one request (not in a batch: that one's body is an array) whose
    // response still waits: it is then the body.
    if (
      channel === undefined || channel.resolve === undefined || channel.requestIds.length !== 1 ||
      channel.batch
    ) {
      return undefined;
    }
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (it) => controller = it });
    const resolve = channel.resolve;
    channel.resolve = undefined;
    channel.answers = undefined;
    this.#channels.delete(clientId);
    channel.pending.delete(clientId);
    this.#retire(channel);
    resolve(this.#jsonResponse(body));
    // A client that left has cancelled the body: what is still to come is dropped.
    const attempt = (step: () => void) => {
      try {
        step();
      } catch {
        // The body is cancelled.
      }
    };
    // Busy until the answer has ended, so that the idle sweep leaves the session alone meanwhile.
    this.#streaming++;
    // A stateless session ends with its answer; not sooner: closing it cancels what it still has running.
    const finish = (step: () => void) => {
      this.#streaming--;
      this.lastSeen = Date.now();
      attempt(step);
      if (this.id === undefined) this.close();
    };
    return {
      write: (bytes) => attempt(() => controller.enqueue(bytes)),
      end: () => finish(() => controller.close()),
      // The client sees the body break off: no answer can be given once part of one is out.
      abort: (reason) => finish(() => controller.error(new BodyCutShort(reason))),
    };
  }

  deliverAnswer(clientId: RequestId, json: Uint8Array<ArrayBuffer>): void {
    const channel = this.#channels.get(clientId);
    if (channel === undefined) {
      this.#logger.debug("answer to {id} has no request waiting: dropped", { id: clientId });
    } else this.#answer(channel, clientId, json);
  }

  end(reason: string): void {
    this.#logger.debug("session {id} ends: {reason}", { id: this.id ?? "(stateless)", reason });
    this.close();
  }

  requestAbandoned(clientId: RequestId): void {
    const channel = this.#channels.get(clientId);
    if (channel === undefined) return;
    this.#channels.delete(clientId);
    channel.pending.delete(clientId);
    if (channel.pending.size > 0) return;
    // The client cancelled: no answer will come. An empty stream ends the POST without inventing one.
    if (channel.resolve !== undefined && channel.answers!.size === 0) this.#startStream(channel);
    this.#finish(channel);
  }

  // ---- internals --------------------------------------------------------------------------------

  #answer(channel: AnswerChannel, id: RequestId, data: JsonText): void {
    // The idle time counts from the answer: one kept for a client that resumes its stream must not be
    // swept away with the session before it can (found by QA: a call longer than the timeout lost it).
    this.lastSeen = Date.now();
    this.#channels.delete(id);
    channel.pending.delete(id);
    if (channel.resolve !== undefined) {
      channel.answers!.set(id, data);
      if (channel.pending.size === 0) this.#finish(channel);
      return;
    }
    this.#sendOnChannel(channel, data, true);
    if (channel.pending.size === 0) this.#finish(channel);
  }

  /**
   * Sends a message on the channel's stream, starting the stream if the response still waits; `answer`:
   * it answers one of the channel's requests (the event log forgets those last).
   */
  #sendOnChannel(channel: AnswerChannel, json: JsonText, answer = false): void {
    if (channel.resolve !== undefined) this.#startStream(channel);
    const data = eventData(json);
    const id = this.#log?.append(channel.streamId, data, answer);
    channel.stream?.send("message", data, id);
  }

  /** All of the channel's answers are out: a waiting response leaves as JSON; a stream ends. */
  /** The channel has no answer to wait for any more: no stream is to start for it, none to resume. */
  #retire(channel: AnswerChannel): void {
    channel.done = true;
    this.#streamAfter.delete(channel);
    this.#streams.delete(channel.streamId);
  }

  #finish(channel: AnswerChannel): void {
    if (channel.done) return;
    this.#retire(channel);
    if (channel.resolve !== undefined) {
      const answers = channel.answers!;
      const texts: JsonText[] = [];
      for (const id of channel.requestIds) {
        const text = answers.get(id);
        if (text !== undefined) texts.push(text);
      }
      const body = channel.batch ? `[${texts.map(asText).join(",")}]` : texts[0];
      channel.resolve(this.#jsonResponse(body));
      channel.resolve = undefined;
      channel.answers = undefined;
    } else {
      // After what a resumed stream still replays: the answer went behind it (found by review: closed, the
      // stream was cut off, the answer with it).
      channel.stream?.endAfterReplay();
    }
    if (this.id === undefined) this.close();
  }

  /** Turns the waiting response of `channel` into an SSE stream, with the answers already in. */
  #startStream(channel: AnswerChannel): void {
    const resolve = channel.resolve;
    if (resolve === undefined || channel.done) return;
    this.#streamAfter.delete(channel);
    channel.resolve = undefined;
    const stream = this.#newStream(() => this.#detach(channel, stream));
    channel.stream = stream;
    if (channel.primed) stream.prime(this.#log!.mark(channel.streamId), RETRY_INTERVAL_MS);
    for (const json of channel.answers!.values()) {
      const data = eventData(json);
      stream.send("message", data, this.#log?.append(channel.streamId, data, true));
    }
    channel.answers = undefined;
    resolve(this.#streamResponse(stream));
  }

  /** The client stopped reading a channel's stream before its last answer. */
  #detach(channel: AnswerChannel, stream: EventStream): void {
    if (channel.stream !== stream) return;
    channel.stream = undefined;
    if (channel.done || this.#closed) return;
    // Stateless: nobody can resume, so the requests are cancelled at the child. Stateful: the answers
    // go on into the event log; the client may come back for them with Last-Event-ID.
    if (this.id === undefined) this.close();
  }

  /** `GET` with `Last-Event-ID`: what the client missed on that stream, then the rest of it. */
  #resume(lastEventId: string): Response {
    const last = parseEventId(lastEventId);
    if (last === undefined || this.#log === undefined) {
      return jsonRpcErrorResponse(400, -32000, "Bad Request: Invalid Last-Event-ID");
    }
    const { streamId, seq } = last;
    const channel = this.#streams.get(streamId);
    if (channel?.resolve !== undefined) {
      return jsonRpcErrorResponse(409, -32000, "Conflict: Stream already has an active connection");
    }
    // A client that resumes a stream has left its old connection, even when the server has not noticed
    // yet (a connection closed a moment ago, or one left half-open by a network change, which only the
    // next keep-alive write would find): the new connection takes the stream over, and the old one is
    // cut off with what still waited for it there. Whatever the old one was sent after `lastEventId` is
    // in the log, and is sent again below.
    const takenOver = "the stream was resumed on another connection";
    if (streamId === GET_STREAM) this.#getStream?.cutOff(takenOver);
    else channel?.stream?.cutOff(takenOver);
    this.#resumed.get(streamId)?.cutOff(takenOver);
    const stream = this.#newStream(() => {
      if (this.#resumed.get(streamId) === stream) this.#resumed.delete(streamId);
      if (this.#getStream === stream) {
        this.#getStream = undefined;
        this.lastSeen = Date.now();
      }
      if (channel !== undefined) this.#detach(channel, stream);
    });
    this.#resumed.set(streamId, stream);
    const missed = this.#log.since(streamId, seq);
    // Paced, as the client takes them: one that does not read holds little (see `EventStream.replay`).
    stream.replay(missed);
    if (streamId === GET_STREAM && missed.length > 0) {
      this.#getDelivered = Math.max(this.#getDelivered, missed.at(-1)!.seq);
    }
    // What the bounded log forgot of it is lost: said, and an answer among it given as an error, so that
    // its request does not wait for ever.
    const lost = this.#log.takeLost(streamId, seq);
    if (lost !== undefined) {
      this.#logger.warn(
        "Streamable HTTP session {id}: a stream resumed from event {event} misses events the event log no " +
          "longer holds (it keeps {events} events and {bytes} bytes); answers among them, now given as " +
          "errors: {answers}",
        {
          id: this.id,
          event: lastEventId,
          events: this.#log.maxEvents,
          bytes: this.#log.maxTextLength,
          answers: lost.answerIds.length,
        },
      );
      for (const id of lost.answerIds) {
        const data = `{"jsonrpc":"2.0","id":${id},"error":${LOST_ANSWER_ERROR}}`;
        stream.send("message", data, this.#log.append(streamId, data, true));
      }
    }
    if (streamId === GET_STREAM) this.#getStream = stream;
    else if (channel !== undefined && !channel.done) channel.stream = stream;
    // Every answer of that stream is out: it ends once what was missed went.
    else stream.endAfterReplay();
    return this.#streamResponse(stream);
  }

  /** A message that belongs to no running request: to the GET stream, or kept until one opens. */
  #sendUnrelated(data: string): void {
    if (this.#log === undefined) {
      if (this.#getStream === undefined) {
        this.#logger.debug("message for no request of a stateless session dropped: {data}", { data });
      }
      return;
    }
    const id = this.#log.append(GET_STREAM, data);
    if (this.#getStream !== undefined) {
      this.#getStream.send("message", data, id);
      this.#getDelivered = parseEventId(id)!.seq;
    }
  }

  #newStream(onClose: () => void): EventStream {
    return new EventStream({
      maxBacklogBytes: this.#maxBacklogBytes,
      onSlowConsumer: () => {
        this.#logger.warn("Streamable HTTP session {id} fell more than {bytes} bytes behind: closed", {
          id: this.id ?? "(stateless)",
          bytes: this.#maxBacklogBytes,
        });
        queueMicrotask(() => this.close());
      },
      onClose,
    });
  }

  /**
   * A 200 response with a JSON body. Its headers are set one by one: `new Response` converts the headers
   * of its `init` at several times the cost, which shows on the per-message path. Bytes (a large answer)
   * go as a stream of one chunk with their length: `new Response` would copy them first. A stream (a
   * large answer still coming in) goes chunked.
   */
  #jsonResponse(body: JsonText | ReadableStream<Uint8Array>): Response {
    let response: Response;
    if (typeof body === "string" || body instanceof ReadableStream) response = new Response(body);
    else {
      const length = body.length; // Taken first: the stream takes the bytes over, leaving none here.
      response = new Response(oneChunk(body));
      response.headers.set("Content-Length", String(length));
    }
    response.headers.set("Content-Type", JSON_CONTENT_TYPE);
    if (this.id !== undefined && !this.#initializeFailed) response.headers.set("Mcp-Session-Id", this.id);
    return response;
  }

  #streamResponse(stream: EventStream): Response {
    const headers: Record<string, string> = { ...EVENT_STREAM_HEADERS as Record<string, string> };
    if (this.id !== undefined) headers["Mcp-Session-Id"] = this.id;
    return new Response(stream.body, { headers });
  }
}
