/**
 * Members of a JSON text found and replaced in the text itself, without parsing it into values and
 * serializing it again: what the proxy rewrites in a message (an id, a progress token, a cancelled
 * request's id) changes, and every other byte stays as it was written. Serializing anew would round
 * integers beyond 2^53, turn `1.0` into `1` and `1e-400` into `0`, wherever they stand in the message.
 *
 * @module
 */

/** Where a value stands in a JSON text: from `start`, `length` characters. */
export interface TextSpan {
  start: number;
  length: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/** The index of the first character at or after `at` that is not JSON white space. */
export function skipSpace(json: string, at: number): number {
  while (at < json.length && isSpace(json.charCodeAt(at))) at++;
  return at;
}

/** The index just past the string whose opening quote is at `at`; -1 when it does not end. */
function stringEnd(json: string, at: number): number {
  for (let quote = json.indexOf('"', at + 1); quote !== -1; quote = json.indexOf('"', quote + 1)) {
    let backslashes = 0;
    while (json.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
  }
  return -1;
}

/** The index just past the value that starts at `at`; -1 when the text breaks off or is not JSON. */
function valueEnd(json: string, at: number): number {
  const first = json.charCodeAt(at);
  if (first === QUOTE) return stringEnd(json, at);
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    // A number, true, false or null: up to the next delimiter.
    let end = at;
    while (end < json.length) {
      const code = json.charCodeAt(end);
      if (code === COMMA || code === CLOSE_BRACE || code === CLOSE_BRACKET || isSpace(code)) break;
      end++;
    }
    return end === at ? -1 : end;
  }
  let depth = 0;
  for (let i = at; i < json.length; i++) {
    const code = json.charCodeAt(i);
    if (code === QUOTE) {
      const end = stringEnd(json, i);
      if (end === -1) return -1;
      i = end - 1;
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) depth++;
    else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

/** A member name as JSON reads it: escapes undone. */
function memberName(json: string, start: number, end: number): string | undefined {
  const raw = json.slice(start + 1, end - 1);
  if (!raw.includes("\\")) return raw;
  try {
    return JSON.parse(json.slice(start, end)) as string;
  } catch {
    return undefined;
  }
}

/**
 * Calls `visit` with the name (as JSON reads it, escapes undone) and the value's place of each member of
 * the object that starts at `at` (at its `{`), in order, while it returns true; returns false when the text
 * is not an object there or breaks off, or `visit` returned false.
 */
function eachMember(
  json: string,
  at: number,
  visit: (name: string, start: number, end: number) => boolean,
): boolean {
  if (json.charCodeAt(at) !== OPEN_BRACE) return false;
  let i = skipSpace(json, at + 1);
  if (json.charCodeAt(i) === CLOSE_BRACE) return true;
  while (i < json.length) {
    if (json.charCodeAt(i) !== QUOTE) return false;
    const nameEnd = stringEnd(json, i);
    if (nameEnd === -1) return false;
    const name = memberName(json, i, nameEnd);
    if (name === undefined) return false;
    i = skipSpace(json, nameEnd);
    if (json.charCodeAt(i) !== COLON) return false;
    const start = skipSpace(json, i + 1);
    const end = valueEnd(json, start);
    if (end === -1 || !visit(name, start, end)) return false;
    i = skipSpace(json, end);
    const next = json.charCodeAt(i);
    if (next === CLOSE_BRACE) return true;
    if (next !== COMMA) return false;
    i = skipSpace(json, i + 1);
  }
  return false;
}

/**
 * Where the value of the member `name` stands in the object that starts at `at` (at its `{`); null when
 * the object has no such member; undefined when the text is not an object there, breaks off, or names the
 * member twice (parsers differ on which one counts: the caller must not guess).
 */
function memberIn(json: string, at: number, name: string): TextSpan | null | undefined {
  let found: TextSpan | null = null;
  const read = eachMember(json, at, (key, start, end) => {
    if (key !== name) return true;
    if (found !== null) return false;
    found = { start, length: end - start };
    return true;
  });
  return read ? found : undefined;
}

/**
 * Where the value at `path` (member names, from the top-level object down) stands in `json`; null when
 * a member on the path is missing; undefined when the text cannot be read one way only (see
 * {@link memberIn}) or a value on the way is not an object. Every object on the path is read to its end,
 * so that a name given twice is noticed.
 *
 * @example
 * ```ts
 * memberSpan('{"params":{"_meta":{"progressToken":7}}}', ["params", "_meta", "progressToken"]);
 * // { start: 37, length: 1 }
 * ```
 */
export function memberSpan(json: string, path: readonly string[]): TextSpan | null | undefined {
  let at = skipSpace(json, 0);
  let span: TextSpan | null | undefined;
  for (const name of path) {
    span = memberIn(json, at, name);
    if (span == null) return span;
    at = span.start;
  }
  return span;
}

/**
 * `json` with the value at each span replaced by the JSON text given with it; the spans must not overlap.
 */
export function withSpansReplaced(json: string, replacements: readonly [TextSpan, string][]): string {
  const sorted = [...replacements].sort((a, b) => a[0].start - b[0].start);
  let text = "";
  let from = 0;
  for (const [span, value] of sorted) {
    text += json.slice(from, span.start) + value;
    from = span.start + span.length;
  }
  return text + json.slice(from);
}

/**
 * `json` with the value at `path` replaced by `value` serialized, the rest as it was; undefined when the
 * member cannot be found one way only ({@link memberSpan}).
 */
export function withMemberReplaced(
  json: string,
  path: readonly string[],
  value: unknown,
): string | undefined {
  const span = memberSpan(json, path);
  return span == null ? undefined : withSpansReplaced(json, [[span, JSON.stringify(value)]]);
}

/**
 * The texts of the items of the JSON array `json` (a JSON-RPC batch), each as it was written; undefined
 * when `json` is not an array or breaks off.
 */
export function arrayItems(json: string): string[] | undefined {
  let i = skipSpace(json, 0);
  if (json.charCodeAt(i) !== OPEN_BRACKET) return undefined;
  const items: string[] = [];
  i = skipSpace(json, i + 1);
  if (json.charCodeAt(i) === CLOSE_BRACKET) return items;
  while (i < json.length) {
    const end = valueEnd(json, i);
    if (end === -1) return undefined;
    items.push(json.slice(i, end));
    i = skipSpace(json, end);
    const next = json.charCodeAt(i);
    if (next === CLOSE_BRACKET) return items;
    if (next !== COMMA) return undefined;
    i = skipSpace(json, i + 1);
  }
  return undefined;
}

/**
 * Whether the object at `path` in `json` names each member once (as JSON reads names, escapes undone):
 * true when it does, or when there is no object there; false when a name repeats, on the way too, or the
 * text cannot be read.
 */
export function namesEachMemberOnce(json: string, path: readonly string[]): boolean {
  let at = skipSpace(json, 0);
  if (path.length > 0) {
    const span = memberSpan(json, path);
    if (span === undefined) return false;
    if (span === null) return true;
    at = span.start;
    if (json.charCodeAt(at) !== OPEN_BRACE) return true;
  }
  const names = new Set<string>();
  return eachMember(json, at, (name) => !names.has(name) && names.add(name) !== undefined);
}
