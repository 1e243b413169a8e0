/**
 * JSON-RPC 2.0 messages as the proxy relays them: plain objects whose unknown fields are kept as they are.
 * Only the fields the proxy routes on are typed; everything else passes through untouched.
 *
 * @module
 */

import { arrayItems, memberSpan, namesEachMemberOnce, skipSpace } from "./json_members.ts";

/** A request id. `null` appears only in error responses to unparseable requests. */
export type RequestId = string | number | ExactInteger;

/**
 * An integer beyond 2^53 (JavaScript numbers hold integers exactly only up to there), kept as it was
 * written: `JSON.stringify` writes its digits as they came. Made by {@link withExactIntegers}, one
 * object for each spelling while any is in use, so that it works as a `Map` key as a number would.
 * {@link parseLosslessly} makes one of every number that a JS number would not write back as it came
 * (`1.0`, `-0`, `1e-400`) too.
 */
export interface ExactInteger {
  readonly rawJSON: string;
}

/** A request: has `method` and `id`. */
export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id: RequestId;
  method: string;
  params?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A notification: has `method`, no `id`. */
export interface JsonRpcNotification {
  jsonrpc: "2.0";
  method: string;
  params?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A response: `result` or `error`, and the id of the request it answers. */
export interface JsonRpcResponse {
  jsonrpc: "2.0";
  id: RequestId | null;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
  [key: string]: unknown;
}

/** Any single JSON-RPC message. */
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** Standard and MCP error codes the proxy itself produces. */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InternalError: -32603,
  /** MCP SDK's "connection closed": the server behind the proxy is gone. */
  ConnectionClosed: -32000,
  /** MCP SDK's "request timeout": no answer in time (`--request-timeout`). */
  RequestTimeout: -32001,
} as const;

/** True for a request (method and id). */
export function isRequest(message: JsonRpcMessage): message is JsonRpcRequest {
  return "method" in message && "id" in message && message.id !== undefined;
}

/** True for a notification (method, no id). */
export function isNotification(message: JsonRpcMessage): message is JsonRpcNotification {
  return "method" in message && !("id" in message && message.id !== undefined);
}

/** True for a response (result or error, no method). */
export function isResponse(message: JsonRpcMessage): message is JsonRpcResponse {
  return !("method" in message);
}

/**
 * Checks that a parsed JSON value is one JSON-RPC 2.0 message and returns it typed, or returns a
 * sentence saying what is wrong with it.
 */
export function validateMessage(value: unknown): JsonRpcMessage | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "a JSON-RPC message must be a JSON object";
  }
  const message = value as Record<string, unknown>;
  if (message.jsonrpc !== "2.0") return 'a JSON-RPC message must have "jsonrpc": "2.0"';
  const id = message.id;
  const hasId = "id" in message;
  if (hasId && typeof id !== "string" && typeof id !== "number" && id !== null && !isExactInteger(id)) {
    return '"id" must be a string or a number';
  }
  if (typeof id === "number" && !Number.isFinite(id)) return '"id" must be a finite number';
  if ("method" in message) {
    if (typeof message.method !== "string") return '"method" must be a string';
    if (id === null) return 'a request\'s "id" must not be null';
    const params = message.params;
    if (params !== undefined && (typeof params !== "object" || params === null)) {
      return '"params" must be an object or an array';
    }
    return message as unknown as JsonRpcMessage;
  }
  if (!hasId) return 'a JSON-RPC message needs "method" (request, notification) or "id" (response)';
  const hasResult = "result" in message;
  const hasError = "error" in message;
  if (hasResult === hasError) return 'a response must have exactly one of "result" and "error"';
  if (hasError) {
    const error = message.error as Record<string, unknown> | null;
    if (typeof error !== "object" || error === null || typeof error.code !== "number") {
      return '"error" must be an object with a numeric "code"';
    }
  }
  return message as unknown as JsonRpcMessage;
}

/**
 * Parses JSON text holding one message or a batch (an array) of them; returns the messages, or a
 * sentence saying what is wrong (then none of them is valid to use). Ids beyond 2^53 are kept exact
 * ({@link withExactIntegers}).
 */
export function parseMessages(text: string): JsonRpcMessage[] | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "the text is not JSON";
  }
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0) return "the batch is empty";
  const messages: JsonRpcMessage[] = [];
  for (const item of items) {
    const message = validateMessage(item);
    if (typeof message === "string") return message;
    messages.push(message);
  }
  if (!messages.some(holdsUnsafeInteger)) return messages;
  const exact = parseExactly(text, value);
  return (Array.isArray(exact) ? exact : [exact]) as JsonRpcMessage[];
}

/**
 * `message`, parsed from `text`; or, when an id in it is an integer a JS number rounds (beyond 2^53: a
 * request's or response's `id`, a cancellation's `requestId`, a progress token), `text` parsed again
 * with every such integer in it as an {@link ExactInteger}. The proxy keeps those ids and writes them back
 * (mapped per session, or in its own error answers): they then keep the digits they came with. A message
 * without one costs a look at those three places.
 */
export function withExactIntegers(message: JsonRpcMessage, text: string): JsonRpcMessage {
  return holdsUnsafeInteger(message) ? parseExactly(text, message) as JsonRpcMessage : message;
}

/**
 * `text` parsed with each integer a JS number rounds (however written: `12345678901234567891`, `…891.0`,
 * `…891e0`) as an {@link ExactInteger}; `fallback` when `text` nests too deep for a reviver (thousands of
 * levels), which the plain parse that made it handles.
 */
function parseExactly(text: string, fallback: unknown): unknown {
  try {
    return (JSON as unknown as JsonWithSource).parse(
      text,
      (_key, value, context) => isUnsafeInteger(value) ? exactInteger(context.source) : value,
    );
  } catch {
    return fallback;
  }
}

/**
 * `text` (valid JSON) parsed so that `JSON.stringify` writes every number in it back as it came: each one a
 * JS number would write otherwise (an integer beyond 2^53, `1.0`, `-0`, `1e3`, `1e-400`) is an
 * {@link ExactInteger} of its spelling. For a message the proxy must serialize anew with a member changed,
 * when that member cannot be replaced in its text (`json_members.ts`): the rest of it keeps its values.
 */
export function parseLosslessly(text: string): unknown {
  return (JSON as unknown as JsonWithSource).parse(
    text,
    (_key, value, context) =>
      typeof value === "number" && String(value) !== context.source ? exactInteger(context.source) : value,
  );
}

/**
 * {@link parseLosslessly}, or `fallback` (the message as a plain parse read it, its numbers as JS numbers)
 * when `text` nests too deep for a reviver (thousands of levels): the message still goes on.
 */
export function parseLosslesslyOr<T>(text: string, fallback: T): T {
  try {
    return parseLosslessly(text) as T;
  } catch {
    return fallback;
  }
}

/** `JSON` with the parts of ES2025's source text access that lib.es types lack. */
interface JsonWithSource {
  parse(
    text: string,
    reviver: (key: string, value: unknown, context: { source: string }) => unknown,
  ): unknown;
  rawJSON(text: string): ExactInteger;
  isRawJSON(value: unknown): boolean;
}

/** The {@link ExactInteger}s in use, by spelling: one object per spelling keeps `Map` keys working. */
const exactIntegers = new Map<string, WeakRef<ExactInteger>>();
const forgetExactInteger = new FinalizationRegistry<string>((source) => {
  if (exactIntegers.get(source)?.deref() === undefined) exactIntegers.delete(source);
});

function exactInteger(source: string): ExactInteger {
  const known = exactIntegers.get(source)?.deref();
  if (known !== undefined) return known;
  const integer = (JSON as unknown as JsonWithSource).rawJSON(source);
  exactIntegers.set(source, new WeakRef(integer));
  forgetExactInteger.register(integer, source);
  return integer;
}

/** True for an integer kept as it was written ({@link ExactInteger}). */
export function isExactInteger(value: unknown): value is ExactInteger {
  return typeof value === "object" && value !== null && (JSON as unknown as JsonWithSource).isRawJSON(value);
}

function isUnsafeInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value);
}

/** Whether an id the proxy keeps or rewrites in `message` is an integer a JS number rounds. */
function holdsUnsafeInteger(message: JsonRpcMessage): boolean {
  if (isUnsafeInteger(message.id)) return true;
  const params = message.params as Record<string, unknown> | undefined;
  if (typeof params !== "object" || params === null) return false;
  const meta = params._meta as Record<string, unknown> | undefined;
  return isUnsafeInteger(params.requestId) || (typeof meta === "object" && meta !== null &&
    isUnsafeInteger(meta.progressToken));
}

/**
 * The JSON text of one parsed message as a stdio line, so that it can go on as it was written rather
 * than be serialized again: `text` without the whitespace around it, when it holds one message (not a
 * batch) and no line break inside; else undefined.
 */
export function singleMessageLine(text: string): string | undefined {
  const line = text.trim();
  if (line.includes("\n") || line.includes("\r") || line.startsWith("[")) return undefined;
  return line;
}

/** True when the JSON text is an array (a batch): its first character past white space is `[`. */
export function isBatch(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    // JSON white space: space, tab, line feed, carriage return.
    if (char !== 0x20 && char !== 0x09 && char !== 0x0a && char !== 0x0d) return char === 0x5b;
  }
  return false;
}

/**
 * The JSON text of one parsed message (not a batch) as a stdio line, however it was laid out: `text`
 * without the white space around it, each raw line break in it made a space. In valid JSON text a raw
 * `\r` or `\n` can only be white space between tokens (in a string it is escaped), so the line means the
 * same, every value kept as written; serializing the message anew would round its numbers.
 */
export function oneMessageLine(text: string): string {
  return singleMessageLine(text) ?? text.trim().replace(/[\r\n]/g, " ");
}

/**
 * The text of each message of a batch (`text`, a JSON array of `count` messages) as a stdio line, every
 * value as written ({@link oneMessageLine}); undefined when the array cannot be read item by item.
 */
export function batchLines(text: string, count: number): string[] | undefined {
  const items = arrayItems(text);
  return items?.length === count ? items.map(oneMessageLine) : undefined;
}

/** A JSON-RPC id as serializers write it: an integer or a string. */
const ID_VALUE = String.raw`(-?\d+|"(?:[^"\\]|\\.)*")`;
/** The id as the first member of a message (after `"jsonrpc"`); group 1 is what stands before it. */
const LEADING_ID = new RegExp(
  String.raw`^(\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*)` + ID_VALUE + String.raw`(?=\s*[,}])`,
);
/** The id as the last member of a message; group 1 is what stands before it. */
const TRAILING_ID = new RegExp(String.raw`([,{]\s*"id"\s*:\s*)` + ID_VALUE + String.raw`\s*\}\s*$`);
/** How much of each end of a message {@link withRequestId} looks at. */
const END_CHARS = 256;

/** A top-level id found at one end of a message's text: its JSON text and where it starts. */
interface FoundId {
  text: string;
  start: number;
}

/** The id when it is the first member of the message `head` begins. */
function leadingId(head: string): FoundId | undefined {
  const match = LEADING_ID.exec(head);
  return match === null ? undefined : { text: match[2], start: match[1].length };
}

/** The id when it is the last member of the message `tail` ends. */
function trailingId(tail: string): FoundId | undefined {
  const match = TRAILING_ID.exec(tail);
  return match === null ? undefined : { text: match[2], start: match.index + match[1].length };
}

function parseId(found: FoundId | undefined): RequestId | undefined {
  if (found === undefined) return undefined;
  try {
    return JSON.parse(found.text) as RequestId;
  } catch {
    return undefined;
  }
}

/** Whether the id `found` is `id`: an {@link ExactInteger} is compared as it is written. */
function isId(found: FoundId | undefined, id: RequestId): found is FoundId {
  if (found === undefined) return false;
  return isExactInteger(id) ? found.text === id.rawJSON : parseId(found) === id;
}

/** How serializers without whitespace begin a message: its id comes right after one of these. */
const COMPACT_STARTS = ['{"jsonrpc":"2.0","id":', '{"id":'];

/**
 * Where the id whose JSON text is `text` stands in `json` when serializers without whitespace wrote it,
 * as the first member (after `"jsonrpc"`) or the last: a shorter way to what {@link withRequestId} finds
 * with its patterns, for the messages nearly all of them are.
 */
function compactIdAt(json: string, text: string): number | undefined {
  for (const start of COMPACT_STARTS) {
    if (!json.startsWith(start) || !json.startsWith(text, start.length)) continue;
    const after = json.charCodeAt(start.length + text.length);
    if (after === 0x2c || after === 0x7d) return start.length; // , or }
  }
  const member = `"id":${text}}`;
  if (!json.endsWith(member)) return undefined;
  const before = json.charCodeAt(json.length - member.length - 1);
  return before === 0x2c || before === 0x7b ? json.length - text.length - 1 : undefined; // , or {
}

/** Where a message's id stands in its text: from `start`, `length` characters. */
export interface IdSpan {
  start: number;
  length: number;
}

/**
 * Where the top-level `"id"` of a message, whose value is `id`, stands in `json`, its text; undefined when
 * it is not where serializers put it (the first member, after `"jsonrpc"`, or the last). Only the ends of
 * `json` are looked at, so a large message costs no more than a small one.
 */
function requestIdSpan(json: string, id: RequestId): IdSpan | undefined {
  if (typeof id === "number" || typeof id === "string") {
    const text = JSON.stringify(id);
    const at = compactIdAt(json, text);
    if (at !== undefined) return { start: at, length: text.length };
  }
  const leading = leadingId(json.length > END_CHARS ? json.slice(0, END_CHARS) : json);
  if (isId(leading, id)) return { start: leading.start, length: leading.text.length };
  const tailStart = Math.max(0, json.length - END_CHARS);
  const trailing = trailingId(tailStart === 0 ? json : json.slice(tailStart));
  if (isId(trailing, id)) return { start: tailStart + trailing.start, length: trailing.text.length };
  return undefined;
}

/** `json` with the characters `span` covers replaced by `newId`'s JSON text. */
export function withIdAt(json: string, span: IdSpan, newId: RequestId): string {
  return json.slice(0, span.start) + JSON.stringify(newId) + json.slice(span.start + span.length);
}

/**
 * `json`, the text of a message whose top-level `"id"` is `id`, with that id replaced by
 * `newId` and everything else byte for byte as it was; undefined when the id is not where serializers put
 * it (the first member, after `"jsonrpc"`, or the last), and the caller must serialize the message anew.
 * Only the ends of `json` are looked at, so a large message costs no more than a small one.
 */
export function withRequestId(json: string, id: RequestId, newId: RequestId): string | undefined {
  const span = idSpanAtAnEnd(json, id);
  return span === undefined ? undefined : withIdAt(json, span, newId);
}

/**
 * Where the top-level `"id"` of a message, whose value is `id`, stands in `json`, its text, when it is
 * where serializers put it (see {@link withRequestId}) and named at that end only; else undefined.
 */
export function idSpanAtAnEnd(json: string, id: RequestId): IdSpan | undefined {
  const span = requestIdSpan(json, id);
  return span === undefined || idAtOtherEnd(json, span) ? undefined : span;
}

/**
 * Whether `line` may name a member `"id"` of value `id` more than once, at any depth: the one at an end
 * that `withRequestId` would replace may then not be the one a parser reads (the last). Only members
 * that could read as `id` count (nested records with ids of their own are common, and cost a member by
 * member reading; found by review): a number of that value, for a number; any string, for a string; any
 * value otherwise; and a name spelled with an escape might be any of them.
 */
export function mayNameIdTwice(line: string, id: RequestId): boolean {
  if (line.includes("\\u006")) return true;
  let count = 0;
  for (let at = line.indexOf('"id"'); at !== -1; at = line.indexOf('"id"', at + 4)) {
    const colon = skipSpace(line, at + 4);
    if (line.charCodeAt(colon) !== 0x3a) continue; // not a name: no `:` after it
    if (mayReadAs(line, skipSpace(line, colon + 1), id) && ++count > 1) return true;
  }
  return false;
}

/** Whether the JSON value at `at` in `line` may read as `id` (see `mayNameIdTwice`). */
function mayReadAs(line: string, at: number, id: RequestId): boolean {
  if (typeof id === "string") return line.charCodeAt(at) === 0x22;
  if (typeof id !== "number") return true;
  let end = at;
  for (let code = line.charCodeAt(end); isNumberChar(code); code = line.charCodeAt(++end));
  return end > at && Number(line.slice(at, end)) === id;
}

/** A character of a JSON number: a digit, `-`, `+`, `.`, `e` or `E`. */
function isNumberChar(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x2b || code === 0x2e || code === 0x65 ||
    code === 0x45;
}

/** Whether the member whose value `span` covers is the last of `json`, its text. */
export function isLastMember(json: string, span: IdSpan): boolean {
  const end = span.start + span.length;
  return json.length - end < 16 && /^\s*\}\s*$/.test(json.slice(end));
}

/**
 * Whether `json` names a top-level id at its other end too, besides the one at `span`: JSON.parse reads the
 * last of two, which replacing the first would leave as it was. Only that end is looked at.
 */
function idAtOtherEnd(json: string, span: IdSpan): boolean {
  const end = span.start + span.length;
  if (!isLastMember(json, span)) {
    const tail = json.slice(Math.max(end, json.length - END_CHARS));
    return tail.includes('"id"') && trailingId(tail) !== undefined;
  }
  const head = json.slice(0, Math.min(span.start, END_CHARS));
  return head.includes('"id"') && leadingId(head) !== undefined;
}

/**
 * The member names the proxy reads in a client's message (or that hold what it reads), and any escape `\u`
 * (with which a name could be spelled otherwise): what {@link readsOneWay} looks for in one pass.
 */
const CLIENT_NAMES = /"(?:id|method|params|_meta|progressToken|requestId|uri|capabilities)"|\\u/g;

/** The objects of a client's message whose members the proxy reads. */
const READ_OBJECTS: readonly (readonly string[])[] = [[], ["params"], ["params", "_meta"]];

/**
 * Whether a client's message, `json` its text, reads one way only where the proxy reads it: no member it
 * reads or looks into (`id`, `method`, `params`, `_meta`, `progressToken`, `requestId`, `uri`,
 * `capabilities`) named twice in the same object, however spelled. A parser that keeps the first of two
 * would read another method, id, token or request than the proxy routed on, the last: such a text must not
 * go on as it is, only serialized anew from what the proxy read.
 *
 * Nearly every message names each of them at most once in all its text, and spells none with an escape:
 * one pass tells. Others are read member by member (`json_members.ts`).
 */
export function readsOneWay(json: string): boolean {
  // Told apart without a match array, by the two letters before the closing quote (a hash of them that
  // gives each of the eight names a bit of its own); an escape ends in `u`, not in a quote.
  CLIENT_NAMES.lastIndex = 0;
  let seen = 0;
  let once = true;
  while (CLIENT_NAMES.test(json)) {
    const end = CLIENT_NAMES.lastIndex;
    if (json.charCodeAt(end - 1) !== 0x22) {
      once = false;
      break;
    }
    const bit = 1 << (((json.charCodeAt(end - 3) * 5 + json.charCodeAt(end - 2)) >> 1) & 31);
    if ((seen & bit) !== 0) {
      once = false;
      break;
    }
    seen |= bit;
  }
  return once || READ_OBJECTS.every((path) => namesEachMemberOnce(json, path));
}

/**
 * Where the top-level `"id"` of a message from a client, whose value is `id`, stands in `json`, its text,
 * for {@link withIdAt}: as {@link withRequestId} finds it, else member by member; but only when `json`
 * reads one way only ({@link readsOneWay}), as the proxy does not trust a client. Otherwise undefined, and
 * the caller serializes the message anew.
 */
export function clientRequestIdSpan(json: string, id: RequestId): IdSpan | undefined {
  return readsOneWay(json) ? anyIdSpan(json, id) : undefined;
}

/** Where the top-level `"id"`, whose value is `id`, stands in `json`: at an end, else member by member. */
function anyIdSpan(json: string, id: RequestId): IdSpan | undefined {
  const atAnEnd = requestIdSpan(json, id);
  if (atAnEnd !== undefined) return atAnEnd;
  const span = memberSpan(json, ["id"]);
  if (span == null) return undefined;
  return isId({ text: json.slice(span.start, span.start + span.length), start: span.start }, id)
    ? span
    : undefined;
}

/**
 * The id `id` of a client's request as `json` spells it at `span` (from {@link clientRequestIdSpan}), when
 * `JSON.stringify` would write its value otherwise (`1e3`, `1.50`, `-0`, `"\u00e9"`, `"\/"`): an
 * {@link ExactInteger} of that spelling, for the answer to carry back as the client wrote it. Undefined
 * when the value is written as JSON writes it, as nearly every id is.
 */
export function idAsWritten(json: string, span: IdSpan, id: RequestId): ExactInteger | undefined {
  if (isExactInteger(id)) return undefined;
  const written = json.slice(span.start, span.start + span.length);
  return written === (typeof id === "number" ? String(id) : JSON.stringify(id))
    ? undefined
    : exactInteger(written);
}

/**
 * How `json`, the text of a message whose id is `id`, spells that id, when `JSON.stringify` would write its
 * value otherwise: see {@link idAsWritten}. Where the id stands first (after `"jsonrpc"`) or last, as JSON
 * writes it, only the ends of `json` are looked at; else it is read member by member.
 */
export function idSpelling(json: string, id: RequestId): ExactInteger | undefined {
  if (isExactInteger(id)) return undefined;
  const span = anyIdSpan(json, id);
  return span === undefined ? undefined : idAsWritten(json, span, id);
}

/**
 * The id of a response known only by its first and last bytes (a line too long to read whole): the
 * first member (after `"jsonrpc"`), or the last one, as serializers put it at either end.
 */
export function idOfTruncatedResponse(head: string, tail: string): RequestId | undefined {
  return parseId(leadingId(head)) ?? parseId(trailingId(tail));
}

/** What the ends of a message too long to read whole tell of it ({@link truncatedMessageKind}). */
export type TruncatedMessage =
  | { kind: "request"; id: RequestId; spelled?: ExactInteger; method: string }
  | { kind: "notification"; method: string }
  | { kind: "response"; id: RequestId; spelled?: ExactInteger };

/** A JSON string, escapes and all. */
const JSON_STRING = String.raw`"(?:[^"\\]|\\.)*"`;
/** A value that holds no other: a string, a number, `true`, `false` or `null`. */
const SCALAR = String.raw`${JSON_STRING}|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null`;
/** A member's name where one is due (sticky: from `lastIndex`). */
const MEMBER_NAME = new RegExp(String.raw`\s*(${JSON_STRING})\s*:\s*`, "y");
/** A member's scalar value, where it ends (sticky: from `lastIndex`). */
const SCALAR_VALUE = new RegExp(String.raw`(${SCALAR})\s*[,}]`, "y");
/**
 * The last member of what is left of an object, when its value is a scalar. `[,{]` before a `"` is
 * never inside a string (a quote in a string is escaped), so the match starts at a member's name.
 */
const LAST_SCALAR_MEMBER = new RegExp(String.raw`([,{])\s*(${JSON_STRING})\s*:\s*(${SCALAR})\s*$`);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A member's JSON text as an id, integers beyond 2^53 as written; undefined if it cannot be one. */
function idFromJson(text: string): RequestId | undefined {
  const value = parseJson(text);
  if (isUnsafeInteger(value) && /^-?\d+$/.test(text)) return exactInteger(text);
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value))
    ? value
    : undefined;
}

/** `id` as `text` writes it, when JSON would write it otherwise (`1e3`, `-0`, `"\u00e9"`). */
function spellingOf(id: RequestId, text: string): ExactInteger | undefined {
  return JSON.stringify(id) === text ? undefined : exactInteger(text);
}

/**
 * The top-level members of an object whose first bytes are `head` and last bytes `tail`, as far as they
 * can be read: from each end up to the first value that holds others (`params`, `result`), which is where
 * a nested `"id"` could be. Values are JSON text; a member whose value is not read maps to undefined. Of
 * a name given twice, the member nearer the end wins, as `JSON.parse` has it (`head` and `tail` may be the
 * same bytes).
 */
function membersAtEnds(head: string, tail: string): Map<string, string | undefined> {
  const leading = new Map<string, string | undefined>();
  let at = /^\s*\{/.exec(head)?.[0].length;
  while (at !== undefined) {
    MEMBER_NAME.lastIndex = at;
    const name = MEMBER_NAME.exec(head);
    const key = name === null ? undefined : parseJson(name[1]);
    if (typeof key !== "string") break;
    SCALAR_VALUE.lastIndex = MEMBER_NAME.lastIndex;
    const value = SCALAR_VALUE.exec(head);
    leading.set(key, value?.[1]);
    at = value === null || value[0].endsWith("}") ? undefined : SCALAR_VALUE.lastIndex;
  }
  const trailing = new Map<string, string | undefined>();
  let rest = /\}\s*$/.test(tail) ? tail.slice(0, tail.lastIndexOf("}")) : "";
  for (let member = LAST_SCALAR_MEMBER.exec(rest); member !== null; member = LAST_SCALAR_MEMBER.exec(rest)) {
    const key = parseJson(member[2]);
    if (typeof key !== "string") break;
    if (!trailing.has(key)) trailing.set(key, member[3]);
    if (member[1] === "{") break;
    rest = rest.slice(0, member.index);
  }
  for (const [key, value] of trailing) leading.set(key, value);
  return leading;
}

/**
 * What a message known only by its first and last bytes (a line too long to read whole) is: a request
 * (its id and method), a notification (a method, and no `"id"` at either end) or a response (an id, and
 * `"result"` or `"error"`); undefined when its ends do not tell. Only top-level members are read, from
 * each end up to the first value that holds others, where serializers put `jsonrpc`, `id` and `method`:
 * an `"id"` inside `params` is never taken. An id beyond 2^53 is kept as written ({@link ExactInteger}).
 */
export function truncatedMessageKind(head: string, tail: string): TruncatedMessage | undefined {
  const members = membersAtEnds(head, tail);
  const methodJson = members.get("method");
  const method = methodJson === undefined ? undefined : parseJson(methodJson);
  const idJson = members.get("id");
  const id = idJson === undefined ? undefined : idFromJson(idJson);
  // Its value, which matches it, and how it was written, for an answer to write it back so (found by QA).
  const spelled = id === undefined ? undefined : spellingOf(id, idJson!);
  const exactly = spelled === undefined ? {} : { spelled };
  if (typeof method === "string") {
    if (id !== undefined) return { kind: "request", id, ...exactly, method };
    return members.has("id") ? undefined : { kind: "notification", method };
  }
  if (id !== undefined && !members.has("method") && (members.has("result") || members.has("error"))) {
    return { kind: "response", id, ...exactly };
  }
  return undefined;
}

/**
 * A request id that a batch uses twice, or that `inFlight` says is already waiting for an answer: JSON-RPC
 * requires ids to be unique among a client's pending requests, and answers could not be told apart.
 */
export function reusedRequestId(
  messages: readonly unknown[],
  inFlight: (id: RequestId) => boolean,
): RequestId | undefined {
  // One message, the common case, needs no set.
  const seen = messages.length > 1 ? new Set<RequestId>() : undefined;
  for (const message of messages) {
    if (typeof message !== "object" || message === null || !("method" in message) || !("id" in message)) {
      continue;
    }
    const id = (message as { id: unknown }).id;
    if (typeof id !== "string" && typeof id !== "number" && !isExactInteger(id)) continue;
    if (seen?.has(id) || inFlight(id)) return id;
    seen?.add(id);
  }
  return undefined;
}

/** Builds an error response to the request with `id`. */
export function errorResponse(
  id: RequestId | null,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcResponse {
  const error = data === undefined ? { code, message } : { code, message, data };
  return { jsonrpc: "2.0", id, error };
}

/** An id read by `JSON.parse` that is the id as written: a string, or a number it holds exactly. */
function usableId(value: unknown): RequestId | null {
  if (typeof value === "string" || isExactInteger(value)) return value;
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  return isUnsafeInteger(value) ? null : value;
}

/**
 * What to answer a client's line that is not one JSON-RPC message: `why` is what {@link validateMessage}
 * said (or "not JSON"), `value` what the line held when it was JSON. Not JSON: -32700 with id null.
 * JSON, but no valid message: -32600, under the request's id when it has one that can be read exactly.
 * A batch (a JSON array), which is not relayed: an array of -32600 answers, one for each request in it,
 * as JSON-RPC answers a batch; none for a batch of notifications only; one for an empty batch.
 *
 * @example
 * ```ts
 * answerToInvalid('"method" must be a string', { jsonrpc: "2.0", id: 4, method: 7 });
 * // { jsonrpc: "2.0", id: 4, error: { code: -32600, message: "mcp-proxy: invalid message: …" } }
 * ```
 */
export function answerToInvalid(
  why: string,
  value: unknown,
  text?: string,
): JsonRpcResponse | JsonRpcResponse[] | undefined {
  if (value === undefined) {
    return errorResponse(null, ErrorCode.ParseError, `mcp-proxy: invalid message: ${why}`);
  }
  // With the line's text, ids as written (found by QA: `"\u00e9"` came back as `"é"`).
  if (text !== undefined) value = withIdsAsWritten(text, value);
  const idOf = (item: unknown) =>
    typeof item === "object" && item !== null && "id" in item ? usableId(item.id) : null;
  if (!Array.isArray(value)) {
    return errorResponse(idOf(value), ErrorCode.InvalidRequest, `mcp-proxy: invalid message: ${why}`);
  }
  const batch = "mcp-proxy: batches are not relayed; send each message on a line of its own";
  if (value.length === 0) {
    return errorResponse(null, ErrorCode.InvalidRequest, `${batch} (this one is empty)`);
  }
  const answers = value
    .filter((item) => typeof item !== "object" || item === null || "id" in item)
    .map((item) => errorResponse(idOf(item), ErrorCode.InvalidRequest, batch));
  return answers.length === 0 ? undefined : answers;
}

/**
 * The JSON `text` parsed with every number, and every `"id"` string, that JSON would write otherwise (`1e3`,
 * `"\u00e9"`) as an {@link ExactInteger} of its spelling; `fallback` when it nests too deep for a reviver.
 */
function withIdsAsWritten(text: string, fallback: unknown): unknown {
  try {
    return (JSON as unknown as JsonWithSource).parse(
      text,
      (key, value, context) =>
        (typeof value === "number" && String(value) !== context.source) ||
          (key === "id" && typeof value === "string" && JSON.stringify(value) !== context.source)
          ? exactInteger(context.source)
          : value,
    );
  } catch {
    return fallback;
  }
}

/** Builds a result response to the request with `id`. */
export function resultResponse(id: RequestId, result: Record<string, unknown>): JsonRpcResponse {
  return { jsonrpc: "2.0", id, result };
}
