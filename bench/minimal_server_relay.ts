/**
 * The server-mode half of `bench/floor.ts`: the least an HTTP → stdio relay can do. `POST /mcp` writes
 * the request text to the child's stdin and answers with the line that carries its id; a POST without an
 * id is answered 202. No checks, no routing, no id mapping, no sessions: a measuring stick, not a relay
 * to use.
 *
 * Run: `deno run -A bench/minimal_server_relay.ts PORT COMMAND [ARGS…]`.
 *
 * @module
 */

const [port, command, ...args] = Deno.args;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const child = new Deno.Command(command, { args, stdin: "piped", stdout: "piped" }).spawn();
const writer = child.stdin.getWriter();
const waiting = new Map<unknown, (line: string) => void>();

(async () => {
  // Only the new text is searched for a newline: a long line costs time in proportion to its length.
  let buffer = "";
  for await (const chunk of child.stdout) {
    let from = buffer.length;
    buffer += decoder.decode(chunk, { stream: true });
    for (let newline = buffer.indexOf("\n", from); newline !== -1; newline = buffer.indexOf("\n")) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      from = 0;
      if (line === "") continue;
      const id = JSON.parse(line).id;
      waiting.get(id)?.(line);
      waiting.delete(id);
    }
  }
})();

Deno.serve({ hostname: "127.0.0.1", port: Number(port), onListen() {} }, async (request) => {
  if (request.method !== "POST") return new Response(null, { status: 200 });
  const text = await request.text();
  const message = JSON.parse(text);
  if (message.id === undefined) {
    writer.write(encoder.encode(text + "\n"));
    return new Response(null, { status: 202 });
  }
  const answer = new Promise<string>((resolve) => waiting.set(message.id, resolve));
  writer.write(encoder.encode(text + "\n"));
  return new Response(await answer, {
    headers: { "Content-Type": "application/json", "Mcp-Session-Id": "floor" },
  });
});
