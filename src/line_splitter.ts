/**
 * Splits a byte stream into lines, as stdio MCP frames its messages.
 *
 * Each chunk is scanned once, only where it is new, so a long line costs time in proportion to its
 * length (scanning the whole buffer on every chunk is quadratic: 18 s for a 60 MB line). A line longer
 * than the cap is dropped as it streams in, never held in memory, and reported.
 *
 * @module
 */

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

/** How much of each end of a dropped line is kept for {@link LineSplitterOptions.onOversizeLine}. */
export const KEPT_EDGE_BYTES = 4096;

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const line = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    line.set(part, offset);
    offset += part.length;
  }
  return line;
}

/** A copy of the first `n` bytes of `pieces` joined, without joining them all. */
function firstBytes(pieces: Uint8Array[], n: number): Uint8Array {
  const kept: Uint8Array[] = [];
  let total = 0;
  for (const piece of pieces) {
    if (total >= n) break;
    const part = piece.subarray(0, n - total);
    kept.push(part);
    total += part.length;
  }
  return concat(kept, total).slice();
}

/** A copy of the last `n` bytes of `pieces` joined, without joining them all. */
function lastBytes(pieces: Uint8Array[], n: number): Uint8Array {
  const kept: Uint8Array[] = [];
  let total = 0;
  for (let i = pieces.length - 1; i >= 0 && total < n; i--) {
    const piece = pieces[i];
    const part = piece.subarray(Math.max(0, piece.length - (n - total)));
    kept.unshift(part);
    total += part.length;
  }
  return concat(kept, total).slice();
}

/**
 * Splits bytes into lines (as bytes, without `\n` or a trailing `\r`), pushed a chunk at a time; empty
 * lines are skipped. For a reader loop with no stream machinery between chunk and line.
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
  #parts: Uint8Array[] = [];
  #length = 0;
  #oversize = false;
  #head: Uint8Array = new Uint8Array(0);
  #tail: Uint8Array = new Uint8Array(0);

  constructor(options: LineSplitterOptions) {
    this.#maxLineBytes = options.maxLineBytes;
    this.#onOversizeLine = options.onOversizeLine;
  }

  /**
   * Whether views of pushed chunks are kept (the start of a line not yet complete): until it is false,
   * a chunk's bytes must not be overwritten.
   */
  get holding(): boolean {
    return this.#parts.length > 0;
  }

  /** Takes the next chunk; calls `onLine` for each line it completes. */
  push(chunk: Uint8Array, onLine: (line: Uint8Array) => void): void {
    let start = 0;
    while (start < chunk.length) {
      const end = chunk.indexOf(NEWLINE, start);
      if (end === -1) {
        this.#append(chunk.subarray(start));
        return;
      }
      if (this.#length === 0 && end > start) {
        // The common case: a whole line inside this chunk, not longer than the cap.
        if (end - start <= this.#maxLineBytes) {
          const line = chunk[end - 1] === CARRIAGE_RETURN
            ? chunk.subarray(start, end - 1)
            : chunk.subarray(start, end);
          if (line.length > 0) onLine(line);
          start = end + 1;
          continue;
        }
      }
      this.#append(chunk.subarray(start, end));
      this.#emit(onLine);
      start = end + 1;
    }
  }

  /** The input ended: a last line without a newline is completed. */
  end(onLine: (line: Uint8Array) => void): void {
    this.#emit(onLine);
  }

  #emit(onLine: (line: Uint8Array) => void): void {
    if (this.#oversize) {
      this.#onOversizeLine?.(this.#length, this.#head, this.#tail);
    } else if (this.#length > 0) {
      let line = concat(this.#parts, this.#length);
      if (line[line.length - 1] === CARRIAGE_RETURN) line = line.subarray(0, line.length - 1);
      if (line.length > 0) onLine(line);
    }
    this.#parts = [];
    this.#length = 0;
    this.#oversize = false;
    this.#head = this.#tail = new Uint8Array(0);
  }

  #append(piece: Uint8Array): void {
    if (piece.length === 0) return;
    this.#length += piece.length;
    if (this.#oversize) {
      const joined = concat([this.#tail, piece], this.#tail.length + piece.length);
      this.#tail = joined.subarray(Math.max(0, joined.length - KEPT_EDGE_BYTES)).slice();
      return;
    }
    if (this.#length > this.#maxLineBytes) {
      this.#oversize = true;
      this.#parts.push(piece);
      this.#head = firstBytes(this.#parts, KEPT_EDGE_BYTES);
      this.#tail = lastBytes(this.#parts, KEPT_EDGE_BYTES);
      this.#parts = [];
      return;
    }
    this.#parts.push(piece);
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
      transform(chunk, controller) {
        framer.push(chunk, (line) => controller.enqueue(line));
      },
      flush(controller) {
        framer.end((line) => controller.enqueue(line));
      },
    });
  }
}
