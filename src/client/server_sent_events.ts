/**
 * Reading a `text/event-stream` response as events, following the WHATWG "parse an event stream" rules,
 * with one deviation that MCP needs: a block with an `id` or `retry` field but no data (a Streamable
 * HTTP "priming event", `id: X\ndata: \n\n`) is still emitted, with empty data, so the consumer learns the
 * id to resume from and the retry delay.
 *
 * The stream is parsed as bytes, and only the values the events carry are decoded (UTF-8): a large answer's
 * data is decoded once, and its bytes come with it, so that a relay writes them instead of encoding the
 * text again. Each chunk is scanned once, only where it is new, so parsing costs time in proportion to the
 * input.
 *
 * @module
 */

import { concatenated, LARGE_ANSWER_BYTES } from "../large_answer.ts";
import { indexOfLineBreak, searchableText } from "../line_break_search.ts";

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
  /**
   * For data of one line and {@link LARGE_ANSWER_BYTES} or more, the bytes `data` was decoded from, as they
   * came (see `bodyAsLine`).
   */
  dataBytes?: Uint8Array<ArrayBuffer>;
}

const LINE_FEED = 0x0a;
const COLON = 0x3a;
const SPACE = 0x20;
const BYTE_ORDER_MARK = [0xef, 0xbb, 0xbf];
const encoder = new TextEncoder();
const FIELD_EVENT = encoder.encode("event");
const FIELD_DATA = encoder.encode("data");
const FIELD_ID = encoder.encode("id");
const FIELD_RETRY = encoder.encode("retry");
const DIGITS = /^[0-9]+$/;
/** A piece of a line shorter than this is gathered with others in a buffer of up to this many bytes. */
const SMALL_PIECE_BYTES = 1024;
const GATHERING_BYTES = 16 * 1024;
const MIN_GATHERING_BYTES = 256;
/** Decodes UTF-8 as `TextDecoderStream` would (invalid bytes become U+FFFD); a byte order mark is content. */
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** The fields of the block being read, up to its blank line. */
interface PendingBlock {
  event: string;
  /** The values of its `data` lines, as bytes. */
  data: Uint8Array<ArrayBuffer>[];
  id?: string;
  retry?: number;
}

function emptyBlock(): PendingBlock {
  return { event: "", data: [] };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function applyField(block: PendingBlock, line: Uint8Array<ArrayBuffer>): void {
  if (line[0] === COLON) return;
  const colon = line.indexOf(COLON);
  const field = colon === -1 ? line : line.subarray(0, colon);
  let value = colon === -1 ? line.subarray(line.length) : line.subarray(colon + 1);
  if (value[0] === SPACE) value = value.subarray(1);
  if (sameBytes(field, FIELD_DATA)) block.data.push(value);
  else if (sameBytes(field, FIELD_EVENT)) block.event = decoder.decode(value);
  else if (sameBytes(field, FIELD_ID)) {
    if (!value.includes(0)) block.id = decoder.decode(value);
  } else if (sameBytes(field, FIELD_RETRY)) {
    const text = decoder.decode(value);
    if (DIGITS.test(text)) block.retry = Number(text);
  }
}

/** The event a finished block dispatches, or `undefined` when it has nothing to say. */
function toEvent(block: PendingBlock): ServerSentEvent | undefined {
  const lines = block.data;
  if (lines.length === 0 && block.id === undefined && block.retry === undefined) return undefined;
  let bytes: Uint8Array<ArrayBuffer>;
  if (lines.length <= 1) bytes = lines[0] ?? new Uint8Array(0);
  else {
    // The lines joined with line feeds.
    const pieces: Uint8Array<ArrayBuffer>[] = [];
    let length = 0;
    for (const line of lines) {
      if (pieces.length > 0) pieces.push(Uint8Array.of(LINE_FEED));
      pieces.push(line);
      length += line.length;
    }
    bytes = concatenated(pieces, length + lines.length - 1);
  }
  const event: ServerSentEvent = { event: block.event || "message", data: decoder.decode(bytes) };
  if (block.id !== undefined) event.id = block.id;
  if (block.retry !== undefined) event.retry = block.retry;
  if (lines.length === 1 && bytes.length >= LARGE_ANSWER_BYTES) event.dataBytes = bytes;
  return event;
}

/**
 * Reads the bytes of an event stream (split anywhere, even inside a CRLF or a character) into the events
 * it dispatches, a chunk at a time, with no stream between chunk and event. Lines end with CRLF, LF or CR;
 * a leading UTF-8 byte order mark is ignored; a block not closed by a blank line is never dispatched.
 * The parser keeps views of the chunks it is given: they must not be written to again.
 *
 * @example
 * ```ts
 * const parser = new EventStreamParser();
 * const encoder = new TextEncoder();
 * parser.push(encoder.encode("data: one\n"), console.log);
 * parser.push(encoder.encode("\n"), console.log); // { event: "message", data: "one" }
 * ```
 */
export class EventStreamParser {
  /** The start of a line not yet complete, in pieces. */
  #partialLine: Uint8Array<ArrayBuffer>[] = [];
  #partialBytes = 0;
  /** The parser's own buffer that small pieces of the line are gathered in (see {@link #addPiece}). */
  #gathering: Uint8Array<ArrayBuffer> | undefined;
  #block = emptyBlock();
  /** How many bytes of a byte order mark the stream has begun with, while that is all it has. */
  #markBytes = 0;
  #atStart = true;
  #afterCarriageReturn = false;

  /** Takes the next bytes; calls `onEvent` for each event they complete. */
  push(chunk: Uint8Array<ArrayBuffer>, onEvent: (event: ServerSentEvent) => void): void {
    let start = 0;
    if (this.#atStart) {
      while (
        start < chunk.length && this.#markBytes < 3 && chunk[start] === BYTE_ORDER_MARK[this.#markBytes]
      ) {
        start++;
        this.#markBytes++;
      }
      if (start === chunk.length && this.#markBytes < 3) return;
      this.#atStart = false;
      // The start of a mark and then something else: those bytes were content.
      if (this.#markBytes < 3 && this.#markBytes > 0) {
        this.#addPiece(Uint8Array.from(BYTE_ORDER_MARK.slice(0, this.#markBytes)));
      }
    }
    if (this.#afterCarriageReturn && start < chunk.length) {
      this.#afterCarriageReturn = false;
      if (chunk[start] === LINE_FEED) start++;
    }
    const text = searchableText(chunk);
    let feed = indexOfLineBreak(chunk, text, "\n", start);
    let carriageReturn = indexOfLineBreak(chunk, text, "\r", start);
    while (feed !== -1 || carriageReturn !== -1) {
      const end = carriageReturn === -1 || (feed !== -1 && feed < carriageReturn) ? feed : carriageReturn;
      this.#endLine(chunk.subarray(start, end), onEvent);
      start = end + 1;
      if (end === carriageReturn) {
        if (start === chunk.length) this.#afterCarriageReturn = true;
        else if (chunk[start] === LINE_FEED) start++;
      }
      if (feed !== -1 && feed < start) feed = indexOfLineBreak(chunk, text, "\n", start);
      if (carriageReturn !== -1 && carriageReturn < start) {
        carriageReturn = indexOfLineBreak(chunk, text, "\r", start);
      }
    }
    if (start < chunk.length) this.#addPiece(chunk.subarray(start));
  }

  /**
   * Adds `piece` to the line not yet complete: a large one as it is; a small one copied into the last
   * of the line's pieces where that is a buffer of the parser's own with room, so that a server that
   * trickles its stream a few bytes at a time costs a few bytes of memory for each, not an array each.
   */
  #addPiece(piece: Uint8Array<ArrayBuffer>): void {
    this.#partialBytes += piece.length;
    if (piece.length >= SMALL_PIECE_BYTES) {
      this.#partialLine.push(piece);
      return;
    }
    const last = this.#partialLine.length - 1;
    const gathered = this.#partialLine[last];
    if (
      gathered !== undefined && gathered.buffer === this.#gathering?.buffer &&
      gathered.length + piece.length <= this.#gathering.length
    ) {
      this.#gathering.set(piece, gathered.length);
      this.#partialLine[last] = this.#gathering.subarray(0, gathered.length + piece.length);
      return;
    }
    // The line's first such buffer is small (most lines split between chunks are short); each next one,
    // twice the last, and room for the piece at least (found by QA: a piece of 513–1023 bytes after one
    // of a few overflowed a buffer of 256 bytes doubled, and the stream failed).
    const size = gathered !== undefined && gathered.buffer === this.#gathering?.buffer
      ? 2 * this.#gathering.length
      : 4 * piece.length;
    this.#gathering = new Uint8Array(
      Math.min(GATHERING_BYTES, Math.max(MIN_GATHERING_BYTES, size, 2 * piece.length)),
    );
    this.#gathering.set(piece);
    this.#partialLine.push(this.#gathering.subarray(0, piece.length));
  }

  #endLine(tail: Uint8Array<ArrayBuffer>, onEvent: (event: ServerSentEvent) => void): void {
    let line = tail;
    if (this.#partialLine.length > 0) {
      this.#addPiece(tail);
      line = concatenated(this.#partialLine, this.#partialBytes);
      this.#partialLine = [];
      this.#partialBytes = 0;
    }
    if (line.length > 0) {
      applyField(this.#block, line);
      return;
    }
    const event = toEvent(this.#block);
    this.#block = emptyBlock();
    if (event) onEvent(event);
  }
}

/**
 * A `TransformStream` from the bytes of an event stream to the events it dispatches (an
 * {@link EventStreamParser}).
 *
 * @example
 * ```ts
 * for await (const { event, data } of response.body!.pipeThrough(new ServerSentEventParser())) {
 *   console.log(event, data);
 * }
 * ```
 */
export class ServerSentEventParser extends TransformStream<Uint8Array, ServerSentEvent> {
  constructor() {
    const parser = new EventStreamParser();
    super({
      transform(chunk, controller) {
        parser.push(chunk as Uint8Array<ArrayBuffer>, (event) => controller.enqueue(event));
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
  return body.pipeThrough(new ServerSentEventParser());
}

/**
 * Reads a whole `text/event-stream` body already in memory (UTF-8), calling `onEvent` for each event:
 * {@link readEventStream} without a stream. An event without its blank line at the end is dropped, as at
 * the end of a stream.
 */
export function readEventStreamBytes(
  body: Uint8Array<ArrayBuffer>,
  onEvent: (event: ServerSentEvent) => void,
): void {
  new EventStreamParser().push(body, onEvent);
}

/**
 * Reads a `text/event-stream` body (UTF-8) to its end, calling `onEvent` for each event as its blank line
 * arrives: {@link decodeEventStream} without a stream between chunk and event, whose machinery costs more
 * than the parsing on a stream of small answers. Rejects when the body breaks (or `onEvent` throws: the
 * body is then cancelled).
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
  const parser = new EventStreamParser();
  try {
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      parser.push(next.value as Uint8Array<ArrayBuffer>, onEvent);
    }
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  }
}
