/**
 * Splits a command string into words the way a POSIX shell does, without running a shell: no expansion,
 * no globbing, no pipes. Used for `--named-server NAME COMMAND_STRING`; and back, to show a command.
 *
 * @module
 */

/** Characters that separate words outside quotes, as in Python's `shlex`. */
const WORD_SEPARATORS = " \t\r\n";

/** Characters a backslash escapes inside double quotes (POSIX); before anything else it stays literal. */
const ESCAPABLE_IN_DOUBLE_QUOTES = '\\"$`\n';

/**
 * The text is not quoted in errors: a command string may hold a secret, and the error goes to a log (found
 * by review); where it went wrong is told by position.
 */
function unterminatedQuote(quote: string, position: number): Error {
  const kind = quote === "'" ? "single" : "double";
  return new Error(`No closing quotation: the ${kind} quote at position ${position} is never closed`);
}

/**
 * Splits `text` into words like Python's `shlex.split(text)` (POSIX rules, no comments):
 *
 * - spaces, tabs and line breaks separate words;
 * - inside single quotes every character is literal;
 * - inside double quotes a backslash escapes only `\`, `"`, `$`, `` ` `` and a line break (which it
 *   removes, like a shell's line continuation); before any other character it stays literal;
 * - outside quotes a backslash makes the next character literal, and a backslash-newline is removed;
 * - quotes may join parts of one word (`a'b c'd` is one word), and `''` or `""` alone is an empty word.
 *
 * Unlike `shlex`, `\$` and `` \` `` inside double quotes lose their backslash and backslash-newline is a
 * line continuation, as in a real shell.
 *
 * @param text The command string, e.g. `uvx mcp-server-fetch --user-agent "My Bot"`.
 * @returns The words, e.g. `["uvx", "mcp-server-fetch", "--user-agent", "My Bot"]`.
 * @throws {Error} `No closing quotation: …` for an unterminated quote, `No escaped character: …`
 *   when the text ends with a lone backslash.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitShellWords } from "./shell_split.ts";
 *
 * assert.deepEqual(splitShellWords(`uvx srv --name "My Server" ''`), ["uvx", "srv", "--name", "My Server", ""]);
 * ```
 */
export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  let word = "";
  // A word can exist while still empty: `''` is a word, whitespace is not.
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (WORD_SEPARATORS.includes(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (ch === "\\") {
      if (i + 1 >= text.length) {
        throw new Error(`No escaped character: the text ends with a lone backslash`);
      }
      const next = text[i + 1];
      if (next !== "\n") {
        word += next;
        inWord = true;
      }
      i += 2;
    } else if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) throw unterminatedQuote(ch, i);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      const start = i;
      i++;
      for (;;) {
        if (i >= text.length) throw unterminatedQuote(ch, start);
        const inner = text[i];
        if (inner === '"') break;
        if (inner === "\\" && i + 1 < text.length && ESCAPABLE_IN_DOUBLE_QUOTES.includes(text[i + 1])) {
          if (text[i + 1] !== "\n") word += text[i + 1];
          i += 2;
        } else {
          word += inner;
          i++;
        }
      }
      inWord = true;
      i++;
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * Joins `words` into one command string that {@link splitShellWords} splits back into them: a word of
 * plain characters as it is, any other in single quotes. Used to show a command.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { joinShellWords } from "./shell_split.ts";
 *
 * assert.equal(joinShellWords(["sh", "-c", "echo it's; exit 0"]), `sh -c 'echo it'\\''s; exit 0'`);
 * ```
 */
export function joinShellWords(words: readonly string[]): string {
  return words.map((word) => PLAIN_WORD.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`).join(" ");
}

/** A word no shell reads otherwise than as it is. */
const PLAIN_WORD = /^[\w@%+=:,./-]+$/;
