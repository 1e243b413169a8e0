/**
 * Large answers relayed as the server wrote them. An answer of a megabyte would otherwise be decoded,
 * parsed, and encoded again on its way to the client: three passes over it that cost more than the
 * relay's own work. When the ends of the line say what it is, the answer to request `id`, in one of the
 * two ways the MCP SDKs write one, its bytes go on with only the id replaced, and the client parses
 * them once.
 *
 * - TypeScript SDK: `{"result":…,"jsonrpc":"2.0","id":7}`
 * - Python SDK: `{"jsonrpc":"2.0","id":7,"result":…}`
 *
 * Where the id comes first (the Python SDK's way), the answer does not even wait for its end: its start
 * tells whose it is, and it is passed on while the server still writes it (`LineFramer`'s long lines,
 * `SharedServer.streamLargeAnswer`), when the client's session can take it so: the body of the POST
 * that asked (Streamable HTTP), or one event sent in pieces (legacy SSE).
 *
 * Only the ends are looked at: such a line is not checked to be valid JSON in between, as a line that
 * is parsed is. A server that writes a broken answer of this size gets it to its client broken, where a
 * smaller one would be dropped and logged. A last line without its newline (a server that died while
 * writing it) is never taken as it is; one already being passed on is cut off: the POST's body breaks
 * off, and an SSE client gets what came of it as an event of another type, then an error answer.
 *
 * In client mode a large body from the remote server is parsed, as every message is, but its bytes are
 * what is written to stdout when they are the message's line as it is ({@link bodyAsLine}): the text is
 * not encoded again.
 *
 * @module
 */

import {
  batchLines,
  type IdSpan,
  isBatch,
  oneMessageLine,
  type RequestId,
  singleMessageLine,
} from "./jsonrpc.ts";
import { includesLineBreak } from "./line_break_search.ts";

/** A message's JSON text on one line: a string, or its UTF-8 bytes (a large message, written as it came). */
export type JsonText = string | Uint8Array<ArrayBuffer>;

const textDecoder = new TextDecoder();

/** JSON text given as a string or as its UTF-8 bytes, as a string. */
export function asText(json: JsonText): string {
  return typeof json === "string" ? json : textDecoder.decode(json);
}

/**
 * A large message's line as pieces of bytes, written one after the other: a client's bytes with a new id,
 * most of them uncopied ({@link lineWithId}).
 */
export type LinePieces = readonly Uint8Array<ArrayBuffer>[];

/** Lines from this long on are offered to the large-answer path before they are decoded. */
export const LARGE_ANSWER_BYTES = 64 * 1024;

const encoder = new TextEncoder();
const LEADING = encoder.encode('{"jsonrpc":"2.0","id":');
const LEADING_AFTER_ID = encoder.encode(',"result":');
const TRAILING_START = encoder.encode('{"result":');
const TRAILING = encoder.encode(',"jsonrpc":"2.0","id":');
const OPENING_BRACE = 0x7b;
const CLOSING_BRACE = 0x7d;
const CARRIAGE_RETURN = 0x0d;
const SPACE = 0x20;
/** The most digits of an id the proxy gives (a safe integer). */
const MAX_ID_DIGITS = 15;

/** `pieces` as one array of `length` bytes (their sum): the only piece itself, else a copy. */
export function concatenated(
  pieces: readonly Uint8Array<ArrayBuffer>[],
  length: number = pieces.reduce((sum, piece) => sum + piece.length, 0),
): Uint8Array<ArrayBuffer> {
  if (pieces.length === 1) return pieces[0];
  const whole = new Uint8Array(length);
  let at = 0;
  for (const piece of pieces) {
    whole.set(piece, at);
    at += piece.length;
  }
  return whole;
}

/** Where the id of an answer stands in its line, and its value. */
export interface AnswerIdAt {
  id: number;
  /** Offset of the id's first digit. */
  start: number;
  /** Offset past its last digit. */
  end: number;
}

function bytesAt(line: Uint8Array, offset: number, expected: Uint8Array): boolean {
  if (offset < 0 || offset + expected.length > line.length) return false;
  for (let i = 0; i < expected.length; i++) if (line[offset + i] !== expected[i]) return false;
  return true;
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

/** The integer written in `line` from `start` to `end`, if it is one as JSON writes it. */
function integerAt(line: Uint8Array, start: number, end: number): number | undefined {
  const digits = end - start;
  if (digits < 1 || digits > MAX_ID_DIGITS || (digits > 1 && line[start] === 0x30)) return undefined;
  let value = 0;
  for (let i = start; i < end; i++) {
    if (!isDigit(line[i])) return undefined;
    value = value * 10 + (line[i] - 0x30);
  }
  return value;
}

/**
 * The id of the answer `line` holds, when its ends are those an SDK writes for an answer with a result
 * and an integer id; else undefined, and the line is to be parsed as usual.
 */
export function answerIdOf(line: Uint8Array): AnswerIdAt | undefined {
  if (line[line.length - 1] !== CLOSING_BRACE) return undefined;
  let found: AnswerIdAt | undefined;
  if (bytesAt(line, 0, LEADING)) {
    // The result is an object: the line ends with its brace and the message's.
    if (line[line.length - 2] === CLOSING_BRACE) found = leadingAnswerIdOf(line);
  } else if (bytesAt(line, 0, TRAILING_START)) {
    const end = line.length - 1;
    let start = end;
    while (start > 0 && end - start <= MAX_ID_DIGITS && isDigit(line[start - 1])) start--;
    const id = integerAt(line, start, end);
    if (id !== undefined && bytesAt(line, start - TRAILING.length, TRAILING)) found = { id, start, end };
  }
  return found;
}

/**
 * The id of the answer whose line begins with `start`, when it begins as the Python SDK writes an answer
 * with a result (the id first); else undefined. Only this shape tells whose answer a line is before its
 * end has come.
 */
export function leadingAnswerIdOf(start: Uint8Array): AnswerIdAt | undefined {
  if (!bytesAt(start, 0, LEADING)) return undefined;
  const idStart = LEADING.length;
  let idEnd = idStart;
  while (idEnd < start.length && idEnd - idStart <= MAX_ID_DIGITS && isDigit(start[idEnd])) idEnd++;
  const id = integerAt(start, idStart, idEnd);
  return id !== undefined && bytesAt(start, idEnd, LEADING_AFTER_ID)
    ? { id, start: idStart, end: idEnd }
    : undefined;
}

/** A copy of `line` with the id `at` names replaced by `newId`, everything else byte for byte. */
export function withAnswerId(line: Uint8Array, at: AnswerIdAt, newId: RequestId): Uint8Array<ArrayBuffer> {
  return withIdBetween(line, at.start, at.end, newId);
}

/** A copy of `line` with the bytes from `start` to `end` (an id) replaced by `newId`'s JSON text. */
function withIdBetween(
  line: Uint8Array,
  start: number,
  end: number,
  newId: RequestId,
): Uint8Array<ArrayBuffer> {
  const id = encoder.encode(JSON.stringify(newId));
  const copy = new Uint8Array(line.length - (end - start) + id.length);
  copy.set(line.subarray(0, start));
  copy.set(id, start);
  copy.set(line.subarray(end), start + id.length);
  return copy;
}

/**
 * `json` as the data of an SSE event: as it is, unless it holds a carriage return, which an SSE parser
 * takes for the end of the line. In JSON text that is valid, a raw carriage return can only be white
 * space between tokens (in a string it is escaped), so a copy with each one made a space means the same.
 */
export function asEventData(json: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (!includesLineBreak(json, "\r")) return json;
  return json.map((byte) => byte === CARRIAGE_RETURN ? SPACE : byte);
}

/**
 * A large body of one message (a client's request, a remote server's answer in client mode), decoded and
 * found to be one line, `line` (`singleMessageLine`, which rules out line breaks), as that line's bytes:
 * the body's own, which are exactly that when they start and end with the message's braces (no white
 * space or byte-order mark around it) and decoding replaced no byte (invalid UTF-8 becomes U+FFFD).
 * Writing them saves encoding the text again, about 0.5 ms a megabyte. Else, or when the body is small,
 * undefined: the text is written.
 */
export function bodyAsLine(
  bytes: Uint8Array<ArrayBuffer>,
  line: string,
): Uint8Array<ArrayBuffer> | undefined {
  if (
    bytes.length < LARGE_ANSWER_BYTES || bytes[0] !== OPENING_BRACE ||
    bytes[bytes.length - 1] !== CLOSING_BRACE
  ) {
    return undefined;
  }
  return line.includes("\uFFFD") ? undefined : bytes;
}

/**
 * What to write for each of the `messageCount` messages a remote server sent as `text` (client mode),
 * decoded from `bytes` when given: for one message its line, or those bytes when they are that line as it
 * is ({@link bodyAsLine}), or its text made one line when it was laid out on several; for a batch, each
 * message's own text as one line. An entry is undefined where a message's text cannot be told apart: it
 * is then serialized again.
 */
export function receivedLines(
  messageCount: number,
  text: string,
  bytes: Uint8Array<ArrayBuffer> | undefined,
): (JsonText | undefined)[] {
  const line = singleMessageLine(text);
  if (line === undefined && isBatch(text)) return batchLines(text, messageCount) ?? [];
  if (messageCount !== 1) return [];
  // Laid out on several lines: one line of it (its bytes are not that line).
  if (line === undefined) return [oneMessageLine(text)];
  return [bytes === undefined ? line : bodyAsLine(bytes, line) ?? line];
}

/**
 * `line`, the UTF-8 bytes of the text `json` (its {@link bodyAsLine}), with the id that `span` finds in the
 * text replaced by `newId`, as two pieces: the bytes of the shorter end copied with the new id, and the rest
 * as they are; undefined when the bytes' offsets cannot be told from the text's (characters beyond ASCII
 * both before the id and in or after it). Encoding the text anew would cost about 0.7 ms a megabyte, and
 * a copy of it all with the id replaced about 0.2 ms.
 */
export function lineWithId(
  line: Uint8Array<ArrayBuffer>,
  json: string,
  span: IdSpan,
  newId: RequestId,
): LinePieces | undefined {
  const end = span.start + span.length;
  let start: number;
  // The id is near one end: where all from that end to past the id is ASCII, bytes and characters agree.
  if (isAscii(json, 0, end)) start = span.start;
  else if (isAscii(json, span.start, json.length)) start = line.length - (json.length - span.start);
  else return undefined;
  const idEnd = start + span.length;
  // The shorter end (a few bytes: the id stands near one end) is copied with the new id; the rest is not.
  return start <= line.length - idEnd
    ? [withIdBetween(line.subarray(0, idEnd), start, idEnd, newId), line.subarray(idEnd)]
    : [line.subarray(0, start), withIdBetween(line.subarray(start), 0, span.length, newId)];
}

/** Whether the characters of `text` from `start` to `end` are all ASCII (looked at only up to 512). */
function isAscii(text: string, start: number, end: number): boolean {
  if (end - start > 512) return false;
  for (let i = start; i < end; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * The error answer a client gets, where it can, for a request whose answer was cut short after part of
 * it had been passed on (the server stopped, or the line grew over the limit), as JSON text.
 */
export function cutShortAnswer(clientId: RequestId, reason: string): string {
  const message = `mcp-proxy: the server's answer was cut short (${reason})`;
  return JSON.stringify({ jsonrpc: "2.0", id: clientId, error: { code: -32603, message } });
}
