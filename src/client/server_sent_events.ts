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
 * Reads decoded text (split anywhere, even inside a CRLF) into the events it dispatches, a chunk at a
 * time, with no stream between chunk and event. Lines end with CRLF, LF or CR; a leading byte order mark
 * is ignored; a block not closed by a blank line is never dispatched.
 *
 * @example
 * ```ts
 * const parser = new EventStreamParser();
 * parser.push("data: one\n", console.log);
 * parser.push("\n", console.log); // { event: "message", data: "one" }
 * ```
 */
export class EventStreamParser {
  #partialLine: string[] = [];
  #block = emptyBlock();
  #atStart = true;
  #afterCarriageReturn = false;
  readonly #lineEnd = /[\r\n]/g;

  /** Takes the next piece of text; calls `onEvent` for each event it completes. */
  push(chunk: string, onEvent: (event: ServerSentEvent) => void): void {
    let start = 0;
    if (this.#atStart && chunk.length > 0) {
      this.#atStart = false;
      if (chunk.startsWith(BYTE_ORDER_MARK)) start = 1;
    }
    if (this.#afterCarriageReturn && start < chunk.length) {
      this.#afterCarriageReturn = false;
      if (chunk[start] === "\n") start++;
    }
    const lineEnd = this.#lineEnd;
    lineEnd.lastIndex = start;
    for (let match = lineEnd.exec(chunk); match; match = lineEnd.exec(chunk)) {
      this.#endLine(chunk.slice(start, match.index), onEvent);
      start = match.index + 1;
      if (match[0] === "\r") {
        if (start === chunk.length) {
          this.#afterCarriageReturn = true;
        } else if (chunk[start] === "\n") {
          start++;
        }
        lineEnd.lastIndex = start;
      }
    }
    if (start < chunk.length) this.#partialLine.push(chunk.slice(start));
  }

  #endLine(tail: string, onEvent: (event: ServerSentEvent) => void): void {
    const partialLine = this.#partialLine;
    let line = tail;
    if (partialLine.length > 0) {
      partialLine.push(tail);
      line = partialLine.join("");
      this.#partialLine = [];
    }
    if (line !== "") {
      applyField(this.#block, line);
      return;
    }
    const event = toEvent(this.#block);
    this.#block = emptyBlock();
    if (event) onEvent(event);
  }
}

/**
 * A `TransformStream` from decoded text to the events it dispatches (an {@link EventStreamParser}).
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
    const parser = new EventStreamParser();
    super({
      transform(chunk, controller) {
        parser.push(chunk, (event) => controller.enqueue(event));
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

/**
 * Reads a `text/event-stream` body (UTF-8) to its end, calling `onEvent` for each event as its blank line
 * arrives: {@link decodeEventStream} without the two streams between chunk and event, whose machinery
 * costs more than the parsing on a stream of small answers. Rejects when the body breaks (or `onEvent`
 * throws: the body is then cancelled).
 *
 * @example
 * ```ts
 * await readEventStream(response.body!, (event) => handle(JSON.parse(event.data)));
 * ```
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: ServerSentEvent) => void,
): Promise<void> {
  const reader = body.getReader();
  // As in decodeEventStream: the parser, not the decoder, drops the byte order mark.
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  const parser = new EventStreamParser();
  try {
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      parser.push(decoder.decode(next.value, { stream: true }), onEvent);
    }
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  }
}
