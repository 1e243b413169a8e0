/**
 * Reading a `text/event-stream` response as events, following the WHATWG "parse an event stream" rules,
 * with one deviation that MCP needs: a block with an `id` or `retry` field but no data (a Streamable
 * HTTP "priming event", `id: X\ndata: \n\n`) is still emitted, with empty data, so the consumer learns the
 * id to resume from and the retry delay.
 *
 * Each chunk is scanned once, only where it is new, so parsing costs time in proportion to the input.
 *
 * @module
 */

/** One dispatched event of an event stream. */
export interface ServerSentEvent {
  /** The `event` field, or `"message"` when the block had none (or an empty one). */
  event: string;
  /** The `data` lines joined with `"\n"`; `""` for a block that only had `id` or `retry`. */
  data: string;
  /** The block's own `id` field, if it had one; remembering the last one is up to the consumer. */
  id?: string;
  /** The block's `retry` field in milliseconds, if it had one made of ASCII digits only. */
  retry?: number;
}

const DIGITS = /^[0-9]+$/;
const BYTE_ORDER_MARK = "\uFEFF";

/** The fields of the block being read, up to its blank line. */
interface PendingBlock {
  event: string;
  data: string[];
  id?: string;
  retry?: number;
}

function emptyBlock(): PendingBlock {
  return { event: "", data: [] };
}

function applyField(block: PendingBlock, line: string): void {
  if (line.startsWith(":")) return;
  const colon = line.indexOf(":");
  const field = colon === -1 ? line : line.slice(0, colon);
  let value = colon === -1 ? "" : line.slice(colon + 1);
  if (value.startsWith(" ")) value = value.slice(1);
  switch (field) {
    case "event":
      block.event = value;
      break;
    case "data":
      block.data.push(value);
      break;
    case "id":
      if (!value.includes("\0")) block.id = value;
      break;
    case "retry":
      if (DIGITS.test(value)) block.retry = Number(value);
      break;
  }
}

/** The event a finished block dispatches, or `undefined` when it has nothing to say. */
function toEvent(block: PendingBlock): ServerSentEvent | undefined {
  if (block.data.length === 0 && block.id === undefined && block.retry === undefined) return undefined;
  const event: ServerSentEvent = { event: block.event || "message", data: block.data.join("\n") };
  if (block.id !== undefined) event.id = block.id;
  if (block.retry !== undefined) event.retry = block.retry;
  return event;
}

/**
 * A `TransformStream` from decoded text (split anywhere, even inside a CRLF) to the events it
 * dispatches. Lines end with CRLF, LF or CR; a leading byte order mark is ignored; a block not closed
 * by a blank line when the stream ends is discarded.
 *
 * @example
 * ```ts
 * const events = response.body!
 *   .pipeThrough(new TextDecoderStream("utf-8", { ignoreBOM: true }))
 *   .pipeThrough(new ServerSentEventParser());
 * for await (const { event, data } of events) console.log(event, data);
 * ```
 */
export class ServerSentEventParser extends TransformStream<string, ServerSentEvent> {
  constructor() {
    let partialLine: string[] = [];
    let block = emptyBlock();
    let atStart = true;
    let afterCarriageReturn = false;
    const lineEnd = /[\r\n]/g;

    const endLine = (tail: string, controller: TransformStreamDefaultController<ServerSentEvent>) => {
      partialLine.push(tail);
      const line = partialLine.length === 1 ? partialLine[0] : partialLine.join("");
      partialLine = [];
      if (line !== "") {
        applyField(block, line);
        return;
      }
      const event = toEvent(block);
      block = emptyBlock();
      if (event) controller.enqueue(event);
    };

    super({
      transform(chunk, controller) {
        let start = 0;
        if (atStart && chunk.length > 0) {
          atStart = false;
          if (chunk.startsWith(BYTE_ORDER_MARK)) start = 1;
        }
        if (afterCarriageReturn && start < chunk.length) {
          afterCarriageReturn = false;
          if (chunk[start] === "\n") start++;
        }
        lineEnd.lastIndex = start;
        for (let match = lineEnd.exec(chunk); match; match = lineEnd.exec(chunk)) {
          endLine(chunk.slice(start, match.index), controller);
          start = match.index + 1;
          if (match[0] === "\r") {
            if (start === chunk.length) {
              afterCarriageReturn = true;
            } else if (chunk[start] === "\n") {
              start++;
            }
            lineEnd.lastIndex = start;
          }
        }
        if (start < chunk.length) partialLine.push(chunk.slice(start));
      },
    });
  }
}

/**
 * Decodes a `text/event-stream` body (UTF-8) into its events.
 *
 * @example
 * ```ts
 * for await (const event of decodeEventStream(response.body!)) {
 *   if (event.data !== "") handle(JSON.parse(event.data));
 * }
 * ```
 */
export function decodeEventStream(body: ReadableStream<Uint8Array>): ReadableStream<ServerSentEvent> {
  // The parser drops the one byte order mark the spec allows; the decoder must leave it in place so that
  // a second one, which is content, survives.
  return body
    .pipeThrough(new TextDecoderStream("utf-8", { ignoreBOM: true }))
    .pipeThrough(new ServerSentEventParser());
}
