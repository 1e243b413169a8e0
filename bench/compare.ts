/**
 * Paired comparison of two mcp-proxy checkouts: both run at once, and their calls alternate (one on A,
 * one on B), so that both see the same machine at the same moment. On a machine whose speed drifts from
 * run to run, this shows a change of a few µs that separate runs of `bench/main.ts` cannot.
 *
 * Run: `deno run -A bench/compare.ts DIR_A DIR_B [--calls N] [--rounds N] [--large | --large-echo] [--client]
 * [--event-stream] [--id-last] [--concurrent] [--v8-flags-a=F] [--v8-flags-b=F]`
 *
 * - Each DIR holds a main.ts; DIR_A and DIR_B may be the same, to compare V8 flags (by default each runs
 *   with the flags mcp-proxy ships with). F is comma-separated and starts with `--`, so it takes the `=`.
 * - Server mode (the default): each side over its own echo server, on `/mcp` and then `/sse`. With
 *   `--client`: client mode, both sides in front of one HTTP echo server (with `--event-stream`, one that
 *   answers each POST with an SSE stream). `--id-last`: the stdio echo server writes the id of its answers
 *   last, as the TypeScript SDK does.
 * - `--large`: 1 MiB answers, as case (f), instead of 1 KiB calls; `--large-echo`: 1 MiB requests with
 *   1 MiB answers, as case (c).
 * - `--concurrent`: throughput as case (b), 16 sessions of 200 calls (client mode: 16 requests in flight
 *   on its one session), A and B in turns (alternating which goes first), instead of latency.
 * - `floor` in place of a DIR is the least a relay can do: `bench/minimal_server_relay.ts`, or with
 *   `--client` `bench/minimal_client_relay.ts --http1`. Against it, B−A is what mcp-proxy's own work
 *   costs.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { V8_FLAGS } from "../scripts/permissions.ts";
import {
  initialize,
  LegacySseChannel,
  type McpChannel,
  StdioChannel,
  StreamableHttpChannel,
} from "./mcp_channels.ts";
import {
  cpuMicros,
  freePort,
  spawnTracked,
  startEchoHttpServer,
  stopAll,
  type TrackedProcess,
  waitForPort,
} from "./processes.ts";
import {
  callBlob,
  callEcho,
  concurrentThroughput,
  LARGE_BYTES,
  largeText,
  percentile,
  smallText,
} from "./workloads.ts";

const ECHO_STDIO = new URL("./echo_stdio_server.ts", import.meta.url).pathname;
const SERVER_RELAY = new URL("./minimal_server_relay.ts", import.meta.url).pathname;
const CLIENT_RELAY = new URL("./minimal_client_relay.ts", import.meta.url).pathname;
const FLOOR = "floor";
const encoder = new TextEncoder();

interface Side {
  name: string;
  process: TrackedProcess;
  /** Server mode: the proxy's origin. */
  base?: string;
  /** Client mode: the proxy's stdio. */
  stdio?: StdioChannel;
}

async function start(dir: string, v8Flags: string): Promise<Side> {
  const port = freePort();
  const echo = [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-config",
    ECHO_STDIO,
    ...(values["id-last"] ? ["--id-last"] : []),
  ];
  const flags = v8Flags === "" ? [] : [`--v8-flags=${v8Flags}`];
  const process = spawnTracked(
    dir,
    Deno.execPath(),
    dir === FLOOR
      ? ["run", "-A", "--no-config", ...flags, SERVER_RELAY, `${port}`, ...echo]
      : ["run", "-A", ...flags, `${dir}/main.ts`, "--port", `${port}`, "--", ...echo],
  );
  await waitForPort(port, process);
  return { name: dir, process, base: `http://127.0.0.1:${port}` };
}

/** A client-mode side in front of the HTTP echo server at `url`. */
function startClient(dir: string, v8Flags: string, url: string): Side {
  const flags = v8Flags === "" ? [] : [`--v8-flags=${v8Flags}`];
  const process = spawnTracked(
    dir,
    Deno.execPath(),
    dir === FLOOR
      ? ["run", "-A", "--no-config", ...flags, CLIENT_RELAY, "--http1", url]
      : ["run", "-A", ...flags, `${dir}/main.ts`, url],
    { stdin: "piped", stdout: "piped" },
  );
  return { name: dir, process, stdio: new StdioChannel(dir, process) };
}

type Transport = "/mcp" | "/sse" | "client";

async function open(side: Side, transport: Transport): Promise<McpChannel> {
  const channel = transport === "client"
    ? side.stdio!
    : transport === "/mcp"
    ? new StreamableHttpChannel(side.name, `${side.base}/mcp`)
    : await LegacySseChannel.open(side.name, `${side.base}/sse`);
  await initialize(channel);
  return channel;
}

/** What one call is: a 1 KiB echo, a 1 MiB answer (case (f)), or a 1 MiB echo (case (c)). */
type CallSize = "small" | "large" | "large-echo";

/** One call, checked; its latency in ms. */
async function timed(channel: McpChannel, i: number, size: CallSize): Promise<number> {
  const start = performance.now();
  if (size === "large") await callBlob(channel, LARGE_BYTES);
  else await callEcho(channel, size === "large-echo" ? largeText(`l${i}`) : smallText(`s${i}`));
  return performance.now() - start;
}

/** Case (b) on both sides in turns: 16 sessions each, 200 calls per session and round. */
async function compareThroughput(sides: Side[], transport: Transport, rounds: number): Promise<void> {
  // Client mode: 16 requests in flight on the one stdio session, as in case (b).
  const sessions = await Promise.all(
    sides.map(async (side) =>
      transport === "client"
        ? Array<McpChannel>(16).fill(await open(side, transport))
        : await Promise.all(Array.from({ length: 16 }, () => open(side, transport)))
    ),
  );
  for (let round = 1; round <= rounds; round++) {
    const rates: number[] = [0, 0];
    const cpu: number[] = [0, 0];
    for (const k of round % 2 === 1 ? [0, 1] : [1, 0]) {
      let before = 0;
      const { calls, callsPerSecond } = await concurrentThroughput(
        sessions[k],
        200,
        20,
        1,
        () => before = cpuMicros(sides[k].process.pid),
      );
      rates[k] = callsPerSecond;
      cpu[k] = (cpuMicros(sides[k].process.pid) - before) / calls;
    }
    Deno.stdout.writeSync(encoder.encode(
      `${transport} throughput round ${round}: A ${rates[0].toFixed(0)} calls/s, B ${rates[1].toFixed(0)} ` +
        `calls/s (B/A ${(rates[1] / rates[0]).toFixed(3)}); CPU per call A ${cpu[0].toFixed(0)} µs, B ${
          cpu[1].toFixed(0)
        } µs\n`,
    ));
  }
  for (const channels of sessions) for (const channel of new Set(channels)) await channel.close();
}

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    calls: { type: "string" },
    rounds: { type: "string" },
    "v8-flags-a": { type: "string" },
    "v8-flags-b": { type: "string" },
    large: { type: "boolean" },
    "large-echo": { type: "boolean" },
    client: { type: "boolean" },
    "event-stream": { type: "boolean" },
    "id-last": { type: "boolean" },
    concurrent: { type: "boolean" },
  },
});
if (positionals.length !== 2) {
  Deno.stderr.writeSync(
    encoder.encode(
      "usage: deno run -A bench/compare.ts DIR_A DIR_B [--calls N] [--rounds N] [--large | --large-echo] [--client] [--event-stream] [--id-last] [--concurrent] [--v8-flags-a=F] [--v8-flags-b=F]\n",
    ),
  );
  Deno.exit(2);
}
const size: CallSize = values["large-echo"] ? "large-echo" : values.large ? "large" : "small";
const large = size !== "small";
const calls = Number(values.calls ?? (large ? 100 : 3000));
const rounds = Number(values.rounds ?? 3);
try {
  const shipped = V8_FLAGS.join(",");
  const flags = [values["v8-flags-a"] ?? shipped, values["v8-flags-b"] ?? shipped];
  const echo = values.client ? await startEchoHttpServer(values["event-stream"]) : undefined;
  const sides: Side[] = [];
  for (const [k, dir] of positionals.entries()) {
    sides.push(echo === undefined ? await start(dir, flags[k]) : startClient(dir, flags[k], echo.url));
  }
  const transports: Transport[] = values.client ? ["client"] : ["/mcp", "/sse"];
  for (const transport of transports) {
    if (values.concurrent) {
      await compareThroughput(sides, transport, rounds);
      continue;
    }
    const channels = [await open(sides[0], transport), await open(sides[1], transport)];
    for (let i = 0; i < (large ? 10 : 300); i++) {
      for (const channel of channels) await timed(channel, i, size);
    }
    for (let round = 1; round <= rounds; round++) {
      const latencies: number[][] = [[], []];
      const cpuBefore = sides.map((side) => cpuMicros(side.process.pid));
      for (let i = 0; i < calls; i++) {
        // Which side goes first alternates too.
        const order = i % 2 === 0 ? [0, 1] : [1, 0];
        for (const k of order) latencies[k].push(await timed(channels[k], i, size));
      }
      const cpu = sides.map((side, k) => (cpuMicros(side.process.pid) - cpuBefore[k]) / calls);
      const p50 = latencies.map((values) => percentile(values, 50) * 1000);
      Deno.stdout.writeSync(encoder.encode(
        `${transport} round ${round}: p50 A ${p50[0].toFixed(1)} µs, B ${p50[1].toFixed(1)} µs (B−A ${
          (p50[1] - p50[0]).toFixed(1)
        }); CPU per call A ${cpu[0].toFixed(0)} µs, B ${cpu[1].toFixed(0)} µs\n`,
      ));
    }
    for (const channel of channels) await channel.close();
  }
} finally {
  await stopAll();
}
