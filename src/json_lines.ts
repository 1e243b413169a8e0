/**
 * JSON-RPC over a byte stream, one message per line, as stdio MCP frames it: reading (a child's stdout,
 * client mode's stdin) and writing (a child's stdin, client mode's stdout).
 *
 * @module
 */

import { type JsonRpcMessage, parseLosslesslyOr, validateMessage, withExactIntegers } from "./jsonrpc.ts";
import { type JsonText, LARGE_ANSWER_BYTES, type LinePieces } from "./large_answer.ts";
import { LineFramer, type LineSink } from "./line_splitter.ts";
import { setImmediate } from "node:timers";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The least line cap under which long lines are offered to `onLongLine` (see {@link readJsonLines}). */
export const STREAMING_MIN_CAP_BYTES = 16 * 1024 * 1024;

/** Size of each read from a {@link ByteReader}. */
const READ_BYTES = 64 * 1024;

/** A file read directly, without a stream's machinery between the read and the line: `Deno.stdin`. */
export interface ByteReader {
  read(buffer: Uint8Array): Promise<number | null>;
}

/**
 * A source that hands over each chunk as it comes, in memory of its own that is never read into again:
 * client mode's stdin read through `node:net` (see `standard_input.ts`).
 */
export interface ChunkSource {
  /** Calls `onChunk` with each chunk; resolves at the end of input, rejects when reading fails. */
  pump(onChunk: (chunk: Uint8Array) => void): Promise<void>;
}

/** A file written directly, without a stream's machinery: `Deno.stdout`. */
export interface ByteWriter {
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
  /**
   * Writes some of `bytes` at once; returns how many. When the file has it, it is used first, and
   * `write` only for what would block (a file opened non-blocking with its buffer full).
   */
  writeSync?(bytes: Uint8Array): number;
  close(): void;
}

/**
 * Passes each chunk of `stream` to `onChunk`, which returns true when it kept a view of it (a piece of a
 * long line gone to its sink); resolves at its end. A byte stream (a child's stdout) is read into one
 * buffer again and again, where its default reader would allocate 64 KiB for every read; into a new one
 * only after a chunk was kept.
 */
async function pumpStream(stream: ReadableStream<Uint8Array>, onChunk: (chunk: Uint8Array) => boolean) {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: read it as it comes.
  }
  if (byob === undefined) {
    const reader = stream.getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        onChunk(value);
      }
    } finally {
      reader.releaseLock();
    }
  }
  try {
    let buffer = new Uint8Array(READ_BYTES);
    while (true) {
      // The read takes the buffer over and hands it back as `value`.
      const { value, done } = await byob.read(buffer);
      if (done || value === undefined) return;
      buffer = onChunk(value) ? new Uint8Array(READ_BYTES) : new Uint8Array(value.buffer);
    }
  } finally {
    byob.releaseLock();
  }
}

/**
 * Passes each chunk read from `file` to `onChunk`, which returns true when it kept a view of it; resolves
 * at its end. One buffer is read into again and again, a new one only after a chunk was kept.
 */
async function pumpFile(file: ByteReader, onChunk: (chunk: Uint8Array) => boolean) {
  let buffer = new Uint8Array(READ_BYTES);
  while (true) {
    const count = await file.read(buffer);
    if (count === null) return;
    if (onChunk(buffer.subarray(0, count))) buffer = new Uint8Array(READ_BYTES);
  }
}

/** Callbacks of {@link readJsonLines}. */
export interface JsonLinesHandlers {
  /**
   * Every valid message, in order, with the line it was read from (its JSON text). An exception thrown
   * here is reported through `onError`.
   */
  onMessage(message: JsonRpcMessage, line: string): void;
  /**
   * A line that is not one JSON-RPC message: `why` says what is wrong, `line` is its start, `value` the
   * JSON value it holds (undefined when it is not JSON).
   */
  onInvalid(why: string, line: string, value: unknown): void;
  /** A line longer than `maxLineBytes`, dropped; `bytes` is its length, `head` and `tail` its ends. */
  onOversize(bytes: number, head: Uint8Array, tail: Uint8Array): void;
  /** `onMessage` threw, or the stream failed. */
  onError(error: unknown): void;
  /**
   * A line of {@link LARGE_ANSWER_BYTES} or more that ended with its newline, before it is decoded:
   * returns true when it took the line as it is (see `large_answer.ts`), false to have it parsed as
   * usual. The bytes may be read into again after the call: what is kept must be copied.
   * `noCarriageReturn` is true when the line is known to hold no `\r` (see `LineFramer.push`).
   */
  onLargeLine?(line: Uint8Array, noCarriageReturn?: boolean): boolean;
  /**
   * A line that has {@link LARGE_ANSWER_BYTES} in and its newline not yet: a sink returned takes it as it
   * streams in (see `LineFramerOptions.onLongLine`), and it reaches no other handler; undefined, and the
   * line is gathered and handled as usual. Asked only under a line cap of {@link STREAMING_MIN_CAP_BYTES}
   * or more.
   */
  onLongLine?(start: Uint8Array): LineSink | undefined;
}

/**
 * Reads messages from `source` until it ends; resolves at its end (or failure, reported to `onError`).
 * `handlers` get each line as text; they keep no view of the bytes, so the source is read into one
 * buffer again and again.
 */
export async function readJsonLines(
  source: ReadableStream<Uint8Array> | ByteReader | ChunkSource,
  maxLineBytes: number,
  handlers: JsonLinesHandlers,
): Promise<void> {
  const framer = new LineFramer({
    maxLineBytes,
    onOversizeLine: handlers.onOversize,
    // Under a small cap, a line over it must still become an error answer, which it cannot once part of
    // it is out: long lines stream only where the cap leaves them room.
    onLongLine: maxLineBytes >= STREAMING_MIN_CAP_BYTES ? handlers.onLongLine : undefined,
    longLineBytes: LARGE_ANSWER_BYTES,
  });
  let ended = false;
  const onLine = (line: Uint8Array, noCarriageReturn?: boolean) => {
    if (line.length >= LARGE_ANSWER_BYTES && handlers.onLargeLine !== undefined && !ended) {
      try {
        if (handlers.onLargeLine(line, noCarriageReturn)) return;
      } catch (error) {
        handlers.onError(error);
        return;
      }
    }
    const text = decoder.decode(line);
    let message: JsonRpcMessage | string;
    let value: unknown;
    try {
      value = JSON.parse(text);
      message = validateMessage(value);
      if (typeof message !== "string") message = withExactIntegers(message, text);
    } catch {
      message = "not JSON";
    }
    if (typeof message === "string") {
      // A line of spaces and tabs is an empty line, which the framer skips.
      if (value === undefined && text.trim() === "") return;
      // Its numbers as written: an answer to it carries its id back so (`1e3`, beyond 2^53).
      const exact = value === undefined ? undefined : parseLosslesslyOr(text, value);
      handlers.onInvalid(message, text.length > 200 ? text.slice(0, 200) + "…" : text, exact);
      return;
    }
    try {
      handlers.onMessage(message, text);
    } catch (error) {
      handlers.onError(error);
    }
  };
  // A plain reader loop: no stream between chunk and line, one promise per chunk.
  const onChunk = (chunk: Uint8Array) => framer.push(chunk, onLine);
  try {
    if (source instanceof ReadableStream) await pumpStream(source, onChunk);
    else if ("pump" in source) await source.pump(onChunk);
    else await pumpFile(source, onChunk);
    // A last line without its newline may have been cut short: it is parsed, never taken as it is.
    ended = true;
    framer.end(onLine);
  } catch (error) {
    handlers.onError(error);
  }
}

/** When {@link JsonLineWriter} may hold a message to the end of the event loop's turn. */
export interface HoldOptions {
  /** True while the reader has work already (for a child: other requests under way). */
  mayHold: () => boolean;
  /** Only within this many ms of the last write (a burst). Default: 1. */
  burstMs?: number;
}

/**
 * Writes messages to a byte stream, one JSON line each, in the order of the calls. One write is under
 * way at a time: a message written while none is goes out at once; messages written while one is go out
 * together as the next write. The first failed write (a closed pipe) calls `onBroken` once; later
 * messages are dropped.
 *
 * A write rarely stays under way past the call, though, and a write that wakes the reader costs some
 * 30 µs on a 2-core VM. So in a burst of writes (the last one less than `burstMs` ago) and while
 * `mayHold` says the reader has work already (a child with other requests under way), a message waits
 * for the end of the event loop's turn (`setImmediate`), and goes out with the others of that turn as
 * one write, as Nagle's algorithm holds data while some is unacknowledged. A message to an idle reader,
 * or after a quiet spell, is never held: calls made one at a time see no delay. (Calls less than a
 * millisecond apart while a long request is under way are held, to the end of the turn only: with every
 * message held, p50 grew some 5 µs on `/mcp` and 15–30 µs on `/sse`, whose `202` then leaves first.)
 */
export class JsonLineWriter {
  /** Writes all of the bytes. */
  readonly #writeAll: (bytes: Uint8Array) => Promise<void>;
  readonly #close: () => Promise<void>;
  readonly #onBroken: (error: unknown) => void;
  /** A write failed, or `close` was called: messages are no longer taken. */
  #broken = false;
  #queued: (JsonText | LinePieces)[] = [];
  /** Some of what is queued is bytes. */
  #queuedBytes = false;
  /** About how many bytes are queued (a text's length), and in the write under way. */
  #queuedSize = 0;
  #writingSize = 0;
  /** The write under way; it settles once done (never rejects: failures go to `onBroken`). */
  #writing: Promise<void> | undefined;
  /** When messages may be held to the end of the turn; undefined: never. */
  readonly #hold: Required<HoldOptions> | undefined;
  /** When the last write started (`performance.now()`). */
  #lastWriteAt = -Infinity;

  /**
   * `sink` is a stream, or a file written directly (`Deno.stdout`), at once where it can be: Deno runs
   * an asynchronous write to a stdio file on a thread of its blocking pool, about 25 µs a write on a
   * 2-core machine against about 1 µs for a direct one. A pipe whose reader stops reading then blocks
   * the writer until it reads again, as Node's stdout to a pipe does on Linux.
   */
  constructor(
    sink: WritableStream<Uint8Array> | ByteWriter,
    onBroken: (error: unknown) => void,
    hold?: HoldOptions,
  ) {
    if (sink instanceof WritableStream) {
      const writer = sink.getWriter();
      this.#writeAll = (bytes) => writer.write(bytes);
      this.#close = () => writer.close();
    } else {
      this.#writeAll = async (bytes) => {
        let written = 0;
        if (sink.writeSync !== undefined) {
          try {
            while (written < bytes.length) written += sink.writeSync(bytes.subarray(written));
            return;
          } catch (error) {
            if (!(error instanceof Deno.errors.WouldBlock)) throw error;
          }
        }
        while (written < bytes.length) written += await sink.write(bytes.subarray(written));
      };
      // A file already closed throws: the promise rejects, as a stream's close would.
      this.#close = () => new Promise((resolve) => resolve(sink.close()));
    }
    this.#onBroken = onBroken;
    this.#hold = hold === undefined ? undefined : { burstMs: 1, ...hold };
  }

  /** False once a write failed or the writer was closed. */
  get open(): boolean {
    return !this.#broken;
  }

  /** About how many bytes wait to be written: queued, or in the write under way. */
  get pendingBytes(): number {
    return this.#queuedSize + this.#writingSize;
  }

  /**
   * Queues one message. `json`, when the caller has it, is the message's JSON text on one line (no line
   * break in it), or its UTF-8 bytes, whole or in pieces, written as it is instead of serializing
   * `message` again.
   */
  write(message: JsonRpcMessage, json?: JsonText | LinePieces): void {
    if (this.#broken) return;
    if (json === undefined) json = JSON.stringify(message);
    else if (typeof json !== "string") this.#queuedBytes = true;
    this.#queuedSize += typeof json === "string" || json instanceof Uint8Array ? json.length : sizeOf(json);
    // Behind a write under way, or messages held to the end of the turn: it goes with the next write.
    if (this.#queued.push(json) > 1 || this.#writing !== undefined) return;
    const hold = this.#hold;
    if (hold !== undefined && performance.now() - this.#lastWriteAt < hold.burstMs && hold.mayHold()) {
      setImmediate(() => this.#flush());
    } else this.#flush();
  }

  /** Flushes what is queued and closes the stream; never throws. */
  async close(): Promise<void> {
    if (this.#broken) return;
    this.#broken = true;
    while (this.#writing !== undefined) await this.#writing;
    if (this.#queued.length > 0) await this.#write();
    await this.#close().catch(() => {});
  }

  #flush(): void {
    if (this.#queued.length === 0 || this.#broken || this.#writing !== undefined) return;
    this.#writingSize = this.#queuedSize;
    this.#queuedSize = 0;
    this.#writing = this.#write().then(() => {
      this.#writing = undefined;
      this.#writingSize = 0;
      this.#flush();
    });
  }

  /** Writes what is queued; a failure, unless the writer was closed meanwhile, breaks it. */
  #write(): Promise<void> {
    const queued = this.#queued;
    this.#queued = [];
    this.#lastWriteAt = performance.now();
    let written: Promise<void>;
    if (!this.#queuedBytes) {
      const text = queued.length === 1 ? (queued[0] as string) + "\n" : queued.join("\n") + "\n";
      written = this.#writeAll(encoder.encode(text));
    } else {
      this.#queuedBytes = false;
      written = this.#writeInTurn(piecesOf(queued));
    }
    return written.catch((error) => {
      if (this.#broken) return;
      this.#broken = true;
      this.#onBroken(error);
    });
  }

  async #writeInTurn(pieces: Uint8Array[]): Promise<void> {
    for (const piece of pieces) await this.#writeAll(piece);
  }
}

function sizeOf(pieces: LinePieces): number {
  let size = 0;
  for (const piece of pieces) size += piece.length;
  return size;
}

/**
 * The lines of `queued` as pieces to write in turn: texts together, encoded once; bytes (a large message,
 * whole or in pieces) as they are, not copied, each followed by its newline.
 */
function piecesOf(queued: readonly (JsonText | LinePieces)[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let text = "";
  for (const json of queued) {
    if (typeof json === "string") {
      text += json + "\n";
      continue;
    }
    if (text !== "") pieces.push(encoder.encode(text));
    if (json instanceof Uint8Array) pieces.push(json);
    else pieces.push(...json);
    text = "\n";
  }
  pieces.push(encoder.encode(text));
  return pieces;
}
