import assert from "node:assert/strict";
import { includesLineBreak, indexOfLineBreak, searchableText } from "../src/line_break_search.ts";

const encoder = new TextEncoder();

/** Every offset `indexOfLineBreak` gives for `bytes` from each `from`, against `Uint8Array.indexOf`. */
function assertSameAsIndexOf(bytes: Uint8Array, what: string): void {
  const text = searchableText(bytes);
  for (const [lineBreak, byte] of [["\n", 0x0a], ["\r", 0x0d]] as const) {
    for (let from = 0; from <= bytes.length; from += Math.max(1, Math.floor(bytes.length / 97))) {
      if (from === 0) {
        assert.equal(
          includesLineBreak(bytes, lineBreak),
          bytes.includes(byte),
          `${what}: has ${JSON.stringify(lineBreak)}`,
        );
      }
      assert.equal(
        indexOfLineBreak(bytes, text, lineBreak, from),
        bytes.indexOf(byte, from),
        `${what}: ${JSON.stringify(lineBreak)} from ${from}`,
      );
    }
  }
}

Deno.test("searchableText: only bytes enough for it to pay have one", () => {
  assert.equal(searchableText(new Uint8Array(100)), undefined);
  assert.equal(searchableText(encoder.encode("a".repeat(8192))), "a".repeat(8192));
});

Deno.test("indexOfLineBreak: ASCII text, where the text's offsets are the bytes'", () => {
  const bytes = encoder.encode(`${'{"a":1}\n'.repeat(900)}\r\n${"b".repeat(5000)}\r`);
  assert.equal(searchableText(bytes)?.length, bytes.length);
  assertSameAsIndexOf(bytes, "ascii");
  assertSameAsIndexOf(bytes.subarray(0, 1000), "short, no text");
});

Deno.test("indexOfLineBreak: text shorter than its bytes (other characters, a BOM, bytes not UTF-8)", () => {
  const cases: [string, Uint8Array][] = [
    ["UTF-8", encoder.encode(`${"é漢😀".repeat(900)}\n${"x".repeat(3000)}\r\n`)],
    ["a BOM first", encoder.encode(`\ufeff${"x".repeat(5000)}\n`)],
    ["no line break", encoder.encode("é".repeat(5000))],
  ];
  // Bytes that are no UTF-8 right before and after the line breaks: each still decodes to itself.
  const broken = new Uint8Array(6000).fill(0x41);
  for (
    const [at, byte] of [[100, 0xe6], [101, 0x0a], [102, 0x9f], [2000, 0xf0], [2001, 0x9f], [2002, 0x0d]]
  ) {
    broken[at] = byte;
  }
  cases.push(["not UTF-8", broken], [
    "cut inside a character",
    encoder.encode(`${"x\n".repeat(3000)}漢`).subarray(0, 6002),
  ]);
  for (const [what, bytes] of cases) {
    assert.ok(searchableText(bytes)!.length < bytes.length, what);
    assertSameAsIndexOf(bytes, what);
  }
  // A lone byte that is no UTF-8 becomes one character: the offsets still agree.
  const lone = encoder.encode(`${"x\n".repeat(3000)}漢`).subarray(0, 6001);
  assert.equal(searchableText(lone)!.length, lone.length);
  assertSameAsIndexOf(lone, "a lone byte that is no UTF-8");
});

Deno.test("indexOfLineBreak: random bytes, line breaks among them", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 40; round++) {
    const bytes = new Uint8Array(4096 + Math.floor(random() * 4096));
    const ascii = round % 2 === 0;
    for (let i = 0; i < bytes.length; i++) {
      const pick = random();
      bytes[i] = pick < 0.002
        ? 0x0a
        : pick < 0.004
        ? 0x0d
        : ascii
        ? 0x20 + Math.floor(random() * 95)
        : Math.floor(random() * 256);
    }
    assertSameAsIndexOf(bytes, `round ${round}`);
  }
});
