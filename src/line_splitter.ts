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
  /** Called once for each dropped line with its length in bytes (without the newline). */
  onOversizeLine?: (bytes: number) => void;
}

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

    const emit = (controller: TransformStreamDefaultController<Uint8Array>) => {
      if (oversize) {
        onOversizeLine?.(length);
      } else if (length > 0) {
        let line = concat(parts, length);
        if (line[line.length - 1] === CARRIAGE_RETURN) line = line.subarray(0, line.length - 1);
        if (line.length > 0) controller.enqueue(line);
      }
      parts = [];
      length = 0;
      oversize = false;
    };

    const append = (piece: Uint8Array) => {
      if (piece.length === 0) return;
      length += piece.length;
      if (oversize) return;
      if (length > maxLineBytes) {
        oversize = true;
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
