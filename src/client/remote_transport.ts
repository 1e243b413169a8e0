/**
 * What client mode needs from a wire to the remote server, whichever transport carries it: send a
 * message, receive messages, learn that the session is gone. Implemented by `StreamableHttpClient` and
 * `LegacySseClient`.
 *
 * @module
 */

import type { JsonRpcMessage } from "../jsonrpc.ts";
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
  /** The server's TLS certificate was refused: never sent, and trying again would fail the same way. */
  | "refused"
  /**
   * The transport was closed while the request was on its way, before any answer began (Streamable HTTP):
   * the session was replaced, or the relay is closing. The old session is gone at the server, which so
   * never ran the request: it may go again on the new one.
   */
  | "closed";

/** A failed exchange with the remote server; `message` is one line for the user. */
export class RemoteError extends Error {
  readonly kind: RemoteErrorKind;
  /** The HTTP status, for kind `"http"` and `"session-expired"`. */
  readonly status?: number;

  constructor(kind: RemoteErrorKind, message: string, status?: number) {
    super(message);
    this.name = "RemoteError";
    this.kind = kind;
    this.status = status;
  }
}

/** One session with the remote server over one transport. */
export interface RemoteTransport {
  /** `"streamablehttp"` or `"sse"`, for logs. */
  readonly kind: "streamablehttp" | "sse";
  /**
   * Receives every message from the server, in order of arrival; `json` is the message as the server
   * wrote it, on one line, when it came alone (not in a batch) and without line breaks: its text, or
   * for a large one its UTF-8 bytes.
   */
  onmessage?: (message: JsonRpcMessage, json?: JsonText) => void;
  /** The session ended on the server's side (stream gone for good, or 404): a new one is needed. */
  onsessionlost?: (reason: string) => void;
  /** Opens the session (legacy SSE: the event stream and its `endpoint`); rejects with RemoteError. */
  start(): Promise<void>;
  /**
   * Sends one message. Resolves once the exchange is over: for Streamable HTTP when the POST's response
   * (and any stream it opened) ended, with the answers delivered through `onmessage` meanwhile.
   * Rejects with RemoteError. `json`, when given, is `message` as JSON text: sent as it is, so that a
   * message read from the client goes on unchanged and is not serialized again.
   */
  send(message: JsonRpcMessage, json?: string): Promise<void>;
  /** Initialization is done: open the channel for messages the server sends on its own. */
  listen(): void;
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
}

const UNDELIVERED =
  /refused|dns|lookup|resolve|not known|certificate|tls|handshake|unreachable|no route|getaddrinfo|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED/i;

/**
 * Whether a failed fetch certainly did not reach the server (so the request may be sent again): a
 * network failure (fetch rejects with a TypeError) of the kind that happens before sending.
 */
export function neverArrived(error: unknown): boolean {
  return error instanceof TypeError && UNDELIVERED.test(`${error.message} ${String(error.cause ?? "")}`);
}

/**
 * The kind of a failed fetch: `"refused"` for a certificate refused (no use trying again), else
 * `"unreachable"` when it never reached the server (see {@link neverArrived}), else `"lost"`.
 */
export function fetchFailureKind(error: unknown): RemoteErrorKind {
  if (!neverArrived(error)) return "lost";
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

/** Delays between reconnection attempts: 250 ms, doubling, at most 5 s. */
export function backoffDelay(attempt: number): number {
  return Math.min(250 * 2 ** attempt, 5000);
}
