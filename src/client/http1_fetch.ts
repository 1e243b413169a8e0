/**
 * The `fetch` client mode sends its own requests with: HTTP/1.1 written and read by hand over
 * `Deno.connect` / `Deno.connectTls`, with connections kept for reuse per origin. On this machine class
 * Deno's `fetch` costs about as much per request as the rest of a relayed call together (`deno task
 * bench`, client mode rows and `bench/floor.ts`); this one costs a fraction of that.
 *
 * It covers what client mode sends: GET, POST and DELETE with a string or byte body, any headers, an
 * abort signal; responses with a length, chunked or read to the close, streamed as they arrive,
 * gzip/deflate undone. Everything else is passed to `fallback` unchanged: a `Request` object, another
 * kind of body, URL credentials, a URL that is not http or https, and every request while a proxy is
 * set in the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`: the fallback honours them). A
 * redirect is sent again through `fallback`, which follows it as `fetch` does, and so are the requests to
 * an origin whose TLS handshake refused HTTP/1.1 (a server that speaks only HTTP/2).
 *
 * A request that fails on a reused connection before any byte of an answer came back (the server had
 * closed the idle connection) is sent once more on a new one.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { VERSION } from "../version.ts";
import { proxyConfigured } from "./proxy_environment.ts";
import {
  type BodyFraming,
  HttpWireError,
  latin1,
  NULL_BODY_STATUSES,
  parseChunkSize,
  parseResponseHead,
  REDIRECT_STATUSES,
  requestHeadEnd,
  requestHeadStart,
  type ResponseHead,
  validHeader,
} from "./http1_wire.ts";

/** Options of {@link createHttp1Fetch}. */
export interface Http1FetchOptions {
  /** Sends what this `fetch` does not: see the module documentation. */
  fallback: typeof fetch;
  /** PEM certificates to trust besides the default root store, for https. */
  caCerts?: string[];
  /** Connections kept idle per origin; more are closed once their response is read. Default 32. */
  maxIdlePerOrigin?: number;
}

/** The bodies of the responses made here whose bytes were read whole before the response was made. */
const bodiesInMemory = new WeakMap<Response, Uint8Array<ArrayBuffer>>();

/**
 * The body of `response` if a `fetch` of this module read it whole before answering (a small body with a
 * length and no content coding): its bytes, to be used without a stream between them and the caller,
 * instead of reading the body. Undefined for any other response.
 */
export function bodyInMemory(response: Response): Uint8Array<ArrayBuffer> | undefined {
  return bodiesInMemory.get(response);
}

/**
 * What a caller may add to `fetch`'s `init`: `onwritten` is called once the request's body is written
 * whole to the connection, so that the next request can wait for it and reach the server after it, and
 * a failure after it is known to be one of a request the server may have run. A request left to the
 * fallback, which cannot tell, calls it at once with `known` false. `fetch` itself ignores the member.
 */
export interface WrittenNotice {
  /**
   * `fresh`: it went on a connection opened for it, which the server may read after a connection it kept
   * (a message written later on a kept connection may reach it first). Unknown (undefined) with `known`
   * false.
   */
  onwritten?: (known?: boolean, fresh?: boolean) => void;
  /**
   * Called when the request is to be sent again after an answer that shows the server did not run it (a
   * 401 whose token is renewed): what `onwritten` said of the first sending holds no more.
   */
  onresend?: () => void;
  /** Lets the caller end the exchange without a signal of its own: see {@link ExchangeStop}. */
  stop?: ExchangeStop;
}

/**
 * The way to end one exchange (its request, or the body of its response) that costs no signal and no
 * listener: the caller sets `stopped` and calls `onstop`, which the fetch sets while it holds the
 * connection. An exchange stopped fails, and is not sent again. A request left to the fallback gets a
 * signal that the stop aborts ({@link stopAsSignal}).
 */
export interface ExchangeStop {
  stopped: boolean;
  onstop?: () => void;
}

/** The error of an exchange its caller stopped (see {@link ExchangeStop}). */
function stoppedError(): DOMException {
  return new DOMException("the exchange was stopped", "AbortError");
}

/**
 * `init` for a `fetch` that knows no {@link ExchangeStop}: its stop, if any, becomes a signal of the
 * request's own (which only such requests pay for); one stopped already gives a signal aborted.
 */
export function stopAsSignal<Init extends RequestInit | undefined>(init: Init): Init {
  const stop = (init as WrittenNotice | undefined)?.stop;
  if (stop === undefined) return init;
  const stopping = new AbortController();
  if (stop.stopped) stopping.abort(stoppedError());
  else stop.onstop = () => stopping.abort(stoppedError());
  const signal = init?.signal ? AbortSignal.any([init.signal, stopping.signal]) : stopping.signal;
  return { ...init, signal };
}

/** A `fetch`, and the way to close the connections it keeps. */
export interface Http1Fetch {
  fetch: typeof fetch;
  /** Closes the idle connections, and those of requests still running (which fail). */
  close(): void;
}

const READ_SIZE = 64 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_LINE_BYTES = 8 * 1024;
/** Free space below which the read buffer is compacted or grown before a read. */
const MIN_READ_BYTES = 4 * 1024;
const SMALL_BODY_BYTES = 64 * 1024;
/**
 * A connection idle this long is given one turn of the event loop before it carries a request, for its
 * watch to report a close the server made meanwhile (see `exchange`).
 */
const LONG_IDLE_MS = 1000;
/** A server that closes a connection this soon after its answer closes every one after one answer. */
const QUICK_CLOSE_MS = 100;
/**
 * A connection of a server learned to close every one after its answer (see `learnIdleLimit`) that stays
 * open this long after its answer shows the server keeps them now: a server restarted, say (found by QA:
 * after an upstream restart, no connection was taken again until mcp-proxy itself restarted).
 */
const KEPT_OPEN_MS = 1000;
/** How much sooner than its server would close it an idle connection stops being taken (see {@link idleLimit}). */
const IDLE_MARGIN_MS = 1000;

/**
 * How long a connection may stay idle and still be taken for a request, when its server closes idle
 * connections after `serverMs`: a margin less, so that a request and the server's close do not cross, as
 * a request written whole is never sent again (see `exchange`).
 */
function idleLimit(serverMs: number): number {
  return serverMs > 2 * IDLE_MARGIN_MS ? serverMs - IDLE_MARGIN_MS : serverMs / 2;
}
const CR = 13;
const LF = 10;
/** URLs whose {@link Target} is kept; past that, the cache starts again. */
const MAX_TARGETS = 64;
/** A string with a character outside ASCII: its UTF-8 length is not its length. */
const NOT_ASCII = /[^\0-\x7f]/;
/** Headers this `fetch` writes itself. */
const OWN_HEADERS = new Set(["host", "content-length", "transfer-encoding", "connection", "keep-alive"]);
/** What mcp-proxy's own requests say they come from, unless a `-H User-Agent` says otherwise. */
export const USER_AGENT = `mcp-proxy/${VERSION}`;
const encoder = new TextEncoder();

/** `fetch`'s error for a request that failed below HTTP, with the cause attached. */
export function networkError(cause: unknown): TypeError {
  return new TypeError("fetch failed", { cause });
}

/** `fetch`'s error for a body that broke while it was read. */
function bodyError(cause: unknown): TypeError {
  return new TypeError("terminated", { cause });
}

/** Whether `error` is a TLS handshake the server ended for want of a protocol it speaks (HTTP/2 only). */
function refusesHttp1(error: unknown): boolean {
  const cause = error instanceof TypeError ? error.cause : undefined;
  return /NoApplicationProtocol|no_application_protocol/i.test(String(cause));
}

/** The request's header pairs, or undefined when one cannot be written as it is (the fallback decides). */
function headerPairs(init: HeadersInit | undefined): [string, string][] | undefined {
  const pairs: [string, string][] = [];
  let accept = false;
  let userAgent = false;
  const add = (name: string, value: string) => {
    const lower = name.toLowerCase();
    if (OWN_HEADERS.has(lower)) return true;
    if (lower === "accept") accept = true;
    else if (lower === "user-agent") userAgent = true;
    pairs.push([name, value]);
    return validHeader(name, value);
  };
  if (init instanceof Headers || Array.isArray(init)) {
    for (const [name, value] of init as Iterable<[string, string]>) if (!add(name, value)) return undefined;
  } else if (init !== undefined) {
    for (const name of Object.keys(init)) {
      if (!add(name, (init as Record<string, string>)[name])) return undefined;
    }
  }
  if (!accept) pairs.push(["accept", "*/*"]);
  if (!userAgent) pairs.push(["user-agent", USER_AGENT]);
  return pairs;
}

/**
 * The request as written: head and body as one piece when small, else in turn. A small ASCII text body
 * is encoded with the head, at once; others are encoded first, for their length.
 */
function requestParts(
  method: string,
  start: string,
  text: string | undefined,
  body: Uint8Array | undefined,
): Uint8Array[] {
  if (text !== undefined) {
    if (text.length <= SMALL_BODY_BYTES && !NOT_ASCII.test(text)) {
      return [encoder.encode(start + requestHeadEnd(method, text.length) + text)];
    }
    body = encoder.encode(text);
  }
  const head = encoder.encode(start + requestHeadEnd(method, body?.length));
  if (body === undefined) return [head];
  if (body.length > SMALL_BODY_BYTES) return [head, body];
  const message = new Uint8Array(head.length + body.length);
  message.set(head);
  message.set(body, head.length);
  return [message];
}

/** The body's bytes, undefined for none, or null when it is of a kind left to the fallback. */
function bodyBytes(body: BodyInit | null | undefined): Uint8Array | undefined | null {
  if (body === undefined || body === null) return undefined;
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  return null;
}

/** What a request needs of its URL: read once per URL text, as each of a URL's getters costs a µs or two. */
interface Target {
  /** An `http:` or `https:` URL without credentials: sent here, not left to the fallback. */
  direct: boolean;
  origin: string;
}

/** One connection to a server: a read buffer over it, and the state of reuse. */
class Connection {
  readonly origin: string;
  readonly #conn: Deno.Conn;
  #buffer: Uint8Array<ArrayBuffer> = new Uint8Array(READ_SIZE);
  #start = 0;
  #end = 0;
  /** A read made while the connection is idle, to learn at once when the server closes it. */
  #watch: Promise<number | null> | undefined;
  /** Set while the connection is parked: what to do if the server closes it then (see {@link park}). */
  #onIdleEnd: ((closedAfterMs?: number) => void) | undefined;
  /** When it was parked last (`performance.now()`). */
  #parkedAt = 0;
  /**
   * The watch of its last parking (see {@link #startWatch}) came back: before the next request is written,
   * that means the server closed it, or spoke out of turn.
   */
  #watchEnded = false;
  /** How long it was idle before it was last taken (see {@link unpark}). */
  idleMs = 0;
  /** How long it may stay idle and be taken again: the server said how long it keeps it (`Keep-Alive`). */
  idleLimitMs = Infinity;
  /** Counts the times the connection was parked: a watch due from an earlier one is not started. */
  #parkings = 0;
  /** The connection was unreferenced for its watch. */
  #unreferenced = false;
  /** Whether a request has been answered on it: a failure before the next answer may be a stale close. */
  used = false;
  /** Whether more than one request has been answered on it: its server keeps connections between answers. */
  reused = false;
  /** When its watch for a close began (see `park`); Infinity while parked and not yet watched. */
  #watchingSince = Infinity;
  /** How long it had been parked when its watch saw the server close it; undefined while no close was seen. */
  #closedAfterMs: number | undefined;
  closed = false;

  constructor(origin: string, conn: Deno.Conn) {
    this.origin = origin;
    this.#conn = conn;
  }

  async write(bytes: Uint8Array): Promise<void> {
    for (let written = 0; written < bytes.length;) {
      written += await this.#conn.write(bytes.subarray(written));
    }
  }

  /** Reads more bytes into the buffer; false at the end of the connection. */
  async #fill(): Promise<boolean> {
    const watch = this.#watch;
    if (watch !== undefined) {
      // The read made while idle fills the buffer from its start, where the next response begins.
      this.#watch = undefined;
      const count = await watch;
      if (count === null) return false;
      this.#end += count;
      return true;
    }
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#buffer.length - this.#end < MIN_READ_BYTES) {
      const buffered = this.#end - this.#start;
      if (buffered * 2 > this.#buffer.length) {
        const bigger = new Uint8Array(this.#buffer.length * 2);
        bigger.set(this.#buffer.subarray(this.#start, this.#end));
        this.#buffer = bigger;
      } else {
        this.#buffer.copyWithin(0, this.#start, this.#end);
      }
      this.#start = 0;
      this.#end = buffered;
    }
    const count = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (count === null) return false;
    this.#end += count;
    return true;
  }

  get buffered(): number {
    return this.#end - this.#start;
  }

  /** How long it has been parked, at `now` (`performance.now()`). */
  idleFor(now: number): number {
    return now - this.#parkedAt;
  }

  /**
   * Whether the server closed the connection (or spoke out of turn) while it was parked, as its watch
   * has reported by now: it cannot carry the request it was taken for, which has not been written yet.
   */
  get endedWhileIdle(): boolean {
    return this.#watchEnded;
  }

  /** How long its watch has seen no close (0 while parked and not yet watched). */
  watchedFor(now: number): number {
    return Math.max(0, now - this.#watchingSince);
  }

  /** Reads a response head: its Latin-1 text without the blank line, or null if the connection ended first. */
  readHead(): Promise<string | null> {
    return this.#readUntil(true, MAX_HEAD_BYTES, "the response head");
  }

  /** Reads a line of chunked framing, without its line break. */
  async readLine(): Promise<string> {
    const line = await this.#readUntil(false, MAX_LINE_BYTES, "a chunk line");
    if (line === null) throw new HttpWireError("the connection closed inside the body");
    return line;
  }

  /**
   * The Latin-1 text up to the next line break, or with `toBlankLine` up to the next blank line and the
   * line break before it; what ends the text is consumed too. A line break is an LF with or without a CR
   * before it: RFC 9112 §2.2 lets a recipient accept a bare LF, and some servers send one. Null if the
   * connection ended before any byte; `what` names the text in errors (too long, or cut off).
   */
  async #readUntil(toBlankLine: boolean, maxBytes: number, what: string): Promise<string | null> {
    let from = this.#start;
    for (;;) {
      const newline = this.#indexOfLineEnd(from, toBlankLine);
      if (newline !== -1) {
        let end = this.#beforeLineBreak(newline);
        if (toBlankLine) end = this.#beforeLineBreak(end - 1);
        const text = latin1(this.#buffer.subarray(this.#start, end));
        this.#start = newline + 1;
        return text;
      }
      if (this.buffered > maxBytes) throw new HttpWireError(`${what} is over ${maxBytes / 1024} KiB`);
      // Whether an LF ends the line is decided by the bytes before it: search again from the new ones.
      const offset = this.#end - this.#start;
      if (!await this.#fill()) {
        if (this.buffered === 0) return null;
        throw new HttpWireError(`the connection closed inside ${what}`);
      }
      from = this.#start + offset;
    }
  }

  /** Up to `max` bytes of the body, as a copy; null at the end of the connection. */
  async readSome(max: number): Promise<Uint8Array<ArrayBuffer> | null> {
    if (this.buffered === 0 && !await this.#fill()) return null;
    return this.take(Math.min(max, this.buffered))!;
  }

  /** The next `count` bytes, as a copy, if they are read already; else undefined, and nothing is taken. */
  take(count: number): Uint8Array<ArrayBuffer> | undefined {
    if (this.buffered < count) return undefined;
    const bytes = this.#buffer.slice(this.#start, this.#start + count);
    this.#start += count;
    return bytes;
  }

  /** The next `count` bytes, as a copy; null if the connection ends first. */
  async readExactly(count: number): Promise<Uint8Array<ArrayBuffer> | null> {
    while (this.buffered < count) {
      if (!await this.#fill()) return null;
    }
    return this.take(count)!;
  }

  /**
   * The index of the first LF at or after `from` that ends a line, or with `toBlankLine` a blank line
   * after another line's break (`\r\n\r\n`, `\n\n`, `\r\n\n`, `\n\r\n`); -1 if none was read yet.
   */
  #indexOfLineEnd(from: number, toBlankLine: boolean): number {
    const buffer = this.#buffer;
    const end = this.#end;
    for (let at = buffer.indexOf(LF, from); at !== -1 && at < end; at = buffer.indexOf(LF, at + 1)) {
      if (!toBlankLine) return at;
      const lineStart = this.#beforeLineBreak(at);
      if (lineStart > this.#start && buffer[lineStart - 1] === LF) return at;
    }
    return -1;
  }

  /** Where the line that the LF at `newline` ends stops: before that LF, and before a CR just before it. */
  #beforeLineBreak(newline: number): number {
    return newline > this.#start && this.#buffer[newline - 1] === CR ? newline - 1 : newline;
  }

  /**
   * Parks the connection for reuse, watching for the server closing it; `onEnd` runs if it does (with how
   * long it was idle when the server closed it; undefined when the server spoke out of turn instead).
   * False if it cannot be reused (bytes beyond the response). The watch starts once the event loop's
   * turn is over: starting a read costs some µs, which the response just read need not wait for.
   */
  park(onEnd: (closedAfterMs?: number) => void): boolean {
    if (this.closed || this.buffered !== 0) return false;
    this.#start = this.#end = 0;
    this.#onIdleEnd = onEnd;
    this.#parkedAt = performance.now();
    this.#watchingSince = Infinity;
    this.#watchEnded = false;
    this.#closedAfterMs = undefined;
    const parking = ++this.#parkings;
    setImmediate(() => {
      if (parking === this.#parkings && this.#onIdleEnd !== undefined && !this.closed) this.#startWatch();
    });
    return true;
  }

  /**
   * Starts the watch of a connection taken before its watch began (see `exchange`), so that a turn of the
   * event loop can show whether the server closed it meanwhile.
   */
  watchNow(): void {
    if (this.#watch === undefined && !this.#watchEnded && !this.closed) this.#startWatch(false);
  }

  /** How long it had been parked when its server closed it, as its watch saw; undefined if it did not. */
  get closedAfterMs(): number | undefined {
    return this.#closedAfterMs;
  }

  /** Starts a read that reports a close; `unref`: while parked, the read does not keep the process alive. */
  #startWatch(unref = true): void {
    this.#watchingSince = performance.now();
    const watch = this.#conn.read(this.#buffer);
    this.#watch = watch;
    watch.then(
      (count) => {
        this.#watchEnded = true;
        if (count === null) this.#closedAfterMs = performance.now() - this.#parkedAt;
        // Once the connection is taken again, what the read brings is the next response (see #fill).
        if (this.#onIdleEnd === undefined) return;
        if (count !== null) this.#end = count;
        // The server closed it, or spoke out of turn: either way it cannot carry a request.
        this.#endIdle(this.#closedAfterMs);
      },
      () => {
        this.#watchEnded = true;
        if (this.#onIdleEnd !== undefined) this.#endIdle();
      },
    );
    if (!unref) return;
    try {
      this.#conn.unref();
      this.#unreferenced = true;
    } catch {
      // Not every connection kind can be unreferenced; it then keeps the process alive while idle.
    }
  }

  /** Takes a parked connection for a request. */
  unpark(): void {
    this.#onIdleEnd = undefined;
    if (!this.#unreferenced) return;
    this.#unreferenced = false;
    try {
      this.#conn.ref();
    } catch {
      // See #startWatch().
    }
  }

  /** Ends the parked connection; `closedAfterMs`: the server closed it after that long idle. */
  #endIdle(closedAfterMs?: number): void {
    const onEnd = this.#onIdleEnd;
    this.#onIdleEnd = undefined;
    this.close();
    onEnd?.(closedAfterMs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side.
    }
  }
}

/**
 * What to do when a signal aborts, with one listener per signal: a listener added and removed per
 * request costs about 3 µs of it, and client mode gives every request of a session the same signal.
 */
class AbortWatch {
  readonly #callbacks = new WeakMap<AbortSignal, Set<() => void>>();

  /** Runs `callback` when `signal` aborts, unless {@link forget} takes it back first. */
  watch(signal: AbortSignal, callback: () => void): void {
    let callbacks = this.#callbacks.get(signal);
    if (callbacks === undefined) {
      const set = callbacks = new Set();
      this.#callbacks.set(signal, set);
      signal.addEventListener("abort", () => {
        const due = [...set];
        set.clear();
        for (const run of due) run();
      }, { once: true });
    }
    callbacks.add(callback);
  }

  forget(signal: AbortSignal, callback: () => void): void {
    this.#callbacks.get(signal)?.delete(callback);
  }
}

/** The body of one response as a stream, chunk by chunk as it arrives. */
function bodyStream(
  connection: Connection,
  framing: BodyFraming,
  finished: (reusable: boolean) => void,
  signal: AbortSignal | undefined,
  aborts: AbortWatch,
  stop: ExchangeStop | undefined,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  let remaining = framing.kind === "length" ? framing.length : 0;
  let chunkLeft = 0;
  let done = false;
  let onAbort = () => {};
  const finish = (reusable: boolean) => {
    if (done) return;
    done = true;
    if (signal !== undefined) aborts.forget(signal, onAbort);
    finished(reusable);
  };

  /** The next piece of the body, or null at its end. */
  const next = async (): Promise<Uint8Array<ArrayBuffer> | null> => {
    switch (framing.kind) {
      case "none":
        return null;
      case "length": {
        if (remaining === 0) return null;
        const bytes = await connection.readSome(Math.min(remaining, READ_SIZE));
        if (bytes === null) throw new HttpWireError("the connection closed before the body was complete");
        remaining -= bytes.length;
        return bytes;
      }
      case "close":
        return await connection.readSome(READ_SIZE);
      case "chunked": {
        if (chunkLeft === 0) {
          chunkLeft = parseChunkSize(await connection.readLine());
          if (chunkLeft === 0) {
            // Trailers, up to the blank line: read and dropped, as fetch does.
            while ((await connection.readLine()) !== "");
            return null;
          }
        }
        const bytes = await connection.readSome(Math.min(chunkLeft, READ_SIZE));
        if (bytes === null) throw new HttpWireError("the connection closed before the body was complete");
        chunkLeft -= bytes.length;
        if (chunkLeft === 0 && (await connection.readLine()) !== "") {
          throw new HttpWireError("a chunk is longer than its size line says");
        }
        return bytes;
      }
    }
  };

  return new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(controller) {
      onAbort = () => {
        if (done) return;
        finish(false);
        controller.error(signal!.reason);
      };
      if (signal !== undefined) aborts.watch(signal, onAbort);
    },
    async pull(controller) {
      if (done) return;
      try {
        for (;;) {
          const bytes = await next();
          if (done) return;
          if (bytes === null) {
            finish(framing.kind !== "close");
            controller.close();
            return;
          }
          if (bytes.length > 0) {
            controller.enqueue(bytes);
            return;
          }
        }
      } catch (error) {
        if (done) return;
        finish(false);
        controller.error(stop?.stopped ? stoppedError() : bodyError(error));
      }
    },
    cancel() {
      finish(false);
    },
  });
}

/** The response body decoded from its `Content-Encoding`, or a network error for one it cannot undo. */
function decoded(
  body: ReadableStream<Uint8Array<ArrayBuffer>>,
  encoding: string,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  switch (encoding) {
    case "":
    case "identity":
      return body;
    case "gzip":
    case "x-gzip":
      return body.pipeThrough(new DecompressionStream("gzip"));
    case "deflate":
      return body.pipeThrough(new DecompressionStream("deflate"));
  }
  body.cancel();
  throw networkError(new Error(`unsupported Content-Encoding: ${encoding}`));
}

/**
 * Returns a `fetch` on hand-written HTTP/1.1 with connections kept per origin (see the module
 * documentation for what it leaves to `fallback`).
 *
 * @example
 * ```ts
 * const http = createHttp1Fetch({ fallback: fetch });
 * try {
 *   const response = await http.fetch("http://127.0.0.1:8080/mcp", { method: "POST", body: "{}" });
 *   console.error(response.status, await response.text());
 * } finally {
 *   http.close();
 * }
 * ```
 */
export function createHttp1Fetch(options: Http1FetchOptions): Http1Fetch {
  const { fallback, caCerts } = options;
  const maxIdle = options.maxIdlePerOrigin ?? 32;
  const idle = new Map<string, Connection[]>();
  const busy = new Set<Connection>();
  let closed = false;
  // Read once, as Deno's fetch reads them once for its client.
  const viaProxy = proxyConfigured();
  /** Origins whose TLS handshake refused HTTP/1.1: their requests go to the fallback. */
  const http2Origins = new Set<string>();
  const aborts = new AbortWatch();
  /** By URL text (`href`, which a URL holds as it is); see {@link Target}. */
  const targets = new Map<string, Target>();

  const targetOf = (url: URL, href: string): Target => {
    let target = targets.get(href);
    if (target === undefined) {
      if (targets.size >= MAX_TARGETS) targets.clear();
      const { protocol } = url;
      const direct = (protocol === "http:" || protocol === "https:") && url.username === "" &&
        url.password === "";
      targets.set(href, target = { direct, origin: url.origin });
    }
    return target;
  };

  /**
   * The start of the request head ({@link requestHeadStart}) made last for each frozen header record a
   * caller sends with, and for which method and URL: a record that cannot change need not be checked and
   * written out again (client mode sends every POST of a session with the same one).
   */
  const frozenHeads = new WeakMap<object, { method: string; href: string; start: string }>();

  /** The start of the request head, or undefined when a header cannot be written as it is. */
  const headStart = (
    method: string,
    url: URL,
    href: string,
    init: HeadersInit | undefined,
  ): string | undefined => {
    // Only a plain record: a frozen array may hold pairs that are not, and `Headers` changes inside.
    const frozen = init !== undefined && !(init instanceof Headers) && !Array.isArray(init) &&
        Object.isFrozen(init)
      ? init
      : undefined;
    if (frozen === undefined) {
      const pairs = headerPairs(init);
      return pairs === undefined ? undefined : requestHeadStart(method, url, pairs);
    }
    const kept = frozenHeads.get(frozen);
    if (kept !== undefined && kept.method === method && kept.href === href) return kept.start;
    const pairs = headerPairs(frozen);
    if (pairs === undefined) return undefined;
    const start = requestHeadStart(method, url, pairs);
    frozenHeads.set(frozen, { method, href, start });
    return start;
  };

  const removeIdle = (connection: Connection) => {
    const list = idle.get(connection.origin);
    const at = list?.indexOf(connection) ?? -1;
    if (at !== -1) list!.splice(at, 1);
  };

  /** Origins where a request gives the connection it took a turn (see `exchange`): until it goes on. */
  const turns = new Map<string, Promise<void>>();

  /**
   * For each origin whose server was seen closing an idle connection, how long a connection to it may stay
   * idle and still be taken (see {@link idleLimit}): learned, as not every server says it (`Keep-Alive`).
   */
  const idleLimits = new Map<string, number>();

  /**
   * Origins whose server was seen closing a connection right after its one answer: their parked
   * connections are not taken (see `learnIdleLimit`). Apart from {@link idleLimits}, which outlives it.
   */
  const closingAfterAnswer = new Set<string>();

  /** `origin`'s server closes every connection after one answer, as far as is known now. */
  const learnClosingAfterAnswer = (origin: string) => {
    if (closingAfterAnswer.size >= MAX_TARGETS) closingAfterAnswer.clear();
    closingAfterAnswer.add(origin);
  };

  /**
   * The server closed `connection` after it was idle for `closedAfterMs`: later ones go before that. A
   * close after an idle time servers set (seconds) counts as such, the longest seen: a server that
   * restarts closes its connections however long they were idle, which says nothing of how long it keeps
   * them. A close right after an answer is a server that closes every connection after one answer without
   * saying so (`Connection: close`): its connections are not taken again, as the next request would cross
   * the close; they are left parked instead, until one stays open {@link KEPT_OPEN_MS} (see `reuse`), or a
   * close after seconds shows otherwise.
   */
  const learnIdleLimit = (connection: Connection, closedAfterMs: number) => {
    const { origin } = connection;
    if (closedAfterMs < QUICK_CLOSE_MS) {
      // One its server kept between answers and then closed at once is a server stopping (a restart), not
      // one that closes every connection after its answer (found by QA: after an upstream restart, no
      // connection was taken again until mcp-proxy itself restarted).
      if (!connection.reused) learnClosingAfterAnswer(origin);
      return;
    }
    if (closedAfterMs < 2 * IDLE_MARGIN_MS) return;
    closingAfterAnswer.delete(origin);
    const known = idleLimits.get(origin) ?? 0;
    if (idleLimits.size >= MAX_TARGETS) idleLimits.clear();
    idleLimits.set(origin, Math.max(known, idleLimit(closedAfterMs)));
  };

  const release = (connection: Connection, reusable: boolean) => {
    busy.delete(connection);
    connection.reused = connection.used;
    connection.used = true;
    if (!reusable || closed) return connection.close();
    let list = idle.get(connection.origin);
    if (list === undefined) idle.set(connection.origin, list = []);
    const parked = list.length < maxIdle && connection.park((closedAfterMs) => {
      removeIdle(connection);
      if (closedAfterMs !== undefined) learnIdleLimit(connection, closedAfterMs);
    });
    if (!parked) return connection.close();
    list.push(connection);
  };

  /**
   * An idle connection to `origin`, taken for a request; undefined when there is none. One idle for
   * about as long as its server keeps idle connections is closed instead: the server may be closing it
   * as the request goes.
   */
  const reuse = (origin: string): Connection | undefined => {
    const list = idle.get(origin);
    if (list === undefined || list.length === 0) return undefined;
    const now = performance.now();
    if (closingAfterAnswer.size !== 0 && closingAfterAnswer.has(origin)) {
      // None is taken (it could be closing as the request goes), but one that stayed open long after its
      // answer (the oldest parked) shows the server keeps its connections now; an idle limit learned
      // before still holds (found by review: it was forgotten).
      // Watched, not merely parked: a watch that could not start (a stalled event loop) has seen nothing.
      if (list[0].watchedFor(now) < KEPT_OPEN_MS) return undefined;
      closingAfterAnswer.delete(origin);
    }
    const learned = idleLimits.get(origin) ?? Infinity;
    for (let reused = list.pop(); reused !== undefined; reused = list.pop()) {
      if (reused.idleFor(now) >= Math.min(reused.idleLimitMs, learned)) {
        reused.close();
        continue;
      }
      reused.idleMs = reused.idleFor(now);
      reused.unpark();
      busy.add(reused);
      return reused;
    }
    return undefined;
  };

  /** A new connection to the origin of `url` (`origin`). */
  const connect = async (url: URL, origin: string, signal: AbortSignal | undefined): Promise<Connection> => {
    const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    const secure = url.protocol === "https:";
    const port = Number(url.port || (secure ? 443 : 80));
    let conn: Deno.Conn;
    try {
      conn = secure
        ? await Deno.connectTls({ hostname, port, caCerts, alpnProtocols: ["http/1.1"] })
        : await Deno.connect({ hostname, port });
    } catch (error) {
      throw networkError(error);
    }
    const connection = new Connection(origin, conn);
    if (closed || signal?.aborted) {
      connection.close();
      throw signal?.aborted ? signal.reason : networkError(new Error("the client is closed"));
    }
    busy.add(connection);
    if (!secure) (conn as Deno.TcpConn).setNoDelay(true);
    return connection;
  };

  /**
   * Sends the request (`parts`, written in turn) on one connection and reads the response head, and a
   * small body with a length (saving a stream); null if a reused connection was closed before the request
   * could be written whole, which is then safe to send again.
   *
   * A request written whole is never sent again, whatever follows (found by QA: a server that takes a
   * request and drops the connection within milliseconds, or a proxy that resets it, ran tool calls
   * twice): the server may have run it. The one race that leaves, a kept-alive connection the server
   * closes just as a request is written to it, is kept rare: a connection idle about as long as the
   * server keeps idle ones is not taken (see `reuse`), and one idle for long gets a turn of the event loop
   * first, for its watch to report a close already made.
   */
  const exchange = async (
    url: URL,
    origin: string,
    method: string,
    parts: readonly Uint8Array[],
    signal: AbortSignal | undefined,
    onwritten: ((known?: boolean, fresh?: boolean) => void) | undefined,
    stop: ExchangeStop | undefined,
  ): Promise<{ connection: Connection; head: ResponseHead; small?: Uint8Array<ArrayBuffer> } | null> => {
    // An idle connection is taken at once: the request leaves before anything else runs. But one idle for
    // long, and one that has carried only one answer (its server may close every connection after one
    // answer, without saying so), get a turn of the event loop first, for the watch to report a close the
    // server made meanwhile (found by review: back-to-back requests to such a server, the second taking the
    // connection before its watch began, crossed the close and failed). Once per connection, the second.
    // Requests to the origin made meanwhile wait behind it, so that they leave in the order they came.
    while (turns.size !== 0 && turns.has(origin)) await turns.get(origin);
    // Aborted while it waited (found by review: it was sent anyway, its abort never heard).
    signal?.throwIfAborted();
    let taken: Connection | undefined;
    let turn: PromiseWithResolvers<void> | undefined;
    try {
      while ((taken = reuse(origin)) !== undefined && (taken.idleMs >= LONG_IDLE_MS || !taken.reused)) {
        if (turn === undefined) {
          turn = Promise.withResolvers<void>();
          turns.set(origin, turn.promise);
        }
        taken.watchNow();
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (signal?.aborted) {
          release(taken, false);
          throw signal.reason;
        }
        if (!taken.endedWhileIdle) break;
        // Learned before it is released, which counts its answer as its last.
        const closedAfterMs = taken.closedAfterMs;
        if (closedAfterMs !== undefined) learnIdleLimit(taken, closedAfterMs);
        release(taken, false);
      }
    } finally {
      // The requests waiting go on once this one has started writing (below, before any await).
      if (turn !== undefined) {
        turns.delete(origin);
        turn.resolve();
      }
    }
    const connection = taken ?? await connect(url, origin, signal);
    if (stop !== undefined) {
      if (stop.stopped) {
        release(connection, true); // Nothing was written on it.
        throw stoppedError();
      }
      stop.onstop = () => connection.close();
    }
    const reused = connection.used;
    let written = false;
    let answered = false;
    const onAbort = () => connection.close();
    if (signal !== undefined) aborts.watch(signal, onAbort);
    try {
      for (const part of parts) await connection.write(part);
      written = true;
      onwritten?.(true, !reused);
      for (;;) {
        const text = await connection.readHead();
        if (text === null) throw new HttpWireError("the server closed the connection without answering");
        answered = true;
        const response = parseResponseHead(text, method);
        if (response.keepAliveTimeoutMs !== undefined) {
          connection.idleLimitMs = idleLimit(response.keepAliveTimeoutMs);
        }
        // 1xx answers (100 Continue, 103 Early Hints) come before the real one.
        if (response.status >= 100 && response.status < 200) {
          if (response.status === 101) throw new HttpWireError("the server switched protocols");
          continue;
        }
        const { framing } = response;
        if (framing.kind !== "length" || framing.length > SMALL_BODY_BYTES) {
          return { connection, head: response };
        }
        const small = connection.take(framing.length) ?? await connection.readExactly(framing.length);
        if (small === null) throw new HttpWireError("the connection closed before the body was complete");
        return { connection, head: response, small };
      }
    } catch (error) {
      release(connection, false);
      if (signal?.aborted) throw signal.reason;
      if (stop?.stopped) throw stoppedError();
      // A reused connection the server had closed, found so before the request was written whole.
      if (reused && !written) return null;
      // One closed with a request on it and no answer begun: its server may close every connection a
      // moment after one answer, without saying so (found by QA: 30 ms after, and every second request
      // crossed the close). Its connections are not taken again until one stays open (see `reuse`): for a
      // server restarting instead, a second or so of new connections.
      if (reused && !answered && !closed) learnClosingAfterAnswer(origin);
      throw error instanceof TypeError ? error : networkError(error);
    } finally {
      if (signal !== undefined) aborts.forget(signal, onAbort);
    }
  };

  /** The fallback cannot tell when it has written the body: it counts as written now. */
  const viaFallback = (input: RequestInfo | URL, init: RequestInit | undefined) => {
    (init as WrittenNotice | undefined)?.onwritten?.(false);
    return fallback(input, stopAsSignal(init));
  };

  const http1Fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    if (input instanceof Request || closed) return viaFallback(input, init);
    let url: URL;
    try {
      url = input instanceof URL ? input : new URL(input);
    } catch {
      return viaFallback(input, init);
    }
    const method = (init?.method ?? "GET").toUpperCase();
    const text = typeof init?.body === "string" ? init.body : undefined;
    const body = text === undefined ? bodyBytes(init?.body) : undefined;
    const href = url.href;
    const { direct, origin } = targetOf(url, href);
    const start = headStart(method, url, href, init?.headers);
    if (
      !direct || body === null || start === undefined ||
      (init as { client?: unknown } | undefined)?.client !== undefined ||
      viaProxy || http2Origins.has(origin)
    ) {
      return viaFallback(input, init);
    }
    const signal = init?.signal ?? undefined;
    signal?.throwIfAborted();
    const parts = requestParts(method, start, text, body);

    let answered: Awaited<ReturnType<typeof exchange>>;
    const { onwritten, stop } = (init ?? {}) as WrittenNotice;
    try {
      answered = await exchange(url, origin, method, parts, signal, onwritten, stop);
      // A reused connection the server had closed: once more, on a new one.
      if (answered === null) answered = await exchange(url, origin, method, parts, signal, onwritten, stop);
    } catch (error) {
      if (!refusesHttp1(error)) throw error;
      // A server that speaks only HTTP/2 refused the TLS handshake: fetch speaks it.
      http2Origins.add(origin);
      return viaFallback(input, init);
    }
    if (answered === null) {
      throw networkError(new Error("the server closed the connection without answering"));
    }
    const { connection, head: response, small } = answered;

    if (REDIRECT_STATUSES.has(response.status) && init?.redirect !== "manual" && hasLocation(response)) {
      release(connection, false);
      // Sent again, from the start, by a fetch that cannot tell when it has written it (found by review:
      // the first sending, answered with a redirect, counted as the one that failed).
      return viaFallback(input, init);
    }

    let responseBody: ReadableStream<Uint8Array<ArrayBuffer>> | Uint8Array<ArrayBuffer> | null = null;
    const { framing } = response;
    if (framing.kind === "none" || small !== undefined) {
      // Parked from now on: another exchange's, not this one's, to end.
      if (stop !== undefined) stop.onstop = undefined;
      release(connection, response.keepAlive);
      if (small !== undefined && response.contentEncoding === "") responseBody = small;
      else if (small !== undefined) {
        responseBody = decoded(new Response(small).body!, response.contentEncoding);
      }
    } else {
      const stream = bodyStream(
        connection,
        framing,
        (reusable) => {
          if (stop !== undefined) stop.onstop = undefined;
          release(connection, reusable && response.keepAlive);
        },
        signal,
        aborts,
        stop,
      );
      responseBody = decoded(stream, response.contentEncoding);
    }
    if (NULL_BODY_STATUSES.has(response.status) || method === "HEAD") {
      if (responseBody instanceof ReadableStream) await responseBody.cancel();
      responseBody = null;
    }
    try {
      // Headers appended one by one: `new Response` converts those of its `init` at twice the cost.
      const answer = new Response(responseBody, { status: response.status, statusText: response.statusText });
      for (const [name, value] of response.headers) answer.headers.append(name, value);
      if (responseBody !== null && responseBody === small) bodiesInMemory.set(answer, small);
      return answer;
    } catch (error) {
      // A header value `Headers` refuses.
      if (responseBody instanceof ReadableStream) await responseBody.cancel();
      throw networkError(error);
    }
  };

  return {
    fetch: http1Fetch,
    close() {
      closed = true;
      for (const list of idle.values()) for (const connection of list) connection.close();
      idle.clear();
      for (const connection of busy) connection.close();
      busy.clear();
    },
  };
}

function hasLocation(head: ResponseHead): boolean {
  return head.headers.some(([name]) => name.toLowerCase() === "location");
}
