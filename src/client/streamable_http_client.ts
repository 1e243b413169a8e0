/**
 * The client side of Streamable HTTP (MCP 2025-03-26 and later), for one session: every message is a
 * POST; answers come as JSON or on an SSE stream opened by that POST; messages the server sends on its
 * own come on a GET stream. Streams that break are resumed with `Last-Event-ID` where the server gave
 * event ids; a 404 for our session means the server forgot it.
 *
 * @module
 */

import { isRequest, isResponse, type JsonRpcMessage, parseMessages, type RequestId } from "../jsonrpc.ts";
import { type JsonText, receivedLines } from "../large_answer.ts";
import { oneLine } from "../logging.ts";
import {
  backoffDelay,
  bodyStart,
  busyDelay,
  type Delivery,
  fetchFailure,
  fetchFailureKind,
  refusedWith,
  RemoteError,
  type RemoteTransport,
  type RemoteTransportOptions,
  type SendOrder,
  sleep,
} from "./remote_transport.ts";
import { bodyInMemory, type ExchangeStop, type WrittenNotice } from "./http1_fetch.ts";
import { readEventStream, readEventStreamBytes, type ServerSentEvent } from "./server_sent_events.ts";

/** Options of {@link StreamableHttpClient}. */
export interface StreamableHttpClientOptions extends RemoteTransportOptions {
  /** How long a broken answer stream may take to resume before its request counts as lost. */
  resumeWindowMs: number;
  /** Reports messages that are not JSON-RPC, and other things worth a log line. */
  onwarning?: (text: string) => void;
  /**
   * Headers a POST of `message` carries besides the session's, which they replace where both name one
   * (spelled alike); undefined for none. Client mode gives those of revision 2026-07-28 (`../modern_headers.ts`).
   */
  requestHeaders?: (message: JsonRpcMessage) => Record<string, string> | undefined;
}

/** Up to 200 characters of an error response's body, on one line. */
/**
 * The start of a response's body, for an error: scrubbed of the credentials sent before it is cut (a
 * credential cut short would be quoted in part), whatever the status (found by QA: a 200 that is not an
 * event stream quoted a token the server echoed).
 */
async function shortBody(response: Response, scrub: (text: string) => string): Promise<string> {
  return oneLine(scrub(await bodyStart(response.body)));
}

/**
 * Statuses whose body is not taken for the server's answer to the request: they are retried (408, 429,
 * 502, 503, 504) or answered below HTTP (401, 407).
 */
const PASSED_OVER_STATUSES = new Set([401, 407, 408, 429, 502, 503, 504]);

function contentType(response: Response): string {
  return (response.headers.get("content-type") ?? "").toLowerCase();
}

/** Why a JSON body (`text`) the server sent for a request answered it not, for the error answer. */
function unansweredBy(text: string): string {
  const messages = parseMessages(text);
  if (typeof messages === "string") {
    const start = text.replace(/\s+/g, " ").trim().slice(0, 100);
    return `the server's answer is not JSON-RPC (${messages})${
      start === "" ? ": the body is empty" : `: ${start}`
    }`;
  }
  const error = messages.find((message) => isResponse(message) && message.error !== undefined) as
    | { error: { code: number; message: string } }
    | undefined;
  if (error !== undefined) {
    return `the server answered with an error (${error.error.code}): ${error.error.message}`;
  }
  return "the server's answer is not the answer to this request";
}

function isEventStream(response: Response): boolean {
  return contentType(response).startsWith("text/event-stream");
}

/**
 * A 400 body that says the session is not known, as servers built on the SDKs word it ("Bad Request: No
 * valid session ID provided", "Invalid or expired session", "Mcp-Session-Id header is required"): not any
 * body that holds the word (found by QA and review: "argument 'session_label' is required", and "the
 * argument 'session' is required", ended the session).
 */
const SESSION_REFUSED =
  /\b(no valid|invalid|unknown|expired|missing|bad)( or expired)? session\b|\bsession[- ]id\b[^.]{0,40}\b(not found|invalid|expired|unknown|missing|required|no longer)\b|\bsession (not found|expired|unknown|is not known|no longer exists)\b/i;

/** A GET stream that ends sooner than this counts as ended at once (see `#listenLoop`). */
const SHORT_STREAM_MS = 5000;

/** The longest wait a server's `retry` gets (beyond 2^31 ms, `setTimeout` would not wait at all). */
const MAX_RETRY_MS = 5 * 60_000;

/**
 * How long to wait before asking for a stream again: the server's `retry` when it gave one, up to
 * {@link MAX_RETRY_MS}, but never less than `leastMs`, which grows while streams end at once (found by QA:
 * `retry: 0` asked for the GET stream some 400 times a second).
 */
function reconnectDelay(retryMs: number | undefined, leastMs: number): number {
  return Math.min(Math.max(retryMs ?? leastMs, leastMs), MAX_RETRY_MS);
}

/** How long requests wait for the GET stream's head after `listen()`; see `#streamOpening`. */
const STREAM_OPEN_WAIT_MS = 200;

/**
 * How long requests wait, besides, for the POST of `notifications/initialized` that the GET stream waits
 * for (see `listen`): a server that holds it does not hold them for long.
 */
const INITIALIZED_WAIT_MS = 1000;

const decoder = new TextDecoder();

/** Frozen, as `#postHeaders`: the `fetch` of `http1_fetch.ts` then builds the request head they make once. */
const POST_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "Content-Type": "application/json",
  Accept: "application/json, text/event-stream",
});

/** A Streamable HTTP session with the server at `url`. */
export class StreamableHttpClient implements RemoteTransport {
  readonly kind = "streamablehttp";
  onmessage?: (message: JsonRpcMessage, json?: JsonText, refused?: boolean) => void;
  onsessionlost?: (reason: string) => void;
  readonly #url: URL;
  readonly #fetch: typeof fetch;
  readonly #resumeWindowMs: number;
  readonly #onwarning: (text: string) => void;
  readonly #scrub: (text: string) => string;
  readonly #requestHeaders: ((message: JsonRpcMessage) => Record<string, string> | undefined) | undefined;
  /** Ends every exchange under way: the relay is closing. */
  readonly #abort = new AbortController();
  /** Requests of revision 2026-07-28 on their way and not answered yet, by id: see {@link abandon}. */
  readonly #abandonable = new Map<RequestId, AbortController>();
  /** The signals of every request of revision 2026-07-28 under way (answered or not): `close` ends them. */
  readonly #live = new Set<AbortController>();
  /** The other requests on their way and not answered yet, by id: see {@link letGo}. */
  readonly #stoppable = new Map<RequestId, ExchangeStop>();
  /** Ends the GET stream of the server's own messages (and its waits): the session is over. */
  readonly #stopListening = new AbortController();
  #sessionId: string | undefined;
  #protocolVersion: string | undefined;
  /** `Mcp-Session-Id` and `MCP-Protocol-Version`, once known; replaced, never changed in place. */
  #sessionHeaders: Readonly<Record<string, string>> = {};
  /** The headers of every POST: built again only when the session headers change. */
  #postHeaders = POST_HEADERS;
  #listening = false;
  /**
   * Set from `listen()` until the GET stream's first response head arrives (or fails, or a short wait
   * ends): requests wait for it, so that the stream of the server's own messages is open before the
   * requests that may lead to them. A server can tell that GET from a resumption only by its order.
   */
  #streamOpening: Promise<void> | undefined;
  #closed = false;

  constructor(options: StreamableHttpClientOptions) {
    this.#url = options.url;
    this.#fetch = options.fetch;
    this.#resumeWindowMs = options.resumeWindowMs;
    this.#requestHeaders = options.requestHeaders;
    const scrub = options.scrub ?? ((text: string) => text);
    this.#scrub = scrub;
    const onwarning = options.onwarning ?? (() => {});
    this.#onwarning = (text) => onwarning(scrub(text));
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  setProtocolVersion(version: string): void {
    this.#protocolVersion = version;
    this.#updateSessionHeaders();
  }

  async send(message: JsonRpcMessage, json?: string, order?: SendOrder): Promise<void> {
    const extra = this.#requestHeaders?.(message);
    const requestId = isRequest(message) ? message.id : undefined;
    // A request with headers of its own is of revision 2026-07-28, which cancels a request by closing its
    // stream: it can be, with `abandon`, from now on (also while it waits for the GET stream to open).
    if (requestId === undefined) {
      if (this.#streamOpening !== undefined) await this.#streamOpening;
      return await this.#send(message, json, order, extra);
    }
    if (extra === undefined) {
      // No signal of its own (one costs some µs of every request): a stop, for `letGo`.
      const stop: ExchangeStop = { stopped: false };
      this.#stoppable.set(requestId, stop);
      try {
        if (this.#streamOpening !== undefined) await this.#streamOpening;
        if (!stop.stopped) return await this.#send(message, json, order, extra, undefined, stop);
      } catch (error) {
        if (!stop.stopped || this.#abort.signal.aborted) throw error;
      } finally {
        if (this.#stoppable.get(requestId) === stop) this.#stoppable.delete(requestId);
      }
      return; // Let go: nothing more to say.
    }
    const own = new AbortController();
    this.#abandonable.set(requestId, own);
    this.#live.add(own);
    try {
      if (this.#streamOpening !== undefined) await this.#streamOpening;
      if (!own.signal.aborted) return await this.#send(message, json, order, extra, own.signal);
      if (this.#abort.signal.aborted) {
        throw new RemoteError("closed", "the session with the server was closed");
      }
    } catch (error) {
      if (own.signal.aborted && !this.#abort.signal.aborted) return; // Abandoned: nothing more to say.
      throw error;
    } finally {
      if (this.#abandonable.get(requestId) === own) this.#abandonable.delete(requestId);
      this.#live.delete(own);
    }
  }

  /**
   * Stops waiting for the answer to the request `id` (of an earlier revision) once `after` settles: its POST,
   * or the stream that answers it, is closed. For a request cancelled by notification, which `after` sends:
   * a server may keep the stream of a request it cancelled open, and the session would keep a connection
   * for each (found by QA: the SDK's server does).
   */
  letGo(id: RequestId, after: Promise<unknown>): void {
    const stop = this.#stoppable.get(id);
    if (stop === undefined) return;
    // Taken out now: a request of the same id sent meanwhile is another.
    this.#stoppable.delete(id);
    const end = () => {
      stop.stopped = true;
      stop.onstop?.();
    };
    after.then(end, end);
  }

  /**
   * Cancels the request `id`, when it is of revision 2026-07-28 and on its way, as that revision does: its
   * POST, or the stream that answers it, is closed. False when there is none such.
   */
  abandon(id: RequestId): boolean {
    const own = this.#abandonable.get(id);
    if (own === undefined) return false;
    this.#abandonable.delete(id);
    own.abort();
    return true;
  }

  async #send(
    message: JsonRpcMessage,
    json: string | undefined,
    order: SendOrder | undefined,
    extra: Record<string, string> | undefined,
    abandoned?: AbortSignal,
    stop?: ExchangeStop,
  ): Promise<void> {
    const response = await this.#request(
      "POST",
      extra === undefined ? this.#postHeaders : { ...this.#postHeaders, ...extra },
      json ?? JSON.stringify(message),
      order,
      // Its own signal alone (aborted by `close` too): one combined with the session's would stay reachable
      // from it, with the listeners the fetch leaves on it, for the session's life (found by review).
      abandoned ?? this.#abort.signal,
      stop,
    );
    order?.received();
    const requestId = isRequest(message) ? message.id : undefined;
    if (response.status === 202 || response.status === 204) {
      await response.body?.cancel();
      if (requestId !== undefined) {
        throw new RemoteError("lost", "the server accepted the request but sent no answer");
      }
      return;
    }
    if (!response.ok) {
      const body = await this.#errorBody(response);
      if (
        body !== undefined && requestId !== undefined && this.#isErrorAnswer(body, requestId) &&
        // A session the server no longer knows is opened again below (found by review: one server names the
        // request's id in its "No valid session" 400).
        !(response.status === 400 && this.#sessionId !== undefined && SESSION_REFUSED.test(body))
      ) {
        // The server's own error answer to the request (a revision 2026-07-28 server's -32020 or -32022,
        // with its data), passed on as it is: wrapped in mcp-proxy's -32000, its code and data were lost.
        // Only a 400 says the request was refused before it ran (a 500 says nothing of the kind).
        this.#deliverText(body, undefined, response.status === 400);
        return;
      }
      throw await this.#httpError(response, body);
    }
    const type = contentType(response);
    if (type.startsWith("text/event-stream")) {
      return await this.#readAnswerStream(response, requestId, abandoned, stop);
    }
    if (type.includes("json")) {
      let bytes = bodyInMemory(response);
      if (bytes === undefined) {
        try {
          bytes = await response.bytes();
        } catch (error) {
          throw new RemoteError("lost", `the answer broke off: ${fetchFailure(error, this.#url.href)}`);
        }
      }
      const text = decoder.decode(bytes);
      const answered = this.#deliverText(text, bytes);
      if (requestId !== undefined && !answered.includes(requestId)) {
        // Scrubbed whole: a credential cut short would be quoted in part (found by review).
        throw new RemoteError("lost", unansweredBy(this.#scrub(text)));
      }
      return;
    }
    await response.body?.cancel();
    if (requestId !== undefined) {
      throw new RemoteError("lost", `the server answered with content type "${type}"`);
    }
  }

  listen(after?: Promise<unknown>): void {
    if (this.#listening || this.#closed) return;
    this.#listening = true;
    const opening = Promise.withResolvers<void>();
    const opened = () => {
      clearTimeout(timer);
      if (this.#streamOpening === opening.promise) this.#streamOpening = undefined;
      opening.resolve();
    };
    this.#streamOpening = opening.promise;
    // A server may hold the head of the GET until it has something to send: wait only a moment.
    let timer = setTimeout(opened, after === undefined ? STREAM_OPEN_WAIT_MS : INITIALIZED_WAIT_MS);
    if (after === undefined) {
      this.#listenLoop(opened);
      return;
    }
    after.then(() => {
      if (this.#closed) return opened();
      clearTimeout(timer);
      timer = setTimeout(opened, STREAM_OPEN_WAIT_MS);
      this.#listenLoop(opened);
    }, () => {
      // Not sent: the relay sends it again (and listens again), or the session is lost.
      this.#listening = false;
      opened();
    });
  }

  /**
   * Ends the session. With `terminate` (the relay is closing), every exchange under way ends, and the
   * session is DELETEd at the server. Without (the session was lost or is being replaced), no message
   * goes any more and the GET stream stops, but requests under way are left to end as they will: an
   * answer may yet come, and one the server refuses for the session (404) goes again on the next. Ending
   * them here would leave no way to tell one the server never ran from one it is running.
   */
  async close(terminate = true): Promise<void> {
    const wasClosed = this.#closed;
    this.#closed = true;
    this.#stopListening.abort();
    if (!terminate) return;
    this.#abort.abort();
    for (const own of this.#live) own.abort();
    this.#live.clear();
    this.#abandonable.clear();
    this.#stoppable.clear();
    if (wasClosed || this.#sessionId === undefined) return;
    try {
      const response = await this.#fetch(this.#url, {
        method: "DELETE",
        headers: this.#headers({}),
        signal: AbortSignal.timeout(2000),
      });
      await response.body?.cancel();
    } catch {
      // The server is gone or slow: the session ends with it.
    }
  }

  // ---- internals --------------------------------------------------------------------------------

  #updateSessionHeaders(): void {
    const headers: Record<string, string> = {};
    if (this.#sessionId !== undefined) headers["Mcp-Session-Id"] = this.#sessionId;
    if (this.#protocolVersion !== undefined) headers["MCP-Protocol-Version"] = this.#protocolVersion;
    this.#sessionHeaders = headers;
    this.#postHeaders = Object.freeze({ ...POST_HEADERS, ...headers });
  }

  #headers(extra: Record<string, string>): Record<string, string> {
    return { ...extra, ...this.#sessionHeaders };
  }

  /**
   * Sends a request; `headers` must already hold the session's (see {@link #headers}). Kind `"closed"`
   * when the session was closed before it was sent, or ended with it when the relay closed.
   */
  async #request(
    method: string,
    headers: Record<string, string>,
    body?: string,
    order?: SendOrder,
    signal = this.#abort.signal,
    stop?: ExchangeStop,
  ): Promise<Response> {
    if (this.#closed) throw new RemoteError("closed", "the session with the server was closed");
    let response: Response;
    // A GET (a stream asked for, or asked for again) may go again whatever became of it; a POST once
    // written whole, never (see `fetchFailureKind`).
    let delivery: Delivery = "unwritten";
    try {
      const init: RequestInit & WrittenNotice = {
        method,
        headers,
        body,
        signal,
        onwritten: (known, fresh) => {
          if (method === "POST") delivery = known === false ? "unknown" : "written";
          order?.written(fresh);
        },
        onresend: () => delivery = "unwritten",
        stop,
      };
      response = await this.#fetch(this.#url, init);
    } catch (error) {
      if (this.#abort.signal.aborted) {
        throw new RemoteError("closed", "the session with the server was closed");
      }
      throw new RemoteError(fetchFailureKind(error, delivery), fetchFailure(error, this.#url.href));
    }
    if (this.#sessionId === undefined) {
      const sessionId = response.headers.get("mcp-session-id");
      if (sessionId !== null) {
        this.#sessionId = sessionId;
        this.#updateSessionHeaders();
      }
    }
    return response;
  }

  /**
   * The body of an error response that may be the server's JSON-RPC error answer: JSON, with a status
   * that is not one of those retried or handled below HTTP (401, 407, 408, 429, 502, 503, 504), nor a
   * session the server no longer knows (404). Undefined, with the body left unread, for any other.
   */
  async #errorBody(response: Response): Promise<string | undefined> {
    const { status } = response;
    if (PASSED_OVER_STATUSES.has(status) || (status === 404 && this.#sessionId !== undefined)) {
      return undefined;
    }
    if (!contentType(response).includes("json")) return undefined;
    const bytes = bodyInMemory(response);
    return bytes === undefined ? await bodyStart(response.body) : decoder.decode(bytes);
  }

  /** Whether `body` is one JSON-RPC error answer, to the request `id` (spelled any way JSON allows). */
  #isErrorAnswer(body: string, id: RequestId): boolean {
    const messages = parseMessages(body);
    if (typeof messages === "string" || messages.length !== 1) return false;
    const [message] = messages;
    return isResponse(message) && message.error !== undefined && message.id === id;
  }

  /** The error for an answer that is not 2xx; `read`: its body, when read already. */
  async #httpError(response: Response, read?: string): Promise<RemoteError> {
    const body = read === undefined ? await shortBody(response, this.#scrub) : oneLine(this.#scrub(read));
    const text = `the server answered HTTP ${response.status}${body ? `: ${body}` : ""}`;
    // The spec says 404; many servers built on the SDK's examples answer 400 "No valid session ID".
    const forgotten = response.status === 404 || (response.status === 400 && SESSION_REFUSED.test(body));
    if (forgotten && this.#sessionId !== undefined) {
      return new RemoteError("session-expired", `the server no longer knows the session (${text})`, 404);
    }
    return refusedWith(response, text);
  }

  /**
   * Delivers the message(s) in `text`; returns the ids of the answers among them. `bytes`, when given, are
   * what `text` was decoded from, written for one large message as they are (see `bodyAsLine`); `refused`:
   * `text` is the body of an HTTP 400 (see `RemoteTransport.onmessage`).
   */
  #deliverText(text: string, bytes?: Uint8Array<ArrayBuffer>, refused = false): RequestId[] {
    const messages = parseMessages(text);
    if (typeof messages === "string") {
      const start = this.#scrub(text).slice(0, 200);
      this.#onwarning(`the server sent an invalid message (${messages}); dropped: ${start}`);
      return [];
    }
    const answered: RequestId[] = [];
    const lines = receivedLines(messages.length, text, bytes);
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i];
      if (isResponse(message) && message.id !== null) answered.push(message.id);
      this.onmessage?.(message, lines[i], refused);
    }
    return answered;
  }

  /**
   * Reads an SSE stream to its end, delivering each message; records in `cursor` the last event id and
   * retry delay it saw, and whether the answer to `requestId` was among the messages.
   */
  async #readEvents(
    response: Response,
    requestId: RequestId | undefined,
    cursor: { lastEventId?: string; retryMs?: number; answered: boolean },
    abandoned?: AbortSignal,
    stop?: ExchangeStop,
  ): Promise<void> {
    /** What mcp-proxy's own handling of an event threw, whatever its type. */
    let ownFailure: unknown;
    const onEvent = (event: ServerSentEvent) => {
      if (event.id !== undefined) cursor.lastEventId = event.id;
      if (event.retry !== undefined) cursor.retryMs = event.retry;
      if (event.data === "" || event.event !== "message") return;
      let answered: RequestId[];
      try {
        answered = this.#deliverText(event.data, event.dataBytes);
      } catch (error) {
        ownFailure = error;
        throw error;
      }
      if (requestId !== undefined && answered.includes(requestId)) {
        cursor.answered = true;
        // Answered: nothing to cancel any more (its id may be the client's again).
        if (abandoned !== undefined && this.#abandonable.get(requestId)?.signal === abandoned) {
          this.#abandonable.delete(requestId);
        }
        if (stop !== undefined && this.#stoppable.get(requestId) === stop) this.#stoppable.delete(requestId);
      }
    };
    try {
      const whole = bodyInMemory(response);
      if (whole !== undefined) readEventStreamBytes(whole, onEvent);
      else await readEventStream(response.body!, onEvent);
    } catch (error) {
      // The stream broke: resumed below, or reported by the caller. Anything else is mcp-proxy's own
      // failure, which must not pass unseen (found by QA: events the parser failed on were lost unlogged).
      if (error === ownFailure || !(error instanceof TypeError || error instanceof DOMException)) {
        this.#onwarning(`reading the server's event stream failed: ${error}`);
      }
    }
  }

  /** Reads the stream a POST opened; resumes it with GET and `Last-Event-ID` when it breaks early. */
  async #readAnswerStream(
    response: Response,
    requestId: RequestId | undefined,
    abandoned?: AbortSignal,
    stop?: ExchangeStop,
  ): Promise<void> {
    const cursor: { lastEventId?: string; retryMs?: number; answered: boolean } = { answered: false };
    await this.#readEvents(response, requestId, cursor, abandoned, stop);
    const deadline = Date.now() + this.#resumeWindowMs;
    for (let attempt = 0; requestId !== undefined && !cursor.answered; attempt++) {
      if (this.#closed) throw new RemoteError("lost", "the connection to the server was closed");
      if (abandoned?.aborted || stop?.stopped) return;
      if (cursor.lastEventId === undefined) {
        throw new RemoteError("lost", "the server ended the answer stream before answering");
      }
      if (Date.now() >= deadline) {
        throw new RemoteError("lost", "the answer stream broke and could not be resumed in time");
      }
      // Not past the window (found by QA: a `retry` of minutes held the request that long).
      const wait = cursor.retryMs === undefined
        ? backoffDelay(attempt)
        : reconnectDelay(cursor.retryMs, attempt === 0 ? 0 : backoffDelay(attempt - 1));
      await sleep(Math.min(wait, deadline - Date.now()), abandoned ?? this.#abort.signal);
      if (this.#closed) {
        throw new RemoteError("lost", "the answer stream broke, and the session ended before it was resumed");
      }
      if (abandoned?.aborted || stop?.stopped) return;
      let resumed: Response;
      try {
        resumed = await this.#request(
          "GET",
          this.#headers({ Accept: "text/event-stream", "Last-Event-ID": cursor.lastEventId }),
          undefined,
          undefined,
          abandoned,
          stop,
        );
      } catch (error) {
        if (error instanceof RemoteError && error.kind === "unreachable") continue;
        // The request reached the server, which was answering it: it is lost, not to be sent again.
        if (error instanceof RemoteError && error.kind === "closed") {
          throw new RemoteError(
            "lost",
            "the answer stream broke, and the session ended before it was resumed",
          );
        }
        throw error;
      }
      if (!resumed.ok || !isEventStream(resumed)) {
        const error = await this.#httpError(resumed);
        if (error.kind === "session-expired") this.onsessionlost?.(error.message);
        throw new RemoteError("lost", `the answer stream could not be resumed (${error.message})`);
      }
      await this.#readEvents(resumed, requestId, cursor, abandoned, stop);
    }
  }

  /**
   * Keeps the GET stream open for the server's own messages, reconnecting when it drops; `opened` is
   * called once the first attempt has an answer (of any kind) or failed.
   */
  async #listenLoop(opened: () => void): Promise<void> {
    const cursor: { lastEventId?: string; retryMs?: number; answered: boolean } = { answered: false };
    // A 404 means the session is gone only once a stream worked: before, it means there is no stream.
    let streamWorked = false;
    /** GET streams in a row that ended within {@link SHORT_STREAM_MS}. */
    let shortStreams = 0;
    for (let attempt = 0; !this.#closed; attempt++) {
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      if (cursor.lastEventId !== undefined) headers["Last-Event-ID"] = cursor.lastEventId;
      let response: Response;
      try {
        response = await this.#request(
          "GET",
          this.#headers(headers),
          undefined,
          undefined,
          this.#stopListening.signal,
        );
      } catch {
        opened();
        await sleep(reconnectDelay(cursor.retryMs, backoffDelay(attempt)), this.#stopListening.signal);
        continue;
      }
      opened();
      if (response.status === 405) {
        // The server offers no stream of its own messages.
        await response.body?.cancel();
        return;
      }
      if (!response.ok || !isEventStream(response)) {
        const error = await this.#httpError(response);
        if (error.kind === "session-expired" && streamWorked) {
          if (!this.#closed) this.onsessionlost?.(error.message);
          return;
        }
        // A client error other than a timeout or rate limit does not go away by asking again: the server
        // offers no stream of its own messages (the spec says 405; many answer 404 or 400).
        if (response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)) {
          this.#onwarning(`the server offers no stream of its own messages (GET: ${error.message})`);
          return;
        }
        const delay = error.kind === "busy"
          ? busyDelay(error, attempt)
          : reconnectDelay(cursor.retryMs, backoffDelay(attempt));
        await sleep(delay, this.#stopListening.signal);
        continue;
      }
      attempt = -1;
      streamWorked = true;
      const openedAt = Date.now();
      await this.#readEvents(response, undefined, cursor);
      // A stream the server ends at once, again and again, is asked for less and less often.
      shortStreams = Date.now() - openedAt < SHORT_STREAM_MS ? shortStreams + 1 : 0;
      if (!this.#closed) {
        const least = shortStreams === 0 ? 0 : backoffDelay(shortStreams);
        await sleep(
          cursor.retryMs === undefined ? backoffDelay(shortStreams) : reconnectDelay(cursor.retryMs, least),
          this.#stopListening.signal,
        );
      }
    }
  }
}
