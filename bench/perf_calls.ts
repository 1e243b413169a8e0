/**
 * Where mcp-proxy's CPU goes per call, kernel and native code included: runs one path of the benchmark
 * with sequential calls, records the proxy's process with Linux `perf` for a few seconds, and prints the
 * µs per call charged to each JavaScript function (with the native work beneath it), to the event loop,
 * and to other threads (see `perf_attribution.ts`). With `--floor`, the least a relay can do instead, for
 * a table to hold against it.
 *
 * Run: `deno run -A bench/perf_calls.ts [--client | --sse] [--large] [--floor] [--seconds S] [--top N]`
 *
 * - Server mode over `/mcp` by default, `--sse` over `/sse`; `--client`: client mode in front of the
 *   HTTP echo server. `--large`: 1 MiB answers, as case (f), instead of 1 KiB calls.
 * - Linux only, with `perf` installed and allowed to record a process of the same user
 *   (`/proc/sys/kernel/perf_event_paranoid` ≤ 2, or root).
 * - The calls per second of the run give the calls in the window sampled (its first sample to its
 *   last): about ±1%.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { V8_FLAGS } from "../scripts/permissions.ts";
import { attribute } from "./perf_attribution.ts";
import {
  initialize,
  LegacySseChannel,
  type McpChannel,
  StdioChannel,
  StreamableHttpChannel,
} from "./mcp_channels.ts";
import {
  freePort,
  spawnTracked,
  startEchoHttpServer,
  stopAll,
  type TrackedProcess,
  waitForPort,
} from "./processes.ts";
import { callBlob, callEcho, LARGE_BYTES, smallText } from "./workloads.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const ECHO_STDIO = new URL("./echo_stdio_server.ts", import.meta.url).pathname;
const SERVER_RELAY = new URL("./minimal_server_relay.ts", import.meta.url).pathname;
const CLIENT_RELAY = new URL("./minimal_client_relay.ts", import.meta.url).pathname;
const SAMPLES_PER_SECOND = 4999;
const USAGE = "usage: deno run -A bench/perf_calls.ts [--client | --sse] [--large] [--floor] [--seconds S] " +
  "[--top N]\n";
const encoder = new TextEncoder();

function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

function fail(text: string, code = 1): never {
  Deno.stderr.writeSync(encoder.encode(`perf_calls: ${text}\n`));
  Deno.exit(code);
}

/** Runs `perf` with `args`; its stdout, or throws with its stderr. */
async function perf(args: string[]): Promise<string> {
  const output = await new Deno.Command("perf", { args, stdout: "piped", stderr: "piped" }).output();
  if (!output.success) throw new Error(`perf ${args[0]} failed: ${new TextDecoder().decode(output.stderr)}`);
  return new TextDecoder().decode(output.stdout);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    client: { type: "boolean" },
    sse: { type: "boolean" },
    large: { type: "boolean" },
    floor: { type: "boolean" },
    seconds: { type: "string" },
    top: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  print(USAGE);
  Deno.exit(0);
}
const seconds = Number(values.seconds ?? 2);
const top = Number(values.top ?? 30);
if (!(seconds > 0) || !Number.isInteger(top) || top < 1) fail(`bad --seconds or --top\n${USAGE}`, 2);
if (Deno.build.os !== "linux") fail("perf runs on Linux only");
try {
  await perf(["--version"]);
} catch {
  fail("perf is not installed (apt-get install linux-perf, or linux-tools-$(uname -r))");
}

const scratch = await Deno.makeTempDir({ prefix: "perf_calls_" });
const flags = [
  `--v8-flags=${[...V8_FLAGS, "--perf-basic-prof", "--interpreted-frames-native-stack"].join(",")}`,
];
const echo = [Deno.execPath(), "run", "--quiet", "--no-config", ECHO_STDIO];
let target: TrackedProcess | undefined;
let failed = false;
try {
  let channel: McpChannel;
  let label: string;
  if (values.client) {
    const server = await startEchoHttpServer();
    const args = values.floor
      ? ["run", "-A", "--no-config", ...flags, CLIENT_RELAY, "--http1", server.url]
      : ["run", "-A", ...flags, `${ROOT}/main.ts`, server.url];
    label = values.floor ? "client mode, the floor (minimal_client_relay.ts --http1)" : "client mode";
    // In the scratch directory: V8 writes a log file there under --perf-basic-prof.
    target = spawnTracked(label, Deno.execPath(), args, { stdin: "piped", stdout: "piped", cwd: scratch });
    channel = new StdioChannel(label, target);
  } else {
    const port = freePort();
    const args = values.floor
      ? ["run", "-A", "--no-config", ...flags, SERVER_RELAY, `${port}`, ...echo]
      : ["run", "-A", ...flags, `${ROOT}/main.ts`, "--port", `${port}`, "--", ...echo];
    const transport = values.sse ? "/sse" : "/mcp";
    label = `server mode ${transport}` + (values.floor ? ", the floor (minimal_server_relay.ts)" : "");
    target = spawnTracked(label, Deno.execPath(), args, { cwd: scratch });
    await waitForPort(port, target);
    const base = `http://127.0.0.1:${port}`;
    channel = values.sse
      ? await LegacySseChannel.open(label, `${base}/sse`)
      : new StreamableHttpChannel(label, `${base}/mcp`);
  }
  await initialize(channel);
  let calls = 0;
  const call = values.large
    ? () => callBlob(channel, LARGE_BYTES)
    : () => callEcho(channel, smallText(`p${calls}`));
  // Warm: the code of the path compiled and optimized before it is sampled.
  for (let i = 0; i < (values.large ? 30 : 1000); i++) await call();

  const data = `${scratch}/perf.data`;
  const pid = target.pid;
  const recording = perf([
    "record",
    "-e",
    "cpu-clock",
    "-F",
    `${SAMPLES_PER_SECOND}`,
    "-g",
    "-p",
    `${pid}`,
    "-o",
    data,
    "--",
    "sleep",
    `${seconds}`,
  ]);
  let done = false;
  recording.then(() => done = true, () => done = true);
  const start = performance.now();
  calls = 0;
  while (!done) {
    await call();
    calls++;
  }
  const rate = calls / ((performance.now() - start) / 1000);
  await recording;
  await channel.close();

  const script = await perf(["script", "-i", data, "-F", "comm,tid,time,ip,sym,dso"]);
  const result = attribute(script, pid, ROOT);
  const sampledCalls = rate * result.seconds;
  const perCall = (samples: number) => samples / SAMPLES_PER_SECOND / sampledCalls * 1e6;
  const size = values.large ? "1 MiB answers" : "1 KiB calls";
  print(
    `${label}, sequential ${size}: ${result.samples} samples over ${result.seconds.toFixed(2)} s, ` +
      `${Math.round(sampledCalls)} calls; ${perCall(result.samples).toFixed(1)} µs of CPU per call\n\n`,
  );
  const table = (title: string, counts: Map<string, number>) => {
    print(`| ${title} | µs per call | share |\n|---|---:|---:|\n`);
    const rows = [...counts].sort((a, b) => b[1] - a[1]).slice(0, top);
    for (const [name, samples] of rows) {
      const share = (100 * samples / result.samples).toFixed(1);
      print(`| ${name.replaceAll("|", "\\|")} | ${perCall(samples).toFixed(1)} | ${share}% |\n`);
    }
    print("\n");
  };
  table("charged to (innermost JavaScript function, with the native work beneath it)", result.self);
  table("JavaScript function anywhere on the stack", result.inclusive);
} catch (error) {
  failed = true;
  Deno.stderr.writeSync(encoder.encode(`perf_calls: ${error instanceof Error ? error.message : error}\n`));
} finally {
  await stopAll();
  if (target !== undefined) await Deno.remove(`/tmp/perf-${target.pid}.map`).catch(() => {});
  await Deno.remove(scratch, { recursive: true });
}
Deno.exit(failed ? 1 : 0);
