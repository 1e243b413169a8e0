/**
 * `deno task bench`: mcp-proxy against the direct path, in the same run, on the workloads of issue 7.
 *
 * Server mode runs in front of `bench/echo_stdio_server.ts`, and is compared with talking to that server
 * directly over stdio; client mode runs in front of `bench/echo_http_server.ts`, and is compared with
 * talking to that server directly over HTTP. The cases:
 *
 * - (a) sequential 1 KiB calls, p50 and p99;
 * - (b) 16 sessions × N calls at once, throughput (direct stdio: 16 requests in flight on one child;
 *   client mode: 16 streams on one session);
 * - (c) a 1 MiB request with a 1 MiB answer, p50; (f) a 1 MiB answer only, p50;
 * - (d) start to the first answered call (`deno run`, warm cache), median;
 * - (e) the proxy's resident memory idle and with 64 open Streamable HTTP sessions;
 * - the proxy's CPU time per call during (a) and (b).
 *
 * (a), (b), (c) and (f) run on every path of a mode in turns (the direct path, mcp-proxy, the floor, the
 * peers: all started and their sessions open), a block of calls on each at a time, so that the ratios of
 * one run compare paths that saw the machine alike.
 *
 * Installed peers (supergateway, the npm mcp-proxy, mcp-remote) get rows of their own, and with `--floor`
 * so does the least a relay can do (`bench/minimal_server_relay.ts`, `bench/minimal_client_relay.ts`).
 * Every answer is
 * checked: a wrong or missing one stops the run with an error. There are no timing assertions: the table
 * says which of the issue's targets are met.
 *
 * ```sh
 * deno run -A bench/main.ts [--quick] [--json FILE] [--cases a,b,c,d,e,f] [--floor] [--cpu-prof DIR]
 *                           [--proxy-v8-flags FLAGS] [--event-stream] [--id-last]
 * ```
 *
 * @module
 */

import {
  initialize,
  LegacySseChannel,
  type McpChannel,
  StdioChannel,
  StreamableHttpChannel,
} from "./mcp_channels.ts";
import { findPeers, type FoundPeer, INSTALL_COMMAND, type PeerSearch } from "./peers.ts";
import {
  cpuMicros,
  cpuTickMicros,
  descendantsOf,
  freePort,
  residentKiB,
  spawnTracked,
  startEchoHttpServer,
  stopAll,
  stopTracked,
  type TrackedProcess,
  waitForPort,
} from "./processes.ts";
import { V8_FLAGS } from "../scripts/permissions.ts";
import { markdownTable, mib, micros, ms, rate, ratio, type Row } from "./report.ts";
import {
  callEcho,
  concurrentThroughput,
  largeLatencies,
  percentile,
  sequentialLatencies,
  smallText,
  type Throughput,
} from "./workloads.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const MAIN = `${ROOT}/main.ts`;
const DENO = Deno.execPath();
const ECHO_STDIO = new URL("./echo_stdio_server.ts", import.meta.url).pathname;
const SERVER_RELAY = new URL("./minimal_server_relay.ts", import.meta.url).pathname;
const CLIENT_RELAY = new URL("./minimal_client_relay.ts", import.meta.url).pathname;
/** The stdio echo server, as every path starts it. */
/** The command of the stdio echo server. */
function echoCommand(settings: Settings): string[] {
  return [DENO, "run", "--quiet", "--no-config", ECHO_STDIO, ...(settings.idLast ? ["--id-last"] : [])];
}

const USAGE = `usage: deno run -A bench/main.ts [--quick] [--json FILE] [--cases a,b,c,d,e,f] [--floor]
                                 [--cpu-prof DIR] [--proxy-v8-flags FLAGS] [--event-stream] [--id-last]

  --quick          a smaller run (under a minute)
  --json FILE      also write the raw numbers to FILE
  --cases LIST     run only these cases (default: all; CPU per call comes with a and b)
  --floor          add rows for the least a relay can do (bench/minimal_server_relay.ts, and
                   bench/minimal_client_relay.ts --http1)
  --cpu-prof DIR   run mcp-proxy with --cpu-prof, writing its profiles to DIR
  --proxy-v8-flags FLAGS
                   mcp-proxy's --v8-flags (default: the shipped ones, ${V8_FLAGS.join(",")}; "" for none)
  --event-stream   client mode's HTTP echo server answers each POST with an SSE stream, as servers
                   built on the TypeScript SDK do by default (else with JSON)
  --id-last        the stdio echo server writes the id of its answers last, as the TypeScript SDK does
                   (else first, as the Python SDK does)
`;

const CASES = ["a", "b", "c", "d", "e", "f"] as const;
type Case = typeof CASES[number];

interface Settings {
  quick: boolean;
  sequentialCalls: number;
  sequentialWarmup: number;
  sessions: number;
  callsPerSession: number;
  warmupPerSession: number;
  /** Rounds of (b); the table shows the median. */
  concurrentRounds: number;
  largeIterations: number;
  largeWarmup: number;
  starts: number;
  openSessions: number;
  cases: Set<Case>;
  /** Whether the minimal relays (`bench/minimal_*_relay.ts`) get rows, as the floor. */
  floor: boolean;
  jsonFile?: string;
  cpuProfDir?: string;
  /** `--v8-flags` of the proxy's deno; by default the ones it ships with. */
  proxyV8Flags: string;
  /** Client mode's echo server answers with SSE streams instead of JSON. */
  eventStream: boolean;
  /** The stdio echo server writes its answers' ids last. */
  idLast: boolean;
}

class UsageError extends Error {}

function parseArgs(args: string[]): Settings | "help" {
  let quick = false;
  let floor = false;
  let eventStream = false;
  let idLast = false;
  let jsonFile: string | undefined;
  let cpuProfDir: string | undefined;
  let proxyV8Flags = V8_FLAGS.join(",");
  let cases = new Set<Case>(CASES);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      const next = args[++i];
      if (next === undefined) throw new UsageError(`${arg} needs a value`);
      return next;
    };
    if (arg === "--quick") quick = true;
    else if (arg === "--floor") floor = true;
    else if (arg === "--event-stream") eventStream = true;
    else if (arg === "--id-last") idLast = true;
    else if (arg === "--json") jsonFile = value();
    else if (arg === "--cpu-prof") cpuProfDir = value();
    else if (arg === "--proxy-v8-flags") proxyV8Flags = value();
    else if (arg === "--cases") {
      const list = value().split(",").map((item) => item.trim()).filter((item) => item !== "");
      const unknown = list.filter((item) => !(CASES as readonly string[]).includes(item));
      if (unknown.length > 0 || list.length === 0) {
        throw new UsageError(
          `--cases takes letters among ${CASES.join(",")}, not ${JSON.stringify(unknown)}`,
        );
      }
      cases = new Set(list as Case[]);
    } else if (arg === "-h" || arg === "--help") return "help";
    else throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
  }
  return {
    quick,
    sequentialCalls: quick ? 300 : 2000,
    sequentialWarmup: quick ? 50 : 200,
    sessions: 16,
    callsPerSession: quick ? 50 : 200,
    warmupPerSession: quick ? 10 : 20,
    concurrentRounds: quick ? 3 : 5,
    largeIterations: quick ? 10 : 150,
    largeWarmup: quick ? 2 : 3,
    starts: quick ? 3 : 5,
    openSessions: 64,
    cases,
    floor,
    jsonFile,
    cpuProfDir,
    proxyV8Flags,
    eventStream,
    idLast,
  };
}

const encoder = new TextEncoder();

function progress(text: string): void {
  Deno.stderr.writeSync(encoder.encode(`bench: ${text}\n`));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Quotes words for a command string that a shell splits (supergateway's `--stdio`). */
function shellJoin(words: string[]): string {
  return words.map((word) => /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)
    .join(" ");
}

// ---- what is measured ---------------------------------------------------------------------------

type Transport = "/mcp" | "/sse";

/** Something that serves the echo server over HTTP: mcp-proxy's server mode, a peer, or the floor. */
interface ServerSystem {
  label: string;
  /** A peer, or the floor: measured, but with no target, and a wrong answer does not stop the run. */
  peer: boolean;
  /** The minimal relay: what no relay gets under; not a peer to be ahead of. */
  floor?: boolean;
  transports: Transport[];
  command(port: number): [string, string[]];
}

/** Something that serves a remote HTTP server over stdio: mcp-proxy's client mode, a peer, or the floor. */
interface ClientSystem {
  label: string;
  /** A peer, or the floor: measured, but with no target, and a wrong answer does not stop the run. */
  peer: boolean;
  /** The minimal relay: what no relay gets under. */
  floor?: boolean;
  command(url: string): [string, string[]];
  env?: Record<string, string>;
}

/** The V8 flags mcp-proxy runs with, as `deno run` flags. */
function v8Flags(settings: Settings): string[] {
  return settings.proxyV8Flags === "" ? [] : [`--v8-flags=${settings.proxyV8Flags}`];
}

/** The proxy's own `deno run` flags: its V8 flags, and the profiler when asked for. */
function profileFlags(settings: Settings): string[] {
  const flags = v8Flags(settings);
  if (settings.cpuProfDir !== undefined) flags.push("--cpu-prof", `--cpu-prof-dir=${settings.cpuProfDir}`);
  return flags;
}

function serverSystems(settings: Settings, peers: FoundPeer[]): ServerSystem[] {
  const systems: ServerSystem[] = [{
    label: "mcp-proxy",
    peer: false,
    transports: ["/mcp", "/sse"],
    command: (
      port,
    ) => [DENO, [
      "run",
      "-A",
      ...profileFlags(settings),
      MAIN,
      "--port",
      `${port}`,
      "--",
      ...echoCommand(settings),
    ]],
  }];
  if (settings.floor) {
    systems.push({
      label: "floor (minimal relay)",
      peer: true,
      floor: true,
      transports: ["/mcp", "/sse"],
      // With mcp-proxy's V8 flags: the same runtime, doing the least.
      command: (
        port,
      ) => [DENO, [
        "run",
        "-A",
        "--no-config",
        ...v8Flags(settings),
        SERVER_RELAY,
        `${port}`,
        ...echoCommand(settings),
      ]],
    });
  }
  for (const peer of peers) {
    if (peer.name === "supergateway") {
      // stdio → SSE: GET /sse, POST /message?sessionId=… (the endpoint event names it).
      systems.push({
        label: peer.label,
        peer: true,
        transports: ["/sse"],
        command: (
          port,
        ) => [peer.bin, [
          "--stdio",
          shellJoin(echoCommand(settings)),
          "--port",
          `${port}`,
          "--logLevel",
          "none",
        ]],
      });
    } else if (peer.name === "mcp-proxy") {
      systems.push({
        label: peer.label,
        peer: true,
        transports: ["/mcp", "/sse"],
        command: (port) => [peer.bin, ["--port", `${port}`, "--", ...echoCommand(settings)]],
      });
    }
  }
  return systems;
}

/** Scratch directories made by this run, removed at its end (also on Ctrl-C). */
const scratchDirs: string[] = [];

function removeScratchDirs(): void {
  for (const dir of scratchDirs.splice(0)) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already gone.
    }
  }
}

function clientSystems(settings: Settings, peers: FoundPeer[]): ClientSystem[] {
  const systems: ClientSystem[] = [{
    label: "mcp-proxy client",
    peer: false,
    command: (url) => [DENO, ["run", "-A", ...profileFlags(settings), MAIN, url]],
  }];
  if (settings.floor) {
    systems.push({
      label: "floor (minimal client relay)",
      peer: true,
      floor: true,
      // Its bare HTTP/1.1 exchange: mcp-proxy's client mode sends without fetch, as it does.
      command: (
        url,
      ) => [DENO, ["run", "-A", "--no-config", ...v8Flags(settings), CLIENT_RELAY, "--http1", url]],
    });
  }
  const remote = peers.find((peer) => peer.name === "mcp-remote");
  if (remote !== undefined) {
    const scratch = Deno.makeTempDirSync({ prefix: "mcp-proxy-bench-" });
    scratchDirs.push(scratch);
    systems.push({
      label: remote.label,
      peer: true,
      command: (url) => [remote.bin, [url, "--transport", "http-only", "--allow-http", "--silent"]],
      // Its OAuth state goes to a scratch directory, not ~/.mcp-auth.
      env: { MCP_REMOTE_CONFIG_DIR: `${scratch}/mcp-remote` },
    });
  }
  return systems;
}

/** A latency distribution in ms. */
interface Latencies {
  p50: number;
  p99: number;
  samples: number[];
}

function latencies(samples: number[]): Latencies {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), samples };
}

/** What one path (direct, or through a proxy and a transport) measured. */
interface PathResults {
  sequential?: Latencies;
  /** CPU µs per call of the proxy process (or the echo server, on a direct path) during (a). */
  sequentialCpuMicros?: number;
  concurrent?: Throughput;
  /** CPU µs per call during (b). */
  concurrentCpuMicros?: number;
  /**
   * CPU µs per call during (b) of every process the calls pass through, which share the machine's
   * cores: this benchmark (the client), the proxy and what it started, and in client mode the HTTP echo
   * server.
   */
  concurrentPathCpuMicros?: number;
  largeEcho?: Latencies;
  largeAnswer?: Latencies;
  /** A peer's cases that failed (a wrong or missing answer), by letter: what went wrong. */
  failures?: Partial<Record<Case, string>>;
}

/** What the start-up and memory cases measured for one system. */
interface StartResults {
  startMs: number[];
  medianMs: number;
  rssIdleKiB?: number;
  rssSessionsKiB?: number;
  sessions?: number;
}

// ---- the paths ------------------------------------------------------------------------------------

/** One path the calls can take: direct, or through a proxy and a transport. */
interface Path {
  key: string;
  /** A peer's or the floor's path: a wrong answer drops it from the case, not the run. */
  peer: boolean;
  /** The session of (a), (c) and (f). */
  channel?: McpChannel;
  /** The sessions of (b), one per worker (the same one several times: requests in flight on one). */
  channels?: McpChannel[];
  /** The proxy's process (on a direct path, the echo server's): its CPU time per call is reported. */
  cpuPid: number;
  /** Every process the calls pass through: this one, `cpuPid`, what it started, and any other. */
  pathPids: number[];
}

/** Paths made ready for the cases, and how to end them once they are measured. */
interface OpenPaths {
  paths: Path[];
  close(): Promise<void>;
}

/** The sessions `open` makes for a path: one for (a), (c), (f), and one per worker of (b) if asked. */
async function openSessions(
  settings: Settings,
  open: () => Promise<McpChannel>,
): Promise<{ channel?: McpChannel; channels?: McpChannel[] }> {
  const { cases } = settings;
  const channel = cases.has("a") || cases.has("c") || cases.has("f") ? await open() : undefined;
  const channels = cases.has("b")
    ? await Promise.all(Array.from({ length: settings.sessions }, open))
    : undefined;
  return { channel, channels };
}

function spawnEchoServer(settings: Settings, name: string): TrackedProcess {
  const [command, ...args] = echoCommand(settings);
  return spawnTracked(name, command, args, { stdin: "piped", stdout: "piped" });
}

/** A path with one session for every case: (b) has its workers' requests in flight on it at once. */
function oneSessionPath(
  settings: Settings,
  path: { key: string; peer: boolean; channel: McpChannel; cpuPid: number; pathPids: number[] },
): Path {
  return { ...path, channels: Array(settings.sessions).fill(path.channel) };
}

/** The echo server driven directly over stdio: one session; (b) has 16 requests in flight on it. */
async function openDirectStdio(settings: Settings): Promise<OpenPaths> {
  const server = spawnEchoServer(settings, "echo server (direct)");
  const channel = new StdioChannel("direct stdio", server);
  await initialize(channel);
  return {
    paths: [oneSessionPath(settings, {
      key: "direct stdio",
      peer: false,
      channel,
      cpuPid: server.pid,
      pathPids: [Deno.pid, server.pid],
    })],
    close: async () => {
      await channel.close();
      await stopTracked(server);
    },
  };
}

async function openSession(system: ServerSystem, transport: Transport, base: string): Promise<McpChannel> {
  const label = `${system.label} ${transport}`;
  const channel = transport === "/mcp"
    ? new StreamableHttpChannel(label, `${base}/mcp`)
    : await LegacySseChannel.open(label, `${base}/sse`);
  await initialize(channel);
  return channel;
}

/**
 * How long a stopped system may take to exit on SIGTERM before it is killed. Its shutdown is not
 * measured: a peer or the floor gets half a second (supergateway takes some 3.5 s, which cost a quick run
 * about 15 s); mcp-proxy, which exits at once, the default, so that `--cpu-prof` can write its profile.
 */
function stopGraceMs(system: { peer: boolean }): number | undefined {
  return system.peer ? 500 : undefined;
}

function startServerSystem(system: ServerSystem, port: number): TrackedProcess {
  const [command, args] = system.command(port);
  return spawnTracked(system.label, command, args);
}

/**
 * A server-mode system, one path per transport, with sessions of its own. A peer whose sessions fail to
 * open gets failed cases and no path, and the run goes on.
 */
async function openServerSystem(
  settings: Settings,
  system: ServerSystem,
  results: Record<string, PathResults>,
): Promise<OpenPaths> {
  const port = freePort();
  const process = startServerSystem(system, port);
  await waitForPort(port, process);
  const base = `http://127.0.0.1:${port}`;
  const paths: Path[] = [];
  for (const transport of system.transports) {
    const key = `${system.label} ${transport}`;
    try {
      paths.push({
        key,
        peer: system.peer,
        ...await openSessions(settings, () => openSession(system, transport, base)),
        cpuPid: process.pid,
        pathPids: [Deno.pid, process.pid, ...descendantsOf(process.pid)],
      });
    } catch (error) {
      if (!system.peer) throw error;
      const message = `opening its sessions: ${error instanceof Error ? error.message : error}`;
      const failures = (results[key] ??= {}).failures ??= {};
      for (const letter of ["a", "b", "c", "f"] as const) {
        if (settings.cases.has(letter)) failures[letter] = message;
      }
      progress(`${key}: failed: ${message}`);
    }
  }
  return {
    paths,
    close: async () => {
      const channels = new Set(paths.flatMap((path) => [path.channel, ...path.channels ?? []]));
      await Promise.all([...channels].map((channel) => channel?.close()));
      await stopTracked(process, stopGraceMs(system));
    },
  };
}

/**
 * The HTTP echo server driven directly, and each client-mode system in front of it; one session each,
 * (b) has 16 requests in flight on it.
 */
async function openClientSystems(settings: Settings, systems: ClientSystem[]): Promise<OpenPaths> {
  const { process: server, url } = await startEchoHttpServer(settings.eventStream);
  const direct = new StreamableHttpChannel("direct HTTP", url);
  await initialize(direct);
  const paths = [oneSessionPath(settings, {
    key: "direct HTTP",
    peer: false,
    channel: direct,
    cpuPid: server.pid,
    pathPids: [Deno.pid, server.pid],
  })];
  const running: { channel: StdioChannel; process: TrackedProcess; system: ClientSystem }[] = [];
  for (const system of systems) {
    const [command, args] = system.command(url);
    const process = spawnTracked(system.label, command, args, {
      stdin: "piped",
      stdout: "piped",
      env: system.env,
    });
    const channel = new StdioChannel(system.label, process);
    running.push({ channel, process, system });
    await initialize(channel);
    paths.push(oneSessionPath(settings, {
      key: system.label,
      peer: system.peer,
      channel,
      cpuPid: process.pid,
      pathPids: [Deno.pid, process.pid, ...descendantsOf(process.pid), server.pid],
    }));
  }
  return {
    paths,
    close: async () => {
      await direct.close();
      for (const { channel, process, system } of running) {
        await channel.close();
        await stopTracked(process, stopGraceMs(system));
      }
      await stopTracked(server);
    },
  };
}

// ---- the cases, every path in turns ------------------------------------------------------------

/**
 * Runs a case on `paths` in turns: `warm` once on each, then `blocks` blocks of `block` on each, which
 * path goes first moving on by one each time. A shared VM's speed drifts by tens of percent within a
 * minute: paths measured minutes apart would not compare, paths measured in turns see the machine alike.
 * A peer's path that fails is recorded (`failures`) and left out from then on; any other stops the run.
 */
async function inTurns(
  letter: Case,
  paths: Path[],
  results: Record<string, PathResults>,
  blocks: number,
  warm: (path: Path) => Promise<void>,
  block: (path: Path) => Promise<void>,
): Promise<void> {
  let live = paths;
  const attempt = async (path: Path, step: (path: Path) => Promise<void>) => {
    try {
      await step(path);
    } catch (error) {
      if (!path.peer) throw error;
      const message = error instanceof Error ? error.message : String(error);
      ((results[path.key] ??= {}).failures ??= {})[letter] = message;
      progress(`${path.key}: (${letter}) failed: ${message}`);
      live = live.filter((other) => other !== path);
    }
  };
  for (const path of paths) await attempt(path, warm);
  for (let round = 0; round < blocks; round++) {
    const order = live.map((_, k) => live[(k + round) % live.length]);
    for (const path of order) await attempt(path, block);
  }
}

/** The cases (a), (c), (f) and (b) on `paths`, each in turns ({@link inTurns}). */
async function measurePaths(
  settings: Settings,
  paths: Path[],
  results: Record<string, PathResults>,
): Promise<void> {
  const { cases } = settings;
  const keys = paths.map((path) => path.key).join(", ");
  const entry = (path: Path) => results[path.key] ??= {};
  const failed = (path: Path, letter: Case) => results[path.key]?.failures?.[letter] !== undefined;

  if (cases.has("a")) {
    const blocks = settings.sequentialCalls / SEQUENTIAL_BLOCK;
    progress(`(a) ${settings.sequentialCalls} sequential 1 KiB calls, ${blocks} blocks in turns, on ${keys}`);
    const samples = new Map<Path, number[]>();
    const cpu = new Map<Path, number>();
    await inTurns("a", paths, results, blocks, async (path) => {
      await sequentialLatencies(path.channel!, 0, settings.sequentialWarmup);
    }, async (path) => {
      let before = 0;
      const taken = await sequentialLatencies(path.channel!, SEQUENTIAL_BLOCK, 0, () => {
        before = cpuMicros(path.cpuPid);
      });
      cpu.set(path, (cpu.get(path) ?? 0) + cpuMicros(path.cpuPid) - before);
      samples.set(path, [...samples.get(path) ?? [], ...taken]);
    });
    for (const path of paths) {
      if (failed(path, "a")) continue;
      entry(path).sequential = latencies(samples.get(path)!);
      entry(path).sequentialCpuMicros = cpu.get(path)! / settings.sequentialCalls;
    }
  }
  for (
    const [letter, kind, what] of [["c", "echo", "request and answer"], ["f", "blob", "answer"]] as const
  ) {
    if (!cases.has(letter)) continue;
    const blocks = settings.largeIterations / LARGE_BLOCK;
    progress(
      `(${letter}) ${settings.largeIterations} × 1 MiB ${what}, ${blocks} blocks in turns, on ${keys}`,
    );
    const samples = new Map<Path, number[]>();
    await inTurns(letter, paths, results, blocks, async (path) => {
      await largeLatencies(path.channel!, kind, 0, settings.largeWarmup);
    }, async (path) => {
      const taken = await largeLatencies(path.channel!, kind, LARGE_BLOCK, 0);
      samples.set(path, [...samples.get(path) ?? [], ...taken]);
    });
    for (const path of paths) {
      if (failed(path, letter)) continue;
      entry(path)[letter === "c" ? "largeEcho" : "largeAnswer"] = latencies(samples.get(path)!);
    }
  }
  if (cases.has("b")) {
    const { sessions, callsPerSession, concurrentRounds } = settings;
    progress(
      `(b) ${concurrentRounds} rounds of ${sessions} × ${callsPerSession} concurrent 1 KiB calls in turns, on ` +
        keys,
    );
    const pathCpu = (path: Path) => path.pathPids.reduce((sum, pid) => sum + cpuMicros(pid), 0);
    const tally = new Map<Path, { rates: number[]; cpu: number; pathCpu: number; calls: number }>();
    await inTurns("b", paths, results, concurrentRounds, async (path) => {
      await concurrentThroughput(path.channels!, 0, settings.warmupPerSession, 0);
    }, async (path) => {
      let cpuBefore = 0;
      let pathCpuBefore = 0;
      const { calls, callsPerSecond } = await concurrentThroughput(
        path.channels!,
        callsPerSession,
        0,
        1,
        () => {
          cpuBefore = cpuMicros(path.cpuPid);
          pathCpuBefore = pathCpu(path);
        },
      );
      const counts = tally.get(path) ?? { rates: [], cpu: 0, pathCpu: 0, calls: 0 };
      counts.cpu += cpuMicros(path.cpuPid) - cpuBefore;
      counts.pathCpu += pathCpu(path) - pathCpuBefore;
      counts.calls += calls;
      counts.rates.push(callsPerSecond);
      tally.set(path, counts);
    });
    for (const path of paths) {
      const counts = tally.get(path);
      if (failed(path, "b") || counts === undefined) continue;
      entry(path).concurrent = {
        calls: sessions * callsPerSession,
        rounds: counts.rates,
        callsPerSecond: percentile(counts.rates, 50),
      };
      entry(path).concurrentCpuMicros = counts.cpu / counts.calls;
      entry(path).concurrentPathCpuMicros = counts.pathCpu / counts.calls;
    }
  }
}

/** Opens the paths of `groups`, one group at a time, measures them all in turns, then ends them. */
async function measureGroups(
  settings: Settings,
  open: (() => Promise<OpenPaths>)[],
  results: Record<string, PathResults>,
): Promise<void> {
  const groups: OpenPaths[] = [];
  try {
    for (const openGroup of open) groups.push(await openGroup());
    await measurePaths(settings, groups.flatMap((group) => group.paths), results);
  } finally {
    for (const group of groups) await group.close();
  }
}

// ---- start-up and memory ----------------------------------------------------------------------

/** Retries `open` while the server does not accept connections yet (fetch's `TypeError`). */
async function openWhenListening(
  open: () => Promise<McpChannel>,
  process: TrackedProcess,
): Promise<McpChannel> {
  const deadline = Date.now() + 30_000;
  while (true) {
    try {
      return await open();
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      if (process.exited) throw new Error(`${process.name} exited:\n${process.stderrTail()}`);
      if (Date.now() > deadline) {
        throw new Error(`${process.name} did not answer in 30 s:\n${process.stderrTail()}`);
      }
      await delay(2);
    }
  }
}

/** Spawns `system` and times it until the first `tools/call` is answered; leaves it running. */
async function startOnce(
  system: ServerSystem,
): Promise<{ ms: number; process: TrackedProcess; channel: McpChannel; base: string }> {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const start = performance.now();
  const process = startServerSystem(system, port);
  const channel = await openWhenListening(() => openSession(system, system.transports[0], base), process);
  await callEcho(channel, smallText("start"));
  return { ms: performance.now() - start, process, channel, base };
}

async function measureDirectStart(settings: Settings): Promise<StartResults> {
  progress(`direct stdio: (d) spawn to first answer × ${settings.starts}`);
  const startMs: number[] = [];
  for (let i = -1; i < settings.starts; i++) {
    const start = performance.now();
    const server = spawnEchoServer(settings, "echo server (start)");
    const channel = new StdioChannel("direct stdio", server);
    await initialize(channel);
    await callEcho(channel, smallText("start"));
    if (i >= 0) startMs.push(performance.now() - start);
    await channel.close();
    await stopTracked(server);
  }
  return { startMs, medianMs: percentile(startMs, 50) };
}

async function measureStart(settings: Settings, system: ServerSystem): Promise<StartResults> {
  const { cases } = settings;
  const startMs: number[] = [];
  let last: Awaited<ReturnType<typeof startOnce>> | undefined;
  // One start more than measured, first: the cache is warm and the binary paged in.
  const runs = cases.has("d") ? settings.starts + 1 : 1;
  progress(`${system.label}: (d) start to first answer × ${runs - 1}` + (cases.has("e") ? ", then (e)" : ""));
  for (let i = 0; i < runs; i++) {
    last = await startOnce(system);
    if (i > 0) startMs.push(last.ms);
    if (i < runs - 1) {
      await last.channel.close();
      await stopTracked(last.process, stopGraceMs(system));
    }
  }
  const results: StartResults = { startMs, medianMs: percentile(startMs, 50) };
  const { process, channel, base } = last!;
  await channel.close();
  if (cases.has("e")) {
    const transport = system.transports[0];
    await delay(1000);
    results.rssIdleKiB = residentKiB(process.pid);
    progress(`${system.label}: (e) ${settings.openSessions} open ${transport} sessions`);
    const sessions: McpChannel[] = [];
    for (let i = 0; i < settings.openSessions; i++) {
      const session = await openSession(system, transport, base);
      if (session instanceof StreamableHttpChannel) await session.openStream();
      sessions.push(session);
    }
    await delay(1000);
    results.rssSessionsKiB = residentKiB(process.pid);
    results.sessions = sessions.length;
    await Promise.all(sessions.map((session) => session.close()));
  }
  await stopTracked(process, stopGraceMs(system));
  return results;
}

// ---- the table ------------------------------------------------------------------------------------

interface Measurements {
  paths: Record<string, PathResults>;
  starts: Record<string, StartResults>;
}

/** Calls in a block of (a): the paths take turns block by block. */
const SEQUENTIAL_BLOCK = 50;
/** Round trips in a block of (c) and (f). */
const LARGE_BLOCK = 5;

const ADDED_P50_TARGET_MS = 0.25;
const THROUGHPUT_TARGET = 3000;
const PEER_FACTOR_TARGET = 2;
const LARGE_ANSWER_TARGET = 1.5;
const START_TARGET_MS = 250;
const RSS_IDLE_TARGET_KIB = 60 * 1024;
const RSS_SESSIONS_TARGET_KIB = 8 * 1024;
const CLIENT_P50_TARGET = 1.3;
const CLIENT_THROUGHPUT_TARGET = 0.8;

/** How many cores `cpuMicrosPerCall` kept busy over the rounds of `throughput`, on average. */
function coresBusy(cpuMicrosPerCall: number, throughput: Throughput): number {
  // Total CPU time over total wall time: the rounds' calls per second, harmonic mean.
  const secondsPerCall = throughput.rounds.reduce((sum, rate) => sum + 1 / rate, 0) /
    throughput.rounds.length;
  return cpuMicrosPerCall / 1e6 / secondsPerCall;
}

/** What a row with no target is: the floor's, or a peer's. */
function standing(floor: boolean | undefined): string {
  return floor ? "floor" : "peer";
}

function buildRows(
  settings: Settings,
  servers: ServerSystem[],
  clients: ClientSystem[],
  m: Measurements,
): Row[] {
  const rows: Row[] = [];
  const serverPaths = servers.flatMap((system) =>
    system.transports.map((transport) => ({
      key: `${system.label} ${transport}`,
      peer: system.peer,
      floor: system.floor ?? false,
    }))
  );
  const direct = m.paths["direct stdio"];
  const directHttp = m.paths["direct HTTP"];
  const n = settings.sequentialCalls;

  for (const { key, peer, floor } of serverPaths) {
    const path = m.paths[key]?.sequential;
    if (path === undefined || direct?.sequential === undefined) continue;
    const added = path.p50 - direct.sequential.p50;
    rows.push({
      case: `(a) 1 KiB ×${n} p50 · ${key}`,
      direct: ms(direct.sequential.p50),
      proxy: ms(path.p50),
      ratio: ratio(path.p50, direct.sequential.p50),
      target: peer
        ? `${standing(floor)} (added ${added.toFixed(3)} ms)`
        : `added ≤ ${ADDED_P50_TARGET_MS} ms: ${added.toFixed(3)} ms`,
      met: peer ? undefined : added <= ADDED_P50_TARGET_MS,
    });
    rows.push({
      case: `(a) 1 KiB ×${n} p99 · ${key}`,
      direct: ms(direct.sequential.p99),
      proxy: ms(path.p99),
      ratio: ratio(path.p99, direct.sequential.p99),
      target: peer ? standing(floor) : "—",
    });
  }
  for (const system of clients) {
    const path = m.paths[system.label]?.sequential;
    if (path === undefined || directHttp?.sequential === undefined) continue;
    const r = path.p50 / directHttp.sequential.p50;
    rows.push({
      case: `(a) 1 KiB ×${n} p50 · ${system.label}`,
      direct: `${ms(directHttp.sequential.p50)} (HTTP)`,
      proxy: ms(path.p50),
      ratio: ratio(path.p50, directHttp.sequential.p50),
      target: system.peer ? standing(system.floor) : `≤ ${CLIENT_P50_TARGET.toFixed(2)}× direct HTTP`,
      met: system.peer ? undefined : r <= CLIENT_P50_TARGET,
    });
    rows.push({
      case: `(a) 1 KiB ×${n} p99 · ${system.label}`,
      direct: `${ms(directHttp.sequential.p99)} (HTTP)`,
      proxy: ms(path.p99),
      ratio: ratio(path.p99, directHttp.sequential.p99),
      target: system.peer ? standing(system.floor) : "—",
    });
  }

  const concurrency =
    `${settings.sessions}×${settings.callsPerSession}, median of ${settings.concurrentRounds}`;
  const peerThroughputs = serverPaths.filter((path) => path.peer && !path.floor)
    .map((path) => m.paths[path.key]?.concurrent?.callsPerSecond)
    .filter((value): value is number => value !== undefined);
  const bestPeer = peerThroughputs.length > 0 ? Math.max(...peerThroughputs) : undefined;
  for (const { key, peer, floor } of serverPaths) {
    const path = m.paths[key]?.concurrent;
    if (path === undefined || direct?.concurrent === undefined) continue;
    let target = `≥ ${THROUGHPUT_TARGET.toLocaleString("en-US")} calls/s`;
    let met = path.callsPerSecond >= THROUGHPUT_TARGET;
    if (bestPeer !== undefined) {
      target += `, ≥ ${PEER_FACTOR_TARGET}× best peer (${(path.callsPerSecond / bestPeer).toFixed(2)}×)`;
      met &&= path.callsPerSecond >= PEER_FACTOR_TARGET * bestPeer;
    } else {
      target += " (no peer to compare)";
    }
    rows.push({
      case: `(b) ${concurrency} concurrent · ${key}`,
      direct: rate(direct.concurrent.callsPerSecond),
      proxy: rate(path.callsPerSecond),
      ratio: ratio(path.callsPerSecond, direct.concurrent.callsPerSecond),
      target: peer ? standing(floor) : target,
      met: peer ? undefined : met,
    });
  }
  for (const system of clients) {
    const path = m.paths[system.label]?.concurrent;
    if (path === undefined || directHttp?.concurrent === undefined) continue;
    const r = path.callsPerSecond / directHttp.concurrent.callsPerSecond;
    rows.push({
      case: `(b) ${concurrency} concurrent · ${system.label}`,
      direct: `${rate(directHttp.concurrent.callsPerSecond)} (HTTP)`,
      proxy: rate(path.callsPerSecond),
      ratio: ratio(path.callsPerSecond, directHttp.concurrent.callsPerSecond),
      target: system.peer ? standing(system.floor) : `≥ ${CLIENT_THROUGHPUT_TARGET.toFixed(2)}× direct HTTP`,
      met: system.peer ? undefined : r >= CLIENT_THROUGHPUT_TARGET,
    });
  }

  const large = [
    {
      letter: "c",
      what: "1 MiB request + answer",
      pick: (path: PathResults) => path.largeEcho,
      target: undefined,
    },
    {
      letter: "f",
      what: "1 MiB answer",
      pick: (path: PathResults) => path.largeAnswer,
      target: LARGE_ANSWER_TARGET,
    },
  ];
  for (const { letter, what, pick, target } of large) {
    const base = direct === undefined ? undefined : pick(direct);
    if (base === undefined) continue;
    for (const { key, peer, floor } of serverPaths) {
      const path = m.paths[key] === undefined ? undefined : pick(m.paths[key]);
      if (path === undefined) continue;
      rows.push({
        case: `(${letter}) ${what} p50 · ${key}`,
        direct: ms(base.p50),
        proxy: ms(path.p50),
        ratio: ratio(path.p50, base.p50),
        target: peer ? standing(floor) : target === undefined ? "—" : `≤ ${target.toFixed(2)}× direct stdio`,
        met: peer || target === undefined ? undefined : path.p50 / base.p50 <= target,
      });
    }
    const httpBase = directHttp === undefined ? undefined : pick(directHttp);
    for (const system of clients) {
      const path = m.paths[system.label] === undefined ? undefined : pick(m.paths[system.label]);
      if (path === undefined || httpBase === undefined) continue;
      rows.push({
        case: `(${letter}) ${what} p50 · ${system.label}`,
        direct: `${ms(httpBase.p50)} (HTTP)`,
        proxy: ms(path.p50),
        ratio: ratio(path.p50, httpBase.p50),
        target: system.peer ? standing(system.floor) : "—",
      });
    }
  }

  const directStart = m.starts["direct stdio"];
  for (const system of servers) {
    const start = m.starts[system.label];
    if (start === undefined || start.startMs.length === 0) continue;
    rows.push({
      case: `(d) start → first answer, median of ${start.startMs.length} · ${system.label}`,
      direct: ms(directStart?.medianMs),
      proxy: ms(start.medianMs),
      ratio: ratio(start.medianMs, directStart?.medianMs),
      target: system.peer ? standing(system.floor) : `≤ ${START_TARGET_MS} ms`,
      met: system.peer ? undefined : start.medianMs <= START_TARGET_MS,
    });
  }
  for (const system of servers) {
    const start = m.starts[system.label];
    if (start?.rssIdleKiB === undefined || start.rssSessionsKiB === undefined) continue;
    const grown = start.rssSessionsKiB - start.rssIdleKiB;
    rows.push({
      case: `(e) RSS idle · ${system.label}`,
      direct: "—",
      proxy: mib(start.rssIdleKiB),
      ratio: "—",
      target: system.peer ? standing(system.floor) : `≤ ${mib(RSS_IDLE_TARGET_KIB)}`,
      met: system.peer ? undefined : start.rssIdleKiB <= RSS_IDLE_TARGET_KIB,
    });
    rows.push({
      case: `(e) RSS with ${start.sessions} open ${system.transports[0]} sessions · ${system.label}`,
      direct: "—",
      proxy: `${mib(start.rssSessionsKiB)} (${mib(grown, true)})`,
      ratio: "—",
      target: system.peer ? standing(system.floor) : `≤ ${mib(RSS_SESSIONS_TARGET_KIB, true)}`,
      met: system.peer ? undefined : grown <= RSS_SESSIONS_TARGET_KIB,
    });
  }

  const cpuPaths = [...serverPaths, ...clients.map((system) => ({ key: system.label, peer: system.peer }))];
  for (
    const [letter, pick] of [
      ["a", (path: PathResults) => path.sequentialCpuMicros],
      ["b", (path: PathResults) => path.concurrentCpuMicros],
    ] as const
  ) {
    for (const { key } of cpuPaths) {
      const value = m.paths[key] === undefined ? undefined : pick(m.paths[key]);
      if (value === undefined) continue;
      const directKey = key.endsWith("/mcp") || key.endsWith("/sse") ? "direct stdio" : "direct HTTP";
      const directValue = m.paths[directKey] === undefined ? undefined : pick(m.paths[directKey]);
      rows.push({
        case: `CPU per call during (${letter}) · ${key}`,
        direct: directValue === undefined ? "—" : `${micros(directValue)} (echo server)`,
        proxy: micros(value),
        ratio: "—",
        target: "—",
      });
    }
  }
  for (const { key } of cpuPaths) {
    const path = m.paths[key];
    if (path?.concurrentPathCpuMicros === undefined || path.concurrent === undefined) continue;
    const direct = m.paths[key.endsWith("/mcp") || key.endsWith("/sse") ? "direct stdio" : "direct HTTP"];
    const busy = (results: PathResults | undefined) =>
      results?.concurrentPathCpuMicros === undefined || results.concurrent === undefined
        ? "—"
        : `${micros(results.concurrentPathCpuMicros)} (${
          coresBusy(results.concurrentPathCpuMicros, results.concurrent).toFixed(2)
        } cores busy)`;
    rows.push({
      case: `CPU per call during (b), whole path · ${key}`,
      direct: busy(direct),
      proxy: busy(path),
      ratio: "—",
      target: "—",
    });
  }
  const failedPaths = [
    ...serverPaths,
    ...clients.map((system) => ({ key: system.label, floor: system.floor })),
  ];
  for (const { key, floor } of failedPaths) {
    for (const [letter, message] of Object.entries(m.paths[key]?.failures ?? {})) {
      rows.push({
        case: `(${letter}) · ${key}`,
        direct: "—",
        proxy: "failed",
        ratio: "—",
        target: `${standing(floor)}: ${message.length > 90 ? message.slice(0, 90) + "…" : message}`,
      });
    }
  }
  return rows;
}

// ---- the run --------------------------------------------------------------------------------------

function describePeers(search: PeerSearch): string {
  const lines = search.found.map((peer) => `- ${peer.label} ${peer.installed}: ${peer.bin}`);
  for (const { peer, why } of search.missing) lines.push(`- ${peer.label} ${peer.version}: ${why}`);
  if (search.missing.length > 0) {
    lines.push(`  To add the missing peers as rows, run in the checkout: ${INSTALL_COMMAND}`);
  }
  return lines.join("\n");
}

/** The checkout's commit, and whether mcp-proxy's own files differ from it; "" without git. */
function revision(): string {
  const git = (...args: string[]) => {
    const output = new Deno.Command("git", { args: ["-C", ROOT, ...args], stdout: "piped", stderr: "null" })
      .outputSync();
    return output.success ? new TextDecoder().decode(output.stdout).trim() : undefined;
  };
  try {
    const commit = git("rev-parse", "--short", "HEAD");
    if (commit === undefined) return "";
    const changed = git("status", "--porcelain", "--", "main.ts", "src", "deno.json", "deno.lock");
    return changed ? `${commit} with local changes` : commit;
  } catch {
    return "";
  }
}

function notes(settings: Settings): string {
  const tick = cpuTickMicros();
  const sequential = tick / settings.sequentialCalls;
  const concurrent = tick / (settings.sessions * settings.callsPerSession);
  return [
    "Notes:",
    "- direct: the echo server without a proxy, over stdio (server mode rows) or HTTP (client mode rows, " +
    "marked HTTP); (b) direct: 16 requests in flight on one session." +
    (settings.eventStream
      ? " The HTTP echo server answers each POST with an SSE stream (--event-stream)."
      : "") +
    (settings.idLast ? " The stdio echo server writes its answers' ids last (--id-last)." : ""),
    "- ratio: proxy / direct. (a) latency is a full round trip, answer stream read to its end.",
    `- (a), (b), (c), (f): the paths of each mode in turns, a block at a time (${SEQUENTIAL_BLOCK} calls of ` +
    `(a), a round of (b), ${LARGE_BLOCK} of (c) and (f)), which goes first moving on each time, so that all ` +
    "see the machine alike. (b): the median round.",
    `- CPU per call: utime + stime of the proxy's own process from /proc/PID/stat (direct column: the echo ` +
    `server's); resolution one tick, ±${sequential.toFixed(0)} µs per call in (a), ` +
    `±${(concurrent / settings.concurrentRounds).toFixed(0)} µs in (b).`,
    "- CPU per call during (b), whole path: the same, summed over every process the calls pass through " +
    "(this benchmark as the client, the proxy and the processes it started, and the echo server), and how " +
    `many of the ${navigator.hardwareConcurrency} cores that kept busy on average. They all share the cores: ` +
    "where the direct path keeps them busier, a proxy's throughput is bound by CPU; where not, by the " +
    "hand-offs between processes.",
    "- (e): VmRSS of the proxy's process (its child not included), 1 s after the first call's session " +
    "ended, then 1 s after the sessions opened (each: initialize, initialized, GET stream held open).",
  ].join("\n");
}

async function run(settings: Settings): Promise<void> {
  const startedAt = new Date();
  const began = performance.now();
  try {
    if (settings.cpuProfDir !== undefined) Deno.mkdirSync(settings.cpuProfDir, { recursive: true });
    const search = findPeers(ROOT);
    const servers = serverSystems(settings, search.found);
    const clients = clientSystems(settings, search.found);
    const { cases } = settings;
    progress(
      `${settings.quick ? "quick" : "full"} run, cases ${[...cases].join(",")}; peers:\n${
        describePeers(search)
      }`,
    );

    const m: Measurements = { paths: {}, starts: {} };
    if (cases.has("a") || cases.has("b") || cases.has("c") || cases.has("f")) {
      await measureGroups(settings, [
        () => openDirectStdio(settings),
        ...servers.map((system) => () => openServerSystem(settings, system, m.paths)),
      ], m.paths);
      await measureGroups(settings, [() => openClientSystems(settings, clients)], m.paths);
    }
    if (cases.has("d") || cases.has("e")) {
      if (cases.has("d")) m.starts["direct stdio"] = await measureDirectStart(settings);
      for (const system of servers) m.starts[system.label] = await measureStart(settings, system);
    }

    const rows = buildRows(settings, servers, clients, m);
    const seconds = (performance.now() - began) / 1000;
    const cores = navigator.hardwareConcurrency;
    const commit = revision();
    const heading = `mcp-proxy benchmark (${settings.quick ? "--quick" : "full"})` +
      `${commit === "" ? "" : ` at ${commit}`}: deno ${Deno.version.deno}, ` +
      `${Deno.build.target}, ${cores} cores, ${startedAt.toISOString()}, ${seconds.toFixed(0)} s; ` +
      `mcp-proxy's V8 flags: ${settings.proxyV8Flags === "" ? "none" : settings.proxyV8Flags}`;
    Deno.stdout.writeSync(
      encoder.encode(
        `${heading}\n\n${markdownTable(rows)}\n\n${notes(settings)}\n\nPeers:\n${describePeers(search)}\n`,
      ),
    );
    if (settings.jsonFile !== undefined) {
      const { cases: _, ...rest } = settings;
      Deno.writeTextFileSync(
        settings.jsonFile,
        JSON.stringify(
          {
            heading,
            startedAt: startedAt.toISOString(),
            seconds,
            deno: Deno.version,
            target: Deno.build.target,
            cores,
            settings: { ...rest, cases: [...cases] },
            peers: { found: search.found, missing: search.missing, install: INSTALL_COMMAND },
            paths: m.paths,
            starts: m.starts,
            rows,
          },
          null,
          1,
        ) + "\n",
      );
      progress(`raw numbers written to ${settings.jsonFile}`);
    }
  } finally {
    removeScratchDirs();
  }
}

if (import.meta.main) {
  let code = 0;
  let interrupted = false;
  const stop = async (signal: Deno.Signal) => {
    if (interrupted) return;
    interrupted = true;
    progress(`${signal}: stopping every process started`);
    await stopAll(500);
    removeScratchDirs();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  try {
    const settings = parseArgs(Deno.args);
    if (settings === "help") Deno.stdout.writeSync(encoder.encode(USAGE));
    else await run(settings);
  } catch (error) {
    // After a signal, the calls in flight fail as their processes stop: that is no error of the run.
    if (!interrupted) {
      const text = error instanceof UsageError
        ? `${error.message}\n${USAGE}`
        : (error as Error)?.stack ?? String(error);
      Deno.stderr.writeSync(encoder.encode(`bench: error: ${text}\n`));
    }
    code = error instanceof UsageError ? 2 : 1;
  } finally {
    await stopAll();
  }
  Deno.exit(interrupted ? 130 : code);
}
