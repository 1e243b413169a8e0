/**
 * The benchmark's stdio MCP server: raw JSON-RPC, one message per line, answers as
 * {@link answerMessage} says (`echo`, `blob`), the id first (`{"jsonrpc":"2.0","id":N,"result":…}`, as the
 * Python SDK writes), or with `--id-last` last (`{"result":…,"jsonrpc":"2.0","id":N}`, as the TypeScript
 * SDK writes). Reads stdin linearly (each byte is looked at once, however
 * long the line) and writes each answer, newline included, with one write.
 *
 * Run: `deno run bench/echo_stdio_server.ts [--id-last]` (it needs no permissions).
 *
 * @module
 */

import { answerMessage, answerShape } from "./echo_handler.ts";

answerShape.idLast = Deno.args.includes("--id-last");

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function write(message: unknown): void {
  const bytes = encoder.encode(JSON.stringify(message) + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

function handleLine(line: Uint8Array): void {
  if (line.length === 0) return;
  let message: unknown;
  try {
    message = JSON.parse(decoder.decode(line));
  } catch {
    write({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } });
    return;
  }
  if (Array.isArray(message)) {
    const answers = message.map(answerMessage).filter((answer) => answer !== undefined);
    if (answers.length > 0) write(answers);
    return;
  }
  const answer = answerMessage(message);
  if (answer !== undefined) write(answer);
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const line = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    line.set(part, offset);
    offset += part.length;
  }
  return line;
}

let parts: Uint8Array[] = [];
let partBytes = 0;
for await (const chunk of Deno.stdin.readable) {
  let start = 0;
  let end = chunk.indexOf(NEWLINE);
  while (end !== -1) {
    const piece = chunk.subarray(start, end);
    if (parts.length === 0) {
      handleLine(piece);
    } else {
      parts.push(piece);
      handleLine(concat(parts, partBytes + piece.length));
      parts = [];
      partBytes = 0;
    }
    start = end + 1;
    end = chunk.indexOf(NEWLINE, start);
  }
  if (start < chunk.length) {
    parts.push(chunk.subarray(start));
    partBytes += chunk.length - start;
  }
}
