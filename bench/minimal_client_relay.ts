/**
 * The client-mode half of `bench/floor.ts`: the least a stdio → Streamable HTTP relay can do. Each stdin
 * line is POSTed as it is to the URL given as the only argument (with the session id the first answer
 * brought), and each answer body is written to stdout as one line. No checks, no validation, no errors
 * handled: a measuring stick, not a relay to use.
 *
 * Run: `deno run --allow-net bench/minimal_client_relay.ts http://127.0.0.1:PORT/mcp`.
 *
 * @module
 */

const url = Deno.args[0];
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const stdout = Deno.stdout.writable.getWriter();
let sessionId: string | undefined;

async function relay(line: string): Promise<void> {
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
  };
  if (sessionId !== undefined) headers["Mcp-Session-Id"] = sessionId;
  const response = await fetch(url, { method: "POST", headers, body: line });
  sessionId ??= response.headers.get("mcp-session-id") ?? undefined;
  const text = await response.text();
  if (text !== "") await stdout.write(encoder.encode(text + "\n"));
}

let buffer = "";
for await (const chunk of Deno.stdin.readable) {
  buffer += decoder.decode(chunk, { stream: true });
  for (let newline = buffer.indexOf("\n"); newline !== -1; newline = buffer.indexOf("\n")) {
    const line = buffer.slice(0, newline);
    buffer = buffer.slice(newline + 1);
    if (line !== "") relay(line);
  }
}
