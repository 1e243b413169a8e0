/**
 * What server mode cannot get under on this machine: the added latency of a minimal HTTP → stdio relay
 * (`Deno.serve`, the request text written to the echo server's stdin, the answer line returned as the
 * body; no checks, no routing, no id mapping), against the echo server driven directly over stdio, in
 * the same run. mcp-proxy's added p50 (`deno task bench --cases a`) minus this floor is what the proxy's
 * own work costs.
 *
 * Run: `deno run -A bench/floor.ts [--calls N] [--rounds N]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initialize, StdioChannel, StreamableHttpChannel } from "./mcp_channels.ts";
import { freePort, spawnTracked, stopAll } from "./processes.ts";
import { sequentialLatencies } from "./workloads.ts";

const ECHO_STDIO = new URL("./echo_stdio_server.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function echoServer() {
  return spawnTracked("echo stdio server", Deno.execPath(), ["run", "--quiet", "--no-config", ECHO_STDIO], {
    stdin: "piped",
    stdout: "piped",
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Serves `POST /mcp` by writing the body to the child and answering with the line that has its id. */
function minimalRelay(port: number): Deno.HttpServer {
  const child = echoServer();
  const writer = child.child.stdin.getWriter();
  const waiting = new Map<unknown, (line: string) => void>();
  (async () => {
    let buffer = "";
    for await (const chunk of child.child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let newline = buffer.indexOf("\n"); newline !== -1; newline = buffer.indexOf("\n")) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line === "") continue;
        const id = JSON.parse(line).id;
        waiting.get(id)?.(line);
        waiting.delete(id);
      }
    }
  })();
  return Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (request) => {
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
}

const { values } = parseArgs({
  args: Deno.args,
  options: { calls: { type: "string" }, rounds: { type: "string" } },
});
const calls = Number(values.calls ?? 2000);
const rounds = Number(values.rounds ?? 3);

const direct = new StdioChannel("direct stdio", echoServer());
await initialize(direct);
const port = freePort();
const server = minimalRelay(port);
const relay = new StreamableHttpChannel("minimal relay", `http://127.0.0.1:${port}/mcp`);
await initialize(relay);
const added: number[] = [];
try {
  for (let round = 1; round <= rounds; round++) {
    const directP50 = median(await sequentialLatencies(direct, calls, 200));
    const relayP50 = median(await sequentialLatencies(relay, calls, 200));
    added.push(relayP50 - directP50);
    Deno.stdout.writeSync(encoder.encode(
      `round ${round}: direct stdio p50 ${directP50.toFixed(3)} ms, minimal HTTP relay p50 ` +
        `${relayP50.toFixed(3)} ms, added ${(relayP50 - directP50).toFixed(3)} ms\n`,
    ));
  }
  Deno.stdout.writeSync(
    encoder.encode(`floor (median of ${rounds} rounds): added ${median(added).toFixed(3)} ms\n`),
  );
} finally {
  await relay.close();
  await direct.close();
  await server.shutdown();
  await stopAll();
}
