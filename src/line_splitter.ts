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
    const { maxLineBytes, onOversizeLine } = options;
    let parts: Uint8Array[] = [];
    let length = 0;
    let oversize = false;
    let head: Uint8Array = new Uint8Array(0);
    let tail: Uint8Array = new Uint8Array(0);
    const keepTail = (piece: Uint8Array) => {
      const joined = concat([tail, piece], tail.length + piece.length);
      tail = joined.subarray(Math.max(0, joined.length - KEPT_EDGE_BYTES)).slice();
    };

    const emit = (controller: TransformStreamDefaultController<Uint8Array>) => {
      if (oversize) {
        onOversizeLine?.(length, head, tail);
      } else if (length > 0) {
        let line = concat(parts, length);
        if (line[line.length - 1] === CARRIAGE_RETURN) line = line.subarray(0, line.length - 1);
        if (line.length > 0) controller.enqueue(line);
      }
      parts = [];
      length = 0;
      oversize = false;
      head = tail = new Uint8Array(0);
    };

    const append = (piece: Uint8Array) => {
      if (piece.length === 0) return;
      length += piece.length;
      if (oversize) {
        keepTail(piece);
        return;
      }
      if (length > maxLineBytes) {
        oversize = true;
        parts.push(piece);
        head = firstBytes(parts, KEPT_EDGE_BYTES);
        tail = lastBytes(parts, KEPT_EDGE_BYTES);
        parts = [];
        return;
      }
      parts.push(piece);
    };

    super({
      transform(chunk, controller) {
        let start = 0;
        while (start < chunk.length) {
          const end = chunk.indexOf(NEWLINE, start);
          if (end === -1) {
            append(chunk.subarray(start));
            return;
          }
          append(chunk.subarray(start, end));
          emit(controller);
          start = end + 1;
        }
      },
      flush(controller) {
        emit(controller);
      },
    });
  }
}
