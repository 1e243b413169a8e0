/**
 * What mcp-proxy cannot get under on this machine, measured the way `bench/main.ts` measures it:
 *
 * - server mode: the added p50 of a minimal HTTP → stdio relay (`bench/minimal_server_relay.ts`:
 *   `Deno.serve`, the request's id swapped for its own and its text written to the echo server's stdin,
 *   the answer returned as the body, streamed when it is long; no checks, no sessions) on `/mcp` over the
 *   echo server driven directly over stdio, and its p50 ratio for a 1 MiB answer (`deno task bench
 *   --floor` measures it on every server-mode case);
 * - client mode: a minimal stdio → HTTP relay (`bench/minimal_client_relay.ts`: each stdin line POSTed,
 *   each answer body written to stdout), once with `fetch` and once with a bare HTTP/1.1 exchange,
 *   against the HTTP echo server driven directly with `fetch`: p50 ratio, and throughput ratio with 16
 *   requests in flight.
 *
 * mcp-proxy's figures (`deno task bench --cases a,b`) over these floors are what its own work costs.
 *
 * Run: `deno run -A bench/floor.ts [--calls N] [--rounds N]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { initialize, StdioChannel, StreamableHttpChannel } from "./mcp_channels.ts";
import {
  freePort,
  spawnTracked,
  startEchoHttpServer,
  stopAll,
  stopTracked,
  waitForPort,
} from "./processes.ts";
import { concurrentThroughput, largeLatencies, sequentialLatencies } from "./workloads.ts";

const ECHO_STDIO = new URL("./echo_stdio_server.ts", import.meta.url).pathname;
const CLIENT_RELAY = new URL("./minimal_client_relay.ts", import.meta.url).pathname;
const SERVER_RELAY = new URL("./minimal_server_relay.ts", import.meta.url).pathname;
const encoder = new TextEncoder();

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

function write(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

async function serverModeFloor(calls: number, rounds: number): Promise<void> {
  const direct = new StdioChannel("direct stdio", echoServer());
  await initialize(direct);
  const port = freePort();
  const server = spawnTracked("minimal HTTP relay", Deno.execPath(), [
    "run",
    "--quiet",
    "--no-config",
    "-A",
    SERVER_RELAY,
    `${port}`,
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-config",
    ECHO_STDIO,
  ]);
  await waitForPort(port, server);
  const relay = new StreamableHttpChannel("minimal relay", `http://127.0.0.1:${port}/mcp`);
  await initialize(relay);
  const added: number[] = [];
  const large: number[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      const directP50 = median(await sequentialLatencies(direct, calls, 200));
      const relayP50 = median(await sequentialLatencies(relay, calls, 200));
      added.push(relayP50 - directP50);
      const directLarge = median(await largeLatencies(direct, "blob", 50, 5));
      const relayLarge = median(await largeLatencies(relay, "blob", 50, 5));
      large.push(relayLarge / directLarge);
      write(
        `server mode, round ${round}: direct stdio p50 ${directP50.toFixed(3)} ms, minimal HTTP relay p50 ` +
          `${relayP50.toFixed(3)} ms, added ${(relayP50 - directP50).toFixed(3)} ms; 1 MiB answer p50 ` +
          `${directLarge.toFixed(3)} ms direct, ${relayLarge.toFixed(3)} ms relayed (${
            (relayLarge / directLarge).toFixed(2)
          }×)`,
      );
    }
    write(
      `server-mode floor (median of ${rounds}): added p50 ${median(added).toFixed(3)} ms; 1 MiB answer p50 ` +
        `${median(large).toFixed(2)}× direct stdio`,
    );
  } finally {
    await relay.close();
    await direct.close();
    await stopTracked(server);
  }
}

/** The client-mode floor of one minimal relay (`http1`: its bare HTTP/1.1 exchange instead of `fetch`). */
async function clientModeFloor(url: string, calls: number, rounds: number, http1: boolean): Promise<void> {
  const name = http1 ? "minimal HTTP/1.1 relay" : "minimal fetch relay";
  const direct = new StreamableHttpChannel("direct HTTP", url);
  await initialize(direct);
  const relay = new StdioChannel(
    name,
    spawnTracked(name, Deno.execPath(), [
      "run",
      "--quiet",
      "--no-config",
      "--allow-net",
      CLIENT_RELAY,
      ...(http1 ? ["--http1"] : []),
      url,
    ], {
      stdin: "piped",
      stdout: "piped",
    }),
  );
  await initialize(relay);
  const latency: number[] = [];
  const throughput: number[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      const directP50 = median(await sequentialLatencies(direct, calls, 200));
      const relayP50 = median(await sequentialLatencies(relay, calls, 200));
      const directRate = (await concurrentThroughput(Array(16).fill(direct), 200, 20, 1)).callsPerSecond;
      const relayRate = (await concurrentThroughput(Array(16).fill(relay), 200, 20, 1)).callsPerSecond;
      latency.push(relayP50 / directP50);
      throughput.push(relayRate / directRate);
      write(
        `client mode, ${name}, round ${round}: p50 direct HTTP ${directP50.toFixed(3)} ms, relay ` +
          `${relayP50.toFixed(3)} ms (${(relayP50 / directP50).toFixed(2)}×); 16 in flight: direct ` +
          `${directRate.toFixed(0)} calls/s, relay ${relayRate.toFixed(0)} (${
            (relayRate / directRate).toFixed(2)
          }×)`,
      );
    }
    write(
      `client-mode floor, ${name} (median of ${rounds}): p50 ${median(latency).toFixed(2)}× direct HTTP, ` +
        `throughput ${median(throughput).toFixed(2)}× direct HTTP`,
    );
  } finally {
    await relay.close();
    await direct.close();
  }
}

const { values } = parseArgs({
  args: Deno.args,
  options: { calls: { type: "string" }, rounds: { type: "string" } },
});
const calls = Number(values.calls ?? 2000);
const rounds = Number(values.rounds ?? 3);
try {
  await serverModeFloor(calls, rounds);
  const { url } = await startEchoHttpServer();
  await clientModeFloor(url, calls, rounds, false);
  await clientModeFloor(url, calls, rounds, true);
} finally {
  await stopAll();
}
