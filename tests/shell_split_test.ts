import assert from "node:assert/strict";
import { joinShellWords, splitShellWords } from "../src/shell_split.ts";

function splitsTo(text: string, expected: string[]): void {
  assert.deepEqual(splitShellWords(text), expected, `splitting ${JSON.stringify(text)}`);
}

Deno.test("splitShellWords: whitespace separates words, runs of it count once", () => {
  splitsTo("uvx mcp-server-fetch", ["uvx", "mcp-server-fetch"]);
  splitsTo("  a \t b\r\nc  ", ["a", "b", "c"]);
  splitsTo("a\n\nb", ["a", "b"]);
});

Deno.test("splitShellWords: empty or blank text gives no words", () => {
  splitsTo("", []);
  splitsTo("   \t\n ", []);
});

Deno.test("splitShellWords: single quotes keep everything literal", () => {
  splitsTo(`'a b'`, ["a b"]);
  splitsTo(`'a\\nb'`, ["a\\nb"]);
  splitsTo(`'say "hi"'`, [`say "hi"`]);
  splitsTo(`'$HOME \`x\` \\'`, ["$HOME `x` \\"]);
  splitsTo("'line\nbreak'", ["line\nbreak"]);
});

Deno.test("splitShellWords: double quotes group words and keep single quotes", () => {
  splitsTo(`"a b"  c`, ["a b", "c"]);
  splitsTo(`"it's"`, ["it's"]);
  splitsTo(`"$HOME"`, ["$HOME"]);
});

Deno.test('splitShellWords: inside double quotes a backslash escapes \\ " $ ` only', () => {
  splitsTo(`"a\\\\b"`, ["a\\b"]);
  splitsTo(`"a\\"b"`, [`a"b`]);
  splitsTo(`"\\$HOME"`, ["$HOME"]);
  splitsTo('"\\`cmd\\`"', ["`cmd`"]);
  splitsTo(`"a\\nb"`, ["a\\nb"]);
  splitsTo(`"C:\\Users\\me"`, ["C:\\Users\\me"]);
  splitsTo(`"\\'"`, ["\\'"]);
});

Deno.test("splitShellWords: backslash-newline inside double quotes is removed", () => {
  splitsTo('"a\\\nb"', ["ab"]);
});

Deno.test("splitShellWords: outside quotes a backslash makes the next character literal", () => {
  splitsTo("a\\ b", ["a b"]);
  splitsTo("\\'x\\'", ["'x'"]);
  splitsTo('\\"', ['"']);
  splitsTo("\\\\", ["\\"]);
  splitsTo("\\n", ["n"]);
  splitsTo("a\\\tb", ["a\tb"]);
});

Deno.test("splitShellWords: backslash-newline outside quotes is a line continuation", () => {
  splitsTo("a\\\nb", ["ab"]);
  splitsTo("uvx srv \\\n  --flag", ["uvx", "srv", "--flag"]);
  splitsTo("\\\n", []);
});

Deno.test("splitShellWords: quoted parts join the surrounding word", () => {
  splitsTo(`a'b c'd`, ["ab cd"]);
  splitsTo(`--name="My Server"`, ["--name=My Server"]);
  splitsTo(`'a'"b"c`, ["abc"]);
});

Deno.test("splitShellWords: empty quotes make an empty word, but not inside a word", () => {
  splitsTo("''", [""]);
  splitsTo('""', [""]);
  splitsTo(`a '' b`, ["a", "", "b"]);
  splitsTo(`a "" ''`, ["a", "", ""]);
  splitsTo("a''", ["a"]);
  splitsTo("''a", ["a"]);
});

Deno.test("splitShellWords: no comments, globs or expansion", () => {
  splitsTo("srv # not a comment *.txt ~ $X", ["srv", "#", "not", "a", "comment", "*.txt", "~", "$X"]);
  splitsTo("a;b | c && d", ["a;b", "|", "c", "&&", "d"]);
});

Deno.test("splitShellWords: non-ASCII text passes through", () => {
  splitsTo("srv 'héllo wörld' 😀", ["srv", "héllo wörld", "😀"]);
  splitsTo("a\u00a0b", ["a\u00a0b"]);
});

Deno.test("splitShellWords: an unterminated single quote throws, naming the problem and where, not the text", () => {
  assert.throws(() => splitShellWords("uvx --token s3cr3t 'srv"), (error: Error) => {
    assert.match(error.message, /^No closing quotation: the single quote at position 19 is never closed$/);
    return true;
  });
});

Deno.test("splitShellWords: an unterminated double quote throws", () => {
  assert.throws(
    () => splitShellWords(`a "b c`),
    /^Error: No closing quotation: the double quote at position 2 is never closed$/,
  );
  assert.throws(() => splitShellWords(`"abc\\"`), /No closing quotation/);
  assert.throws(() => splitShellWords(`"abc\\`), /No closing quotation/);
});

Deno.test("splitShellWords: a quote character inside the other quotes does not need closing", () => {
  splitsTo(`"'"`, ["'"]);
  splitsTo(`'"'`, ['"']);
});

Deno.test("splitShellWords: a trailing lone backslash throws", () => {
  assert.throws(
    () => splitShellWords("srv \\"),
    /^Error: No escaped character: the text ends with a lone backslash$/,
  );
});

Deno.test("joinShellWords: splitShellWords reads its text back into the same words", () => {
  const words = ["sh", "-c", "echo boom >&2; exit 0", "", "it's", 'a "b" \\c', "tab\there", "ünï", "--x=1,2"];
  const joined = joinShellWords(words);
  assert.equal(joined.split(" ").slice(0, 2).join(" "), "sh -c", "plain words as they are");
  assert.deepEqual(splitShellWords(joined), words);
});
