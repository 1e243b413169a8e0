/**
 * Splits a byte stream into lines, as stdio MCP frames its messages.
 *
 * Each chunk is scanned once, only where it is new, so a long line costs time in proportion to its
 * length (scanning the whole buffer on every chunk is quadratic: 18 s for a 60 MB line). A line longer
 * than the cap is dropped as it streams in, never held in memory, and reported. A long line can also be
 * passed on while it streams in, piece by piece, to a {@link LineSink} (see {@link LineFramerOptions}).
 *
 * @module
 */

import { indexOfLineBreak, searchableText } from "./line_break_search.ts";

/** Options of {@link LineSplitter}. */
export interface LineSplitterOptions {
  /** Longest line kept, in bytes; longer ones are dropped and reported. */
  maxLineBytes: number;
  /**
   * Called once for each dropped line with its length in bytes (without the newline), and its first and
   * last {@link KEPT_EDGE_BYTES} bytes (enough to find a JSON-RPC id).
   */
  onOversizeLine?: (bytes: number, head: Uint8Array, tail: Uint8Array) => void;
}

/** Where a long line goes while it streams in, instead of being gathered. */
export interface LineSink {
  /**
   * The next bytes of the line. `noCarriageReturn` is true when the framer knows they hold no `\r` (a
   * sink that must look for one can skip the search). `yours` is true when they are a view of the chunk
   * being pushed, which the sink may keep: the framer's `push` then tells its caller not to read into
   * that chunk's memory again. Else they are a view good only during the call.
   */
  write(bytes: Uint8Array, noCarriageReturn?: boolean, yours?: boolean): void;
  /** The line ended with its newline (which, with a `\r` before it, is not written). */
  end(): void;
  /** The line will not end well: it grew over the cap, or the input ended before its newline. */
  abort(reason: string): void;
}

/** Options of {@link LineFramer}. */
export interface LineFramerOptions extends LineSplitterOptions {
  /**
   * Called once for a line that spans chunks when {@link longLineBytes} of it are in and its newline is
   * not, with those bytes (a view good only during the call). A sink returned takes the line from there:
   * first those bytes, then the rest as it comes. Undefined: the line is gathered as usual.
   */
  onLongLine?: (start: Uint8Array) => LineSink | undefined;
  /** When {@link onLongLine} is asked. */
  longLineBytes?: number;
}

/** Called with each line: a view good only during the call (see {@link LineFramer.push}). */
export type OnLine = (line: Uint8Array, noCarriageReturn?: boolean) => void;

/** How much of each end of a dropped line is kept for {@link LineSplitterOptions.onOversizeLine}. */
export const KEPT_EDGE_BYTES = 4096;

const CARRIAGE_RETURN = 0x0d;
const RETURN = new Uint8Array([CARRIAGE_RETURN]);

/** A line buffer up to this size is kept for the next line; a larger one is let go after its line. */
const KEPT_BUFFER_BYTES = 4 * 1024 * 1024;
/** The first size of the line buffer. */
const FIRST_BUFFER_BYTES = 64 * 1024;

/** `a` and then `b`, as one new array. */
function joined(a: Uint8Array, b: Uint8Array): Uint8Array {
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  return both;
}

/**
 * Splits bytes into lines (as bytes, without `\n` or a trailing `\r`), pushed a chunk at a time; empty
 * lines are skipped. For a reader loop with no stream machinery between chunk and line.
 *
 * A line is a view that is good only during its `onLine` call: one inside a chunk is a view of the
 * chunk, and one that spans chunks is a view of the framer's own buffer, which the next line fills
 * again. The framer keeps no view of a chunk after `push` returns, so the reader can read into the same
 * buffer again and again.
 *
 * @example
 * ```ts
 * const framer = new LineFramer({ maxLineBytes: 1 << 20 });
 * for await (const chunk of stream) framer.push(chunk, handleLine);
 * framer.end(handleLine);
 * ```
 */
export class LineFramer {
  readonly #maxLineBytes: number;
  readonly #onOversizeLine: LineSplitterOptions["onOversizeLine"];
  readonly #onLongLine: LineFramerOptions["onLongLine"];
  readonly #longLineBytes: number;
  /** Set while a long line streams to a sink. */
  #sink: LineSink | undefined;
  /** A `\r` that ended the last piece written to the sink: written before the next, dropped at the end. */
  #heldReturn = false;
  /** The line was offered to `onLongLine`, taken or not. */
  #offered = false;
  /** The chunk being pushed: a piece of it went to the sink, which may keep it. */
  #chunkGiven = false;
  /** No chunk that a piece of the line being gathered came from holds a `\r`, as far as the framer knows. */
  #noCarriageReturn = true;
  /** The start of a line not yet complete, in `#buffer[0, #length)`. */
  #buffer = new Uint8Array(0);
  #length = 0;
  #oversize = false;
  /** The last byte added to the line is a `\r`. */
  #endsInReturn = false;
  #head: Uint8Array = new Uint8Array(0);
  #tail: Uint8Array = new Uint8Array(0);

  constructor(options: LineFramerOptions) {
    this.#maxLineBytes = options.maxLineBytes;
    this.#onOversizeLine = options.onOversizeLine;
    this.#onLongLine = options.onLongLine;
    this.#longLineBytes = options.longLineBytes ?? Infinity;
  }

  /**
   * Takes the next chunk; calls `onLine` for each line it completes (for one gathered across chunks,
   * `noCarriageReturn` is true when the framer knows it holds no `\r`, as for {@link LineSink.write}).
   * Returns true when a piece of the chunk went to a long line's sink, which may keep it (see
   * {@link LineSink.write}): the caller must not read into the chunk's memory again. False: the framer
   * kept no view of it.
   */
  push(chunk: Uint8Array, onLine: OnLine): boolean {
    this.#chunkGiven = false;
    const text = searchableText(chunk);
    let start = 0;
    while (start < chunk.length) {
      const end = indexOfLineBreak(chunk, text, "\n", start);
      if (end === -1) {
        this.#append(chunk.subarray(start), text);
        return this.#chunkGiven;
      }
      if (this.#length === 0 && !this.#oversize && end > start) {
        // The common case: a whole line inside this chunk, not longer than the cap.
        const lineEnd = chunk[end - 1] === CARRIAGE_RETURN ? end - 1 : end;
        if (lineEnd - start <= this.#maxLineBytes) {
          if (lineEnd > start) onLine(chunk.subarray(start, lineEnd));
          start = end + 1;
          continue;
        }
      }
      this.#append(chunk.subarray(start, end), text);
      this.#emit(onLine);
      start = end + 1;
    }
    return this.#chunkGiven;
  }

  /** The input ended: a last line without a newline is completed (one going to a sink is aborted). */
  end(onLine: OnLine): void {
    if (this.#sink !== undefined) {
      const sink = this.#sink;
      this.#reset();
      sink.abort("the input ended before the line did");
      return;
    }
    this.#emit(onLine);
  }

  #emit(onLine: OnLine): void {
    if (this.#sink !== undefined) {
      const sink = this.#sink;
      this.#reset();
      sink.end();
      return;
    }
    if (this.#oversize) {
      // A `\r` before the newline is not the line's.
      const cut = this.#endsInReturn ? 1 : 0;
      const tail = this.#tail.subarray(0, Math.max(0, this.#tail.length - cut));
      this.#onOversizeLine?.(this.#length - cut, this.#head, tail);
    } else if (this.#length > 0) {
      let line = this.#buffer.subarray(0, this.#length);
      if (line[line.length - 1] === CARRIAGE_RETURN) line = line.subarray(0, line.length - 1);
      if (line.length > 0) onLine(line, this.#noCarriageReturn);
    }
    this.#reset();
  }

  #reset(): void {
    if (this.#buffer.length > KEPT_BUFFER_BYTES) this.#buffer = new Uint8Array(0);
    this.#length = 0;
    this.#oversize = false;
    this.#endsInReturn = false;
    this.#head = this.#tail = new Uint8Array(0);
    this.#sink = undefined;
    this.#heldReturn = false;
    this.#offered = false;
    this.#noCarriageReturn = true;
  }

  /**
   * Writes `piece` to the sink, holding back a last `\r` until it is known not to end the line. Nothing
   * empty is written: a sink may take an empty piece for an end (an empty chunk ends a chunked body).
   * `ofChunk`: the piece is a view of the chunk being pushed (else of the framer's own buffer). It is
   * the sink's to keep only where it fills at least half of its memory: a sink that keeps small pieces
   * of a child that writes a little at a time, for a client that reads slowly, would otherwise hold a
   * whole read buffer for each.
   */
  #toSink(sink: LineSink, piece: Uint8Array, noCarriageReturn: boolean, ofChunk: boolean): void {
    if (this.#heldReturn) sink.write(RETURN, false, false);
    this.#heldReturn = piece[piece.length - 1] === CARRIAGE_RETURN;
    const bytes = this.#heldReturn ? piece.subarray(0, piece.length - 1) : piece;
    if (bytes.length === 0) return;
    const yours = ofChunk && bytes.length * 2 >= bytes.buffer.byteLength;
    if (yours) this.#chunkGiven = true;
    sink.write(bytes, noCarriageReturn, yours);
  }

  /** Adds `piece` of a chunk to the line; `chunkText` is the chunk's {@link searchableText}, if it has one. */
  #append(piece: Uint8Array, chunkText: string | undefined): void {
    if (piece.length === 0) return;
    this.#endsInReturn = piece[piece.length - 1] === CARRIAGE_RETURN;
    if (this.#sink !== undefined) {
      this.#length += piece.length;
      if (this.#withinCap(this.#length, piece)) {
        // Where the chunk's text holds no `\r`, neither does the piece: the text says so even where its
        // offsets are not the bytes' (see line_break_search.ts).
        this.#toSink(this.#sink, piece, chunkText !== undefined && !chunkText.includes("\r"), true);
        return;
      }
      // Over the cap: the sink's line is cut off, and the rest is dropped as for any line that long.
      const sink = this.#sink;
      this.#sink = undefined;
      this.#oversize = true;
      sink.abort(`the line is longer than ${this.#maxLineBytes} bytes`);
      return;
    }
    if (this.#oversize) {
      this.#length += piece.length;
      const kept = joined(this.#tail, piece);
      this.#tail = kept.subarray(Math.max(0, kept.length - KEPT_EDGE_BYTES)).slice();
      return;
    }
    // Where the chunk's text holds no `\r`, neither does the piece (see line_break_search.ts); a small
    // chunk, never decoded, is not known to hold none.
    if (this.#noCarriageReturn && (chunkText === undefined || chunkText.includes("\r"))) {
      this.#noCarriageReturn = false;
    }
    const length = this.#length + piece.length;
    if (!this.#withinCap(length, piece)) {
      // From here on only the ends are kept.
      const start = this.#buffer.subarray(0, this.#length);
      this.#head = joined(start.subarray(0, KEPT_EDGE_BYTES), piece).slice(0, KEPT_EDGE_BYTES);
      const kept = joined(start.subarray(Math.max(0, start.length - KEPT_EDGE_BYTES)), piece);
      this.#tail = kept.subarray(Math.max(0, kept.length - KEPT_EDGE_BYTES)).slice();
      this.#oversize = true;
      this.#length = length;
      if (this.#buffer.length > KEPT_BUFFER_BYTES) this.#buffer = new Uint8Array(0);
      return;
    }
    if (length > this.#buffer.length) {
      const grown = new Uint8Array(Math.max(length, this.#buffer.length * 2, FIRST_BUFFER_BYTES));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(piece, this.#length);
    this.#length = length;
    if (length >= this.#longLineBytes && !this.#offered && this.#onLongLine !== undefined) {
      this.#offer(this.#onLongLine);
    }
  }

  /**
   * Whether a line `length` bytes long so far, of which `last` is the latest piece, may still be within
   * the cap: one byte more is allowed while it is a `\r`, which the newline may yet show not to be the
   * line's.
   */
  #withinCap(length: number, last: Uint8Array): boolean {
    return length <= this.#maxLineBytes ||
      (length === this.#maxLineBytes + 1 && last[last.length - 1] === CARRIAGE_RETURN);
  }

  /** Offers the long line gathered so far; from then on it goes to the sink, if one takes it. */
  #offer(onLongLine: (start: Uint8Array) => LineSink | undefined): void {
    this.#offered = true;
    const start = this.#buffer.subarray(0, this.#length);
    const sink = onLongLine(start);
    if (sink === undefined) return;
    this.#sink = sink;
    this.#toSink(sink, start, false, false);
  }
}

/**
 * A `TransformStream` from bytes to lines (as bytes, without `\n` or a trailing `\r`); empty lines are
 * skipped, and a last line without a newline is emitted at the end of the stream.
 *
 * @example
 * ```ts
 * const lines = child.stdout.pipeThrough(new LineSplitter({ maxLineBytes: 1 << 20 }));
 * ```
 */
export class LineSplitter extends TransformStream<Uint8Array, Uint8Array> {
  constructor(options: LineSplitterOptions) {
    const framer = new LineFramer(options);
    super({
      // Each line is copied: it is read after the framer has gone on.
      transform(chunk, controller) {
        framer.push(chunk, (line) => controller.enqueue(line.slice()));
      },
      flush(controller) {
        framer.end((line) => controller.enqueue(line.slice()));
      },
    });
  }
}
