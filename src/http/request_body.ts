/**
 * Reading a POST's body, which fails when the client goes away before it has sent all of it: a client's
 * doing, logged at DEBUG, not an error of the proxy.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { MiddlewareHandler } from "hono";

/**
 * The body of `request`; undefined when it could not be read (the client closed the connection or
 * reset it mid-body), which `logger` notes at DEBUG. The caller answers 400: no one will read it.
 *
 * @example
 * ```ts
 * const bytes = await requestBody(request, logger);
 * if (bytes === undefined) return new Response("The request body could not be read", { status: 400 });
 * ```
 */
export async function requestBody(
  request: Request,
  logger: Logger,
): Promise<Uint8Array<ArrayBuffer> | "stalled" | undefined> {
  try {
    const length = Number.parseInt(request.headers.get("content-length") ?? "", 10);
    // Without a length (HTTP/2 may send none, found by review), or chunked: as it comes.
    if (
      !Number.isSafeInteger(length) || length < LARGE_BODY_BYTES || request.body === null ||
      request.headers.has("transfer-encoding")
    ) {
      return await request.bytes();
    }
    return await readExactly(request.body, length);
  } catch (error) {
    if (error instanceof StalledBody) {
      logger.debug("the body of a request stalled: {error}", { error: error.message });
      return "stalled";
    }
    logger.debug("the body of a request could not be read (the client went away?): {error}", { error });
    return undefined;
  }
}

/**
 * A body of which no part came for {@link BODY_IDLE_MS} is given up, and its connection with it: held, it
 * would hold its memory for as long as the client likes (found by QA: 3,000 POSTs stopped mid-body held
 * 700 MiB, never let go). One that comes slowly but comes is waited for. Only the bodies read piece by
 * piece are watched so (64 KiB or more, or chunked): a small one stalled holds no more than a request head
 * left unfinished, which Deno's server waits for as long.
 */
export const BODY_IDLE_MS = 30_000;

/** What a request whose body stalled is answered (HTTP 408), should its client still be there. */
export const STALLED_BODY = `Request Timeout: no part of the request body came for ${BODY_IDLE_MS / 1000} s`;

/** The error of a body read that {@link BODY_IDLE_MS} ended. */
class StalledBody extends Error {
  override name = "StalledBody";
  constructor() {
    super(`no part of it came for ${bodyIdle.limitMs / 1000} s`);
  }
}

/** The readers of bodies being read, each with when it last gave bytes (`Date.now()`). */
const bodiesBeingRead = new Map<ReadableStreamDefaultReader<Uint8Array>, number>();
/** Those a sweep gave up. */
const stalled = new WeakSet<ReadableStreamDefaultReader<Uint8Array>>();
let sweeping: ReturnType<typeof setInterval> | undefined;
/** How the idle limit is checked: for tests, shorter. */
const bodyIdle = { limitMs: BODY_IDLE_MS, sweepMs: 5000 };

/** For tests: the idle limit of bodies, and how often it is checked; returns the previous ones. */
export function setBodyIdleLimit(limitMs: number, sweepMs: number): { limitMs: number; sweepMs: number } {
  const previous = { ...bodyIdle };
  Object.assign(bodyIdle, { limitMs, sweepMs });
  return previous;
}

/** Watches `reader` for {@link BODY_IDLE_MS}: one sweep, while any body is being read. */
function watchBody(reader: ReadableStreamDefaultReader<Uint8Array>): void {
  bodiesBeingRead.set(reader, Date.now());
  if (sweeping !== undefined) return;
  sweeping = setInterval(() => {
    const now = Date.now();
    for (const [stale, at] of bodiesBeingRead) {
      if (now - at < bodyIdle.limitMs) continue;
      bodiesBeingRead.delete(stale);
      stalled.add(stale);
      stale.cancel().catch(() => {});
    }
    if (bodiesBeingRead.size === 0) stopSweeping();
  }, bodyIdle.sweepMs);
}

function unwatchBody(reader: ReadableStreamDefaultReader<Uint8Array>): void {
  bodiesBeingRead.delete(reader);
  if (bodiesBeingRead.size === 0) stopSweeping();
}

function stopSweeping(): void {
  clearInterval(sweeping);
  sweeping = undefined;
}

/**
 * From this length on, a body is read into a buffer of its length: `Request.bytes()` keeps the pieces and
 * the whole for a while, and a burst of 60 POSTs of 3 MiB took 750 MiB of memory with it, against 280 MiB.
 */
const LARGE_BODY_BYTES = 64 * 1024;

/** A body of `length` bytes (its `Content-Length`, which Deno's server holds it to), in one buffer. */
async function readExactly(
  body: ReadableStream<Uint8Array>,
  length: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = await readWithin(body, length, length);
  if (bytes === "too large") throw new Error(`the body is longer than its Content-Length ${length}`);
  if (bytes === "stalled") throw new StalledBody();
  if (bytes === undefined) throw new Error("the body could not be read");
  if (bytes.length !== length) throw new Error(`the body ended after ${bytes.length} of its ${length} bytes`);
  return bytes;
}

/** What a request whose body could not be read is answered, should its client still be there. */
export const UNREADABLE_BODY = "Bad Request: the request body could not be read";

const decoder = new TextDecoder();
/**
 * Fatal: a body that is not UTF-8 is refused, not passed on with its bytes replaced by U+FFFD. Used only
 * for a text that holds U+FFFD: a fatal decoder is much slower (about 15 µs of a 1 KiB call's CPU).
 */
const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

/** What the client is told of a body that is not UTF-8. */
export const NOT_UTF8 = "Parse error: the body is not valid UTF-8";

/** A request body's text, or undefined when it is not UTF-8 (JSON is, RFC 8259 §8.1). */
export function bodyText(bytes: Uint8Array): string | undefined {
  const text = decoder.decode(bytes);
  if (!text.includes("\uFFFD")) return text;
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Middleware that refuses a POST whose body is over `maxBytes` with `tooLarge()`: by its `Content-Length`
 * when it has one, else (chunked) once the handler has read it, up to the limit, into one buffer, from a
 * request made anew. The handler runs at once, as for any POST: it knows the POST has come before its
 * body has (found by review: a cancellation overtook a chunked call, see `ArrivalOrder`). Unlike Hono's
 * `bodyLimit`, the request made anew does not copy the original's `signal`, which Deno warns of on stderr
 * the first time (found by QA: a POST without a body put that plain text line in a JSON log).
 *
 * @example
 * ```ts
 * app.use("*", limitPostBody(4 * 1024 * 1024, () => new Response("Payload Too Large", { status: 413 })));
 * ```
 */
export function limitPostBody(maxBytes: number, tooLarge: () => Response): MiddlewareHandler {
  // Not async: the usual POST, with a length, goes on without a turn of its own.
  return (c, next) => {
    const request = c.req.raw;
    if (request.method !== "POST") return next();
    // A length sent twice alike reads "N, N": its first (found by review: `Number` made it NaN, let through).
    const length = Number.parseInt(request.headers.get("content-length") ?? "", 10);
    if (Number.isSafeInteger(length) && !request.headers.has("transfer-encoding")) {
      return length > maxBytes ? Promise.resolve(tooLarge()) : next();
    }
    if (request.body === null) return next();
    let over = false;
    c.req.raw = new Request(request.url, {
      method: "POST",
      headers: request.headers,
      body: collected(request.body, maxBytes, () => over = true),
    });
    return next().then(() => {
      // The handler could not read it (it answered 400): the answer is that it is too large.
      if (over) c.res = tooLarge();
    });
  };
}

/**
 * A stream of one piece: all of `source`, read up to `maxBytes` when the stream is first read (see
 * `readWithin`). It fails when `source` is longer (`onTooLarge` is told) or cannot be read.
 */
function collected(
  source: ReadableStream<Uint8Array>,
  maxBytes: number,
  onTooLarge: () => void,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  return new ReadableStream({
    async pull(controller) {
      const body = await readWithin(source, maxBytes);
      if (body === "too large") {
        onTooLarge();
        controller.error(new Error(`the body is over ${maxBytes} bytes`));
      } else if (body === "stalled") {
        controller.error(new StalledBody());
      } else if (body === undefined) controller.error(new Error("the client went away"));
      else {
        if (body.length !== 0) controller.enqueue(body);
        controller.close();
      }
    },
  });
}

/**
 * A body read up to `maxBytes`, each piece copied as it comes into one buffer (of `expected` bytes to start
 * with): a piece Deno gives is a view of a much larger one, and keeping the pieces kept those (found by
 * review: one-byte chunks took gigabytes). Undefined when the client went away mid-body.
 */
async function readWithin(
  source: ReadableStream<Uint8Array>,
  maxBytes: number,
  expected = Math.min(maxBytes, 64 * 1024),
): Promise<Uint8Array<ArrayBuffer> | "too large" | "stalled" | undefined> {
  let body = new Uint8Array(expected);
  let size = 0;
  const reader = source.getReader();
  watchBody(reader);
  try {
    for (;;) {
      const { value: chunk, done } = await reader.read();
      if (done) break;
      bodiesBeingRead.set(reader, Date.now());
      if (size + chunk.length > maxBytes) {
        reader.cancel().catch(() => {});
        return "too large";
      }
      if (size + chunk.length > body.length) {
        const grown = new Uint8Array(Math.min(maxBytes, Math.max(size + chunk.length, 2 * body.length)));
        grown.set(body.subarray(0, size));
        body = grown;
      }
      body.set(chunk, size);
      size += chunk.length;
    }
  } catch {
    return undefined;
  } finally {
    unwatchBody(reader);
  }
  // Given up by a sweep as its last piece came: whole all the same, when its length was known.
  const whole = expected === maxBytes && size === maxBytes;
  return stalled.has(reader) && !whole ? "stalled" : body.subarray(0, size);
}
