/**
 * Finding line breaks in long runs of bytes by way of their text. Every byte a child writes is looked at
 * for its newline, and every byte of a large answer bound for an SSE stream for a carriage return too:
 * on a megabyte answer these searches were most of the proxy's own work. `Uint8Array.prototype.indexOf`
 * compares a byte at a time (about 18 µs for 64 KiB on a 2-core machine); decoding the bytes and
 * searching the text, which V8 does with `memchr`, takes 5 µs in a microbenchmark and 7–15 µs on the
 * chunks of a child's stdout. (Reading the bytes as 32-bit words in JavaScript does not help: once any
 * buffer has been detached, as every read of a byte stream does, V8 checks each access, and the word
 * loop is no faster than `indexOf`.)
 *
 * The text's offsets are the bytes' when each byte became one character, as ASCII does. Where not, the
 * text still says whether a line break is there at all: in UTF-8 a line break is a byte of its own,
 * never part of another character, and it decodes to itself even next to bytes that are not UTF-8.
 *
 * @module
 */

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** From this many bytes on, decoding and searching the text is faster than comparing each byte. */
const TEXT_SEARCH_MIN_BYTES = 4096;

const BYTE_OF = { "\n": 0x0a, "\r": 0x0d } as const;

/** A line break searched for. */
export type LineBreak = keyof typeof BYTE_OF;

/**
 * The text of `bytes`, for {@link indexOfLineBreak}, when they are enough for it to pay (each search of
 * them can then use it); else undefined.
 */
export function searchableText(bytes: Uint8Array): string | undefined {
  return bytes.length >= TEXT_SEARCH_MIN_BYTES ? decoder.decode(bytes) : undefined;
}

/**
 * `bytes.indexOf(lineBreak, from)`, by way of `text`, their {@link searchableText}, where they have one.
 *
 * @example
 * ```ts
 * const bytes = new TextEncoder().encode('{"a":1}\n'.repeat(1000));
 * indexOfLineBreak(bytes, searchableText(bytes), "\n", 8); // 15
 * ```
 */
export function indexOfLineBreak(
  bytes: Uint8Array,
  text: string | undefined,
  lineBreak: LineBreak,
  from = 0,
): number {
  if (text === undefined) return bytes.indexOf(BYTE_OF[lineBreak], from);
  if (text.length === bytes.length) return text.indexOf(lineBreak, from);
  return text.includes(lineBreak) ? bytes.indexOf(BYTE_OF[lineBreak], from) : -1;
}

/** Whether `bytes` hold `lineBreak` anywhere: by way of their text when they are many. */
export function includesLineBreak(bytes: Uint8Array, lineBreak: LineBreak): boolean {
  const text = searchableText(bytes);
  return text === undefined ? bytes.includes(BYTE_OF[lineBreak]) : text.includes(lineBreak);
}
