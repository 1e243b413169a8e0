/**
 * The client side of the legacy HTTP+SSE transport (MCP 2024-11-05), for one session: a GET opens the
 * event stream, whose first event, `endpoint`, names the URL to POST messages to; every message from
 * the server, answers included, comes on that stream. When the stream ends, so does the session.
 *
 * @module
 */

import { type JsonRpcMessage, parseMessages } from "../jsonrpc.ts";
import { type JsonText, receivedLines } from "../large_answer.ts";
import {
  bodyStart,
  type Delivery,
  fetchFailure,
  fetchFailureKind,
  refusedWith,
  RemoteError,
  type RemoteTransport,
  type RemoteTransportOptions,
  type SendOrder,
} from "./remote_transport.ts";
import type { WrittenNotice } from "./http1_fetch.ts";
import { readEventStream, type ServerSentEvent } from "./server_sent_events.ts";

/** Options of {@link LegacySseClient}. */
export interface LegacySseClientOptions extends RemoteTransportOptions {
  /** Reports messages that are not JSON-RPC. */
  onwarning?: (text: string) => void;
  /** How long `start()` waits for the stream's `endpoint` event once the stream is open. Default: 30 s. */
  endpointTimeoutMs?: number;
}

/** Frozen: the `fetch` of `http1_fetch.ts` then builds the request head they make once. */
const POST_HEADERS: Readonly<Record<string, string>> = Object.freeze({ "Content-Type": "application/json" });

/** A legacy SSE session with the server whose event stream is at `url`. */
export class LegacySseClient implements RemoteTransport {
  readonly kind = "sse";
  onmessage?: (message: JsonRpcMessage, json?: JsonText) => void;
  onsessionlost?: (reason: string) => void;
  readonly #url: URL;
  readonly #fetch: typeof fetch;
  readonly #onwarning: (text: string) => void;
  readonly #scrub: (text: string) => string;
  readonly #endpointTimeoutMs: number;
  /** Ends the event stream. */
  readonly #stopStream = new AbortController();
  /** Ends the POSTs under way. */
  readonly #abort = new AbortController();
  #endpoint: URL | undefined;
  #closed = false;
  /** POSTs under way. */
  #underWay = 0;
  /** After the session is lost, the time its POSTs under way have left (see {@link close}). */
  #lostWait: ReturnType<typeof setTimeout> | undefined;

  constructor(options: LegacySseClientOptions) {
    this.#url = options.url;
    this.#fetch = options.fetch;
    const scrub = options.scrub ?? ((text: string) => text);
    this.#scrub = scrub;
    const onwarning = options.onwarning ?? (() => {});
    this.#onwarning = (text) => onwarning(scrub(text));
    this.#endpointTimeoutMs = options.endpointTimeoutMs ?? 30_000;
  }

  async start(): Promise<void> {
    let response: Response;
    try {
      response = await this.#fetch(this.#url, {
        headers: { Accept: "text/event-stream" },
        signal: this.#stopStream.signal,
      });
    } catch (error) {
      throw new RemoteError(
        fetchFailureKind(error),
        fetchFailure(error, this.#url.href),
      );
    }
    const type = (response.headers.get("content-type") ?? "").toLowerCase();
    if (!response.ok || !type.startsWith("text/event-stream")) {
      await response.body?.cancel();
      const what = response.ok ? `content type "${type}"` : `HTTP ${response.status}`;
      throw refusedWith(response, `the SSE endpoint answered with ${what}`);
    }
    // The stream is read from here on; `start` is done once its endpoint event has come, or fails when it
    // does not come in time (a server that opens the stream and says nothing).
    const opened = Promise.withResolvers<void>();
    this.#readLoop(response.body!, opened);
    const seconds = this.#endpointTimeoutMs / 1000;
    const timer = setTimeout(
      () =>
        opened.reject(new RemoteError("lost", `the SSE stream sent no endpoint event within ${seconds} s`)),
      this.#endpointTimeoutMs,
    );
    return opened.promise.finally(() => clearTimeout(timer));
  }

  async send(message: JsonRpcMessage, json?: string, order?: SendOrder): Promise<void> {
    if (this.#endpoint === undefined || this.#closed) {
      throw new RemoteError("lost", "the SSE session is not open");
    }
    this.#underWay++;
    try {
      return await this.#post(this.#endpoint, message, json, order);
    } finally {
      if (--this.#underWay === 0) clearTimeout(this.#lostWait);
    }
  }

  async #post(endpoint: URL, message: JsonRpcMessage, json?: string, order?: SendOrder): Promise<void> {
    let response: Response;
    let delivery: Delivery = "unwritten";
    try {
      const init: RequestInit & WrittenNotice = {
        method: "POST",
        headers: POST_HEADERS,
        body: json ?? JSON.stringify(message),
        signal: this.#abort.signal,
        onwritten: (known, fresh) => {
          delivery = known === false ? "unknown" : "written";
          order?.written(fresh);
        },
        onresend: () => delivery = "unwritten",
      };
      response = await this.#fetch(endpoint, init);
      order?.received();
    } catch (error) {
      // One that never left (its token endpoint, or the server, refused the connection) may go again; one
      // written whole may have run, whatever the error says.
      throw new RemoteError(fetchFailureKind(error, delivery), fetchFailure(error, endpoint.href));
    }
    const body = this.#scrub(await bodyStart(response.body)).replace(/\s+/g, " ").trim().slice(0, 200);
    if (response.ok) return;
    const text = `the server answered HTTP ${response.status}${body ? `: ${body}` : ""}`;
    if (response.status === 404) throw new RemoteError("session-expired", text, 404);
    throw refusedWith(response, text);
  }

  listen(): void {
    // Every message already comes on the event stream.
  }

  setProtocolVersion(): void {
    // The legacy transport has no protocol version header.
  }

  /**
   * Ends the event stream; and, unless `terminate` is false (the session is lost: found so by a POST
   * answered 404, say), the POSTs under way, which otherwise learn their own fate (found by QA: those still
   * waiting for their 404 failed, and were not sent again on the next session) within `endpointTimeoutMs`.
   */
  close(terminate = true): Promise<void> {
    this.#closed = true;
    this.#stopStream.abort();
    clearTimeout(this.#lostWait);
    if (terminate) this.#abort.abort();
    else if (this.#underWay > 0) {
      // Their answers cannot come: those the server does not take in time are ended (found by review: one
      // never taken left its request unanswered, and the end of input waiting for ever).
      const seconds = this.#endpointTimeoutMs / 1000;
      this.#lostWait = setTimeout(() => {
        const why = `the SSE session was lost, and the server did not take this message within ${seconds} s`;
        this.#abort.abort(new Error(why));
      }, this.#endpointTimeoutMs);
    }
    return Promise.resolve();
  }

  /** The endpoint event's URL, resolved against the stream's; another origin is refused. */
  #endpointUrl(data: string): URL {
    const endpoint = new URL(data, this.#url);
    if (endpoint.origin !== this.#url.origin) {
      throw new RemoteError("http", `the server named an endpoint on another origin (${endpoint.origin})`);
    }
    return endpoint;
  }

  #deliver(event: ServerSentEvent): void {
    if (event.event !== "message" || event.data === "") return;
    const messages = parseMessages(event.data);
    if (typeof messages === "string") {
      this.#onwarning(
        `the server sent an invalid message (${messages}); dropped: ${this.#scrub(event.data).slice(0, 200)}`,
      );
      return;
    }
    // A large message goes on as the server's own bytes (see `bodyAsLine`), not encoded again.
    const lines = receivedLines(messages.length, event.data, event.dataBytes);
    messages.forEach((message, i) => this.onmessage?.(message, lines[i]));
  }

  /** Reads the event stream to its end: first its endpoint (then `opened` resolves), then messages. */
  async #readLoop(body: ReadableStream<Uint8Array>, opened: PromiseWithResolvers<void>): Promise<void> {
    let failure: unknown;
    /** What mcp-proxy's own handling of a message threw, whatever its type. */
    let ownFailure: unknown;
    try {
      await readEventStream(body, (event) => {
        if (this.#endpoint !== undefined || event.event !== "endpoint") {
          try {
            this.#deliver(event);
          } catch (error) {
            ownFailure = error;
            throw error;
          }
          return;
        }
        this.#endpoint = this.#endpointUrl(event.data);
        opened.resolve();
      });
    } catch (error) {
      // The stream broke; reported below. Anything else is mcp-proxy's own failure, which must not pass
      // unseen (found by QA: a parser's failure was reported as the stream's end).
      failure = error;
      if (
        error === ownFailure ||
        !(error instanceof TypeError || error instanceof DOMException || error instanceof RemoteError)
      ) {
        this.#onwarning(`reading the server's event stream failed: ${error}`);
      }
    }
    if (this.#endpoint === undefined) {
      opened.reject(
        failure instanceof RemoteError ? failure : new RemoteError(
          "unreachable",
          failure === undefined
            ? "the SSE stream ended before its endpoint event"
            : fetchFailure(failure, this.#url.href),
        ),
      );
      return;
    }
    if (!this.#closed) {
      this.#closed = true;
      this.onsessionlost?.("the SSE stream from the server ended");
    }
  }
}
