/**
 * What client mode needs from a wire to the remote server, whichever transport carries it: send a
 * message, receive messages, learn that the session is gone. Implemented by `StreamableHttpClient` and
 * `LegacySseClient`.
 *
 * @module
 */

import type { JsonRpcMessage, RequestId } from "../jsonrpc.ts";
import type { JsonText } from "../large_answer.ts";
import { certificateRefused, describeFetchError } from "./tls_fetch.ts";

/** Why a send failed, which decides what the relay does next. */
export type RemoteErrorKind =
  /** The server does not know the session any more (HTTP 404 with a session id): initialize again. */
  | "session-expired"
  /** The request never reached the server (connection refused, DNS, TLS): safe to try again. */
  | "unreachable"
  /** The request may have reached the server, but its answer cannot arrive (stream broke): answer with an error. */
  | "lost"
  /** The server refused the request with an HTTP status. */
  | "http"
  /**
   * The server refused for now (HTTP 429 or 503): the message did not run, and may go again, after
   * `retryAfterMs` when the server said (`Retry-After`).
   */
  | "busy"
  /** The server's TLS certificate was refused: never sent, and trying again would fail the same way. */
  | "refused"
  /**
   * The message was not sent: its session was closed first (lost or replaced), or the relay is closing
   * (Streamable HTTP). It may go again on a new session.
   */
  | "closed";

/** A failed exchange with the remote server; `message` is one line for the user. */
export class RemoteError extends Error {
  readonly kind: RemoteErrorKind;
  /** The HTTP status, for kind `"http"`, `"busy"` and `"session-expired"`. */
  readonly status?: number;
  /** For kind `"busy"`: how long the server asked to wait, in ms. */
  readonly retryAfterMs?: number;

  constructor(kind: RemoteErrorKind, message: string, status?: number, retryAfterMs?: number) {
    super(message);
    this.name = "RemoteError";
    this.kind = kind;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Statuses that say "not now": the request did not run, and may be sent again. */
const BUSY_STATUSES = new Set([429, 503]);

/**
 * The error for a response that refused a request with its `status`; `text` says so for the user. A 429
 * or 503 is kind `"busy"`, with the wait its `Retry-After` asks for; any other status is `"http"`.
 */
export function refusedWith(response: Response, text: string): RemoteError {
  if (!BUSY_STATUSES.has(response.status)) return new RemoteError("http", text, response.status);
  return new RemoteError("busy", text, response.status, retryAfterMs(response.headers.get("retry-after")));
}

/** Methods that change nothing at the server: one it may have run already can run again. */
const REPEATABLE_METHODS = new Set([
  "initialize",
  "ping",
  "tools/list",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "prompts/list",
  "prompts/get",
  "completion/complete",
]);

/**
 * Whether `error` is a gateway's (the forward proxy of `HTTP_PROXY`, a reverse proxy in front of the
 * server) that could not reach the server (HTTP 502 or 504), for a request of `method` that may go
 * again once it is back: one that changes nothing, as the gateway cannot say whether the server ran it.
 */
export function gatewayMissedServer(error: RemoteError, method: string | undefined): boolean {
  return error.kind === "http" && (error.status === 502 || error.status === 504) &&
    method !== undefined && REPEATABLE_METHODS.has(method);
}

/** How much of a body quoted in an error is read, and for how long at most: it is quoted short, and may not end. */
const BODY_START_BYTES = 64 * 1024;
const BODY_START_MS = 10_000;

/**
 * The start of a response's `body` as text, for an error to quote: up to {@link BODY_START_BYTES}, or
 * what came within {@link BODY_START_MS} (found by review: a body that never ends held the request for
 * ever); the rest is cancelled.
 */
export async function bodyStart(body: ReadableStream<Uint8Array> | null): Promise<string> {
  if (body === null) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let bytes = 0;
  const timer = setTimeout(() => reader.cancel().catch(() => {}), BODY_START_MS);
  try {
    while (bytes < BODY_START_BYTES) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      bytes += value.length;
      text += decoder.decode(value, { stream: true });
    }
    await reader.cancel();
  } catch {
    // Broken or cut short: what came is enough.
  } finally {
    clearTimeout(timer);
  }
  return text;
}

/**
 * A `Retry-After` value (RFC 9110 §10.2.3: seconds, or an HTTP date) as ms from `now`; undefined when
 * absent or unreadable. A date in the past is 0.
 */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Every HTTP date starts with its weekday: `Date.parse` would read a bare "1.5" as a date.
  if (!/^[A-Za-z]{3}/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * How far a message got on its way, for the messages after it to wait (each message is its own POST, and
 * a short one sent later could otherwise reach the server first). Either may be called more than once,
 * and as a method (they may use `this`).
 */
export interface SendOrder {
  /**
   * Its body is written to the connection (or, for a `fetch` that cannot tell, about to be); `fresh`: on a
   * connection opened for it (undefined: not known), which the server may read after one it kept.
   */
  written(fresh?: boolean): void;
  /** The server answered the POST (its head): it has read the message. */
  received(): void;
}

/** One session with the remote server over one transport. */
export interface RemoteTransport {
  /** `"streamablehttp"` or `"sse"`, for logs. */
  readonly kind: "streamablehttp" | "sse";
  /**
   * Receives every message from the server, in order of arrival; `json` is the message as the server
   * wrote it, on one line, when it came alone (not in a batch) and without line breaks: its text, or
   * for a large one its UTF-8 bytes. `refused`: an error answer the server gave as the body of an HTTP
   * 400 (Streamable HTTP), so before it ran any of the request.
   */
  onmessage?: (message: JsonRpcMessage, json?: JsonText, refused?: boolean) => void;
  /**
   * Cancels a request on its way by closing its stream, where that is how the protocol cancels it (revision
   * 2026-07-28 over Streamable HTTP); false when it cannot, and a `notifications/cancelled` is to say it.
   */
  abandon?(id: RequestId): boolean;
  /**
   * Stops waiting for the answer to the request `id` once `after` (its cancellation's sending) settles:
   * the stream that would carry it is closed, where there is one per request (Streamable HTTP).
   */
  letGo?(id: RequestId, after: Promise<unknown>): void;
  /** The session ended on the server's side (stream gone for good, or 404): a new one is needed. */
  onsessionlost?: (reason: string) => void;
  /** Opens the session (legacy SSE: the event stream and its `endpoint`); rejects with RemoteError. */
  start(): Promise<void>;
  /**
   * Sends one message. Resolves once the exchange is over: for Streamable HTTP when the POST's response
   * (and any stream it opened) ended, with the answers delivered through `onmessage` meanwhile.
   * Rejects with RemoteError. `json`, when given, is `message` as JSON text: sent as it is, so that a
   * message read from the client goes on unchanged and is not serialized again. `order`, when given, learns
   * how far the message got: see {@link SendOrder}.
   */
  send(message: JsonRpcMessage, json?: string, order?: SendOrder): Promise<void>;
  /**
   * Initialization is done: open the channel for messages the server sends on its own. With `after` (the
   * sending of `notifications/initialized`), once that is sent; messages sent meanwhile wait for the
   * channel to open, as they do for a moment after a `listen()` without it. A failed `after` opens
   * nothing: a later `listen` may.
   */
  listen(after?: Promise<unknown>): void;
  /** The protocol version agreed in initialize, sent as `MCP-Protocol-Version` from now on. */
  setProtocolVersion(version: string): void;
  /**
   * Ends every stream, and the session at the server (Streamable HTTP: DELETE) unless `terminate` is
   * false (the session is already gone).
   */
  close(terminate?: boolean): Promise<void>;
}

/** Options every transport takes. */
export interface RemoteTransportOptions {
  url: URL;
  /** `fetch` with TLS settings, headers and authorization applied. */
  fetch: typeof fetch;
  /**
   * Keeps the credentials `fetch` sends out of the server's text quoted in warnings and errors (see
   * `AuthorizedClient.scrub`). Default: none to keep out.
   */
  scrub?: (text: string) => string;
}

const UNDELIVERED =
  /refused|dns|lookup|resolve|not known|certificate|tls|handshake|unreachable|no route|getaddrinfo|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED/i;

/**
 * Whether a failed fetch certainly did not reach the server (so the request may be sent again): a
 * network failure (fetch rejects with a TypeError) of the kind that happens before sending.
 */
export function neverArrived(error: unknown): boolean {
  if (!(error instanceof TypeError)) return false;
  // Without the URLs it quotes (found by review: a path such as `/handshake/mcp` or `/dns/` decided it).
  const text = `${error.message} ${String(error.cause ?? "")}`.replace(URL_IN_TEXT, "").replace(
    HOST_IN_TEXT,
    "",
  );
  return UNDELIVERED.test(text) && (CONNECTING.test(text) || !MAY_HAVE_ARRIVED.test(text));
}

/** A URL in an error's text, to its next space (a path may hold parentheses: found by review). */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/\S*/gi;
/** The `(host:port)` Deno's errors name after the URL. */
const HOST_IN_TEXT = /\([^\s()]+:\d+\)/g;

/**
 * A connection that broke once made (a TLS one closed without `close_notify`, one reset or closed): the
 * request may have gone before it did, though the error names TLS. Unless it broke while being made
 * (found by review: Deno's `client error (Connect): tls handshake eof` was no longer tried again).
 */
const MAY_HAVE_ARRIVED = /close_notify|reset|closed|broken pipe|eof/i;
const CONNECTING = /\(connect\)|handshake/i;

/**
 * How far a request got before its `fetch` failed, as the `fetch` told (see `WrittenNotice`): `"written"`
 * whole (the server may have it: never sent again), `"unwritten"` (never written whole, or a request
 * that may go again whatever became of it, such as a GET), or `"unknown"` (a `fetch` that cannot tell:
 * the error's text decides).
 */
export type Delivery = "written" | "unwritten" | "unknown";

/**
 * The kind of a failed fetch, of a request that got as far as `delivery` says: `"refused"` for a
 * certificate refused (no use trying again), else `"unreachable"` when it never reached the server (see
 * {@link neverArrived}) or the token endpoint on its way (an error with `unreachable: true`), else
 * `"lost"`.
 */
export function fetchFailureKind(error: unknown, delivery: Delivery = "unknown"): RemoteErrorKind {
  // A token endpoint that could not be reached on the way (`OAuthError`): the request never left either.
  if ((error as { unreachable?: unknown } | undefined)?.unreachable === true) return "unreachable";
  // Written whole, it may have run, whatever the error says (found by QA: a TLS connection dropped
  // without close_notify read as one never made, and tool calls ran again and again).
  if (delivery === "written") return "lost";
  // A network failure of one not written may go again, whatever the failure (a handshake cut short, say).
  const safe = delivery === "unwritten" ? error instanceof TypeError : neverArrived(error);
  if (!safe) return "lost";
  return certificateRefused(error) ? "refused" : "unreachable";
}

/** One line for the user about a failed fetch: network failures described, other errors as they are. */
export function fetchFailure(error: unknown, url: string): string {
  return error instanceof TypeError
    ? describeFetchError(error, url)
    : (error as Error).message ?? String(error);
}

/** Waits `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

/**
 * How long to wait before asking again a server that refused for now (kind `"busy"`): as long as it asked
 * (at least 100 ms, for a `Retry-After: 0` said again and again; at most 5 min), else the back-off of
 * `attempt`.
 */
export function busyDelay(error: RemoteError, attempt: number): number {
  if (error.retryAfterMs === undefined) return backoffDelay(attempt);
  return Math.min(Math.max(100, error.retryAfterMs), MAX_BUSY_DELAY_MS);
}

/**
 * The longest wait {@link busyDelay} gives: a `Retry-After` of days (or beyond what `setTimeout` takes,
 * 2^31 ms, which it would run at once) is asked again after this.
 */
const MAX_BUSY_DELAY_MS = 5 * 60_000;

/** Delays between reconnection attempts: 250 ms, doubling, at most 5 s. */
export function backoffDelay(attempt: number): number {
  return Math.min(250 * 2 ** attempt, 5000);
}
