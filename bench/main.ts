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
 * Installed peers (supergateway, the npm mcp-proxy, mcp-remote) get rows of their own, and with `--floor`
 * so does the least an HTTP → stdio relay can do (`bench/minimal_server_relay.ts`). Every answer is
 * checked: a wrong or missing one stops the run with an error. There are no timing assertions: the table
 * says which of the issue's targets are met.
 *
 * ```sh
 * deno run -A bench/main.ts [--quick] [--json FILE] [--cases a,b,c,d,e,f] [--floor] [--cpu-prof DIR]
 *                           [--proxy-v8-flags FLAGS]
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
/** The stdio echo server, as every path starts it. */
const ECHO_COMMAND = [DENO, "run", "--quiet", "--no-config", ECHO_STDIO];

const USAGE = `usage: deno run -A bench/main.ts [--quick] [--json FILE] [--cases a,b,c,d,e,f] [--floor]
                                 [--cpu-prof DIR] [--proxy-v8-flags FLAGS]

  --quick          a smaller run (under a minute)
  --json FILE      also write the raw numbers to FILE
  --cases LIST     run only these cases (default: all; CPU per call comes with a and b)
  --floor          add rows for the least an HTTP → stdio relay can do (bench/minimal_server_relay.ts)
  --cpu-prof DIR   run mcp-proxy with --cpu-prof, writing its profiles to DIR
  --proxy-v8-flags FLAGS
                   mcp-proxy's --v8-flags (default: the shipped ones, ${V8_FLAGS.join(",")}; "" for none)
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
  /** Whether the minimal relay (`bench/minimal_server_relay.ts`) gets rows, as the floor. */
  floor: boolean;
  jsonFile?: string;
  cpuProfDir?: string;
  /** `--v8-flags` of the proxy's deno; by default the ones it ships with. */
  proxyV8Flags: string;
}

class UsageError extends Error {}

function parseArgs(args: string[]): Settings | "help" {
  let quick = false;
  let floor = false;
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
    concurrentRounds: 3,
    largeIterations: quick ? 10 : 50,
    largeWarmup: quick ? 2 : 3,
    starts: quick ? 3 : 5,
    openSessions: 64,
    cases,
    floor,
    jsonFile,
    cpuProfDir,
    proxyV8Flags,
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

/** Something that serves a remote HTTP server over stdio: mcp-proxy's client mode, or a peer. */
interface ClientSystem {
  label: string;
  peer: boolean;
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
    ) => [DENO, ["run", "-A", ...profileFlags(settings), MAIN, "--port", `${port}`, "--", ...ECHO_COMMAND]],
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
        ...ECHO_COMMAND,
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
        ) => [peer.bin, ["--stdio", shellJoin(ECHO_COMMAND), "--port", `${port}`, "--logLevel", "none"]],
      });
    } else if (peer.name === "mcp-proxy") {
      systems.push({
        label: peer.label,
        peer: true,
        transports: ["/mcp", "/sse"],
        command: (port) => [peer.bin, ["--port", `${port}`, "--", ...ECHO_COMMAND]],
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

/** How {@link measurePath} gets its sessions. */
interface SessionSource {
  /** A session for (a), (c) and (f). */
  open(): Promise<McpChannel>;
  /** The sessions of (b), one per worker (the same one several times: requests in flight on one). */
  openMany(): Promise<McpChannel[]>;
  /** Whether the sessions are made for the case and closed after it (not one shared session). */
  owned: boolean;
}

/**
 * (a), (b), (c), (f) on sessions of `sessions`; the CPU time per call of `cpuPid`, and in (b) also of
 * the whole path: this process, `cpuPid`, its descendants and `alsoOnPath`. A wrong or missing
 * answer stops the run, except on a peer's path (`peer`): there the case is recorded as failed, and the
 * run goes on.
 */
async function measurePath(
  settings: Settings,
  label: string,
  cpuPid: number,
  sessions: SessionSource,
  peer = false,
  alsoOnPath: number[] = [],
): Promise<PathResults> {
  const results: PathResults = {};
  const where = { label, cpuPid, alsoOnPath };
  if (!peer) return await measureCases(settings, where, sessions, results, settings.cases);
  for (const letter of CASES) {
    if (!settings.cases.has(letter) || ["d", "e"].includes(letter)) continue;
    try {
      await measureCases(settings, where, sessions, results, new Set([letter]));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      (results.failures ??= {})[letter] = message;
      progress(`${label}: (${letter}) failed: ${message}`);
    }
  }
  return results;
}

async function measureCases(
  settings: Settings,
  { label, cpuPid, alsoOnPath }: { label: string; cpuPid: number; alsoOnPath: number[] },
  sessions: SessionSource,
  results: PathResults,
  cases: Set<Case>,
): Promise<PathResults> {
  if (cases.has("a") || cases.has("c") || cases.has("f")) {
    const channel = await sessions.open();
    if (cases.has("a")) {
      progress(`${label}: (a) ${settings.sequentialCalls} sequential 1 KiB calls`);
      let cpuBefore = 0;
      const samples = await sequentialLatencies(
        channel,
        settings.sequentialCalls,
        settings.sequentialWarmup,
        () => cpuBefore = cpuMicros(cpuPid),
      );
      results.sequentialCpuMicros = (cpuMicros(cpuPid) - cpuBefore) / settings.sequentialCalls;
      results.sequential = latencies(samples);
    }
    if (cases.has("c")) {
      progress(`${label}: (c) ${settings.largeIterations} × 1 MiB request and answer`);
      results.largeEcho = latencies(
        await largeLatencies(channel, "echo", settings.largeIterations, settings.largeWarmup),
      );
    }
    if (cases.has("f")) {
      progress(`${label}: (f) ${settings.largeIterations} × 1 MiB answer`);
      results.largeAnswer = latencies(
        await largeLatencies(channel, "blob", settings.largeIterations, settings.largeWarmup),
      );
    }
    if (sessions.owned) await channel.close();
  }
  if (cases.has("b")) {
    progress(
      `${label}: (b) ${settings.concurrentRounds} rounds of ${settings.sessions} × ${settings.callsPerSession} ` +
        "concurrent 1 KiB calls",
    );
    const channels = await sessions.openMany();
    const pathPids = [Deno.pid, cpuPid, ...descendantsOf(cpuPid), ...alsoOnPath];
    const pathCpu = () => pathPids.reduce((sum, pid) => sum + cpuMicros(pid), 0);
    let cpuBefore = 0;
    let pathCpuBefore = 0;
    const throughput = await concurrentThroughput(
      channels,
      settings.callsPerSession,
      settings.warmupPerSession,
      settings.concurrentRounds,
      () => {
        cpuBefore = cpuMicros(cpuPid);
        pathCpuBefore = pathCpu();
      },
    );
    const calls = throughput.calls * settings.concurrentRounds;
    results.concurrentCpuMicros = (cpuMicros(cpuPid) - cpuBefore) / calls;
    results.concurrentPathCpuMicros = (pathCpu() - pathCpuBefore) / calls;
    results.concurrent = throughput;
    if (sessions.owned) await Promise.all(channels.map((channel) => channel.close()));
  }
  return results;
}

function spawnEchoServer(name: string): TrackedProcess {
  return spawnTracked(name, ECHO_COMMAND[0], ECHO_COMMAND.slice(1), { stdin: "piped", stdout: "piped" });
}

/** One session for everything; (b) runs its workers on it at once. */
function sharedSession(settings: Settings, channel: McpChannel): SessionSource {
  return {
    open: () => Promise.resolve(channel),
    openMany: () => Promise.resolve(Array.from({ length: settings.sessions }, () => channel)),
    owned: false,
  };
}

async function measureDirectStdio(settings: Settings): Promise<PathResults> {
  const server = spawnEchoServer("echo server (direct)");
  const channel = new StdioChannel("direct stdio", server);
  await initialize(channel);
  const results = await measurePath(settings, "direct stdio", server.pid, sharedSession(settings, channel));
  await channel.close();
  await stopTracked(server);
  return results;
}

async function openSession(system: ServerSystem, transport: Transport, base: string): Promise<McpChannel> {
  const label = `${system.label} ${transport}`;
  const channel = transport === "/mcp"
    ? new StreamableHttpChannel(label, `${base}/mcp`)
    : await LegacySseChannel.open(label, `${base}/sse`);
  await initialize(channel);
  return channel;
}

function startServerSystem(system: ServerSystem, port: number): TrackedProcess {
  const [command, args] = system.command(port);
  return spawnTracked(system.label, command, args);
}

async function measureServerSystem(
  settings: Settings,
  system: ServerSystem,
): Promise<Record<string, PathResults>> {
  const port = freePort();
  const process = startServerSystem(system, port);
  await waitForPort(port, process);
  const base = `http://127.0.0.1:${port}`;
  const results: Record<string, PathResults> = {};
  for (const transport of system.transports) {
    const open = () => openSession(system, transport, base);
    results[`${system.label} ${transport}`] = await measurePath(
      settings,
      `${system.label} ${transport}`,
      process.pid,
      {
        open,
        openMany: () => Promise.all(Array.from({ length: settings.sessions }, open)),
        owned: true,
      },
      system.peer,
    );
  }
  await stopTracked(process);
  return results;
}

async function measureClientSystems(
  settings: Settings,
  systems: ClientSystem[],
): Promise<Record<string, PathResults>> {
  const { process: server, url } = await startEchoHttpServer();
  const results: Record<string, PathResults> = {};

  const direct = new StreamableHttpChannel("direct HTTP", url);
  await initialize(direct);
  results["direct HTTP"] = await measurePath(
    settings,
    "direct HTTP",
    server.pid,
    sharedSession(settings, direct),
  );
  await direct.close();

  for (const system of systems) {
    const [command, args] = system.command(url);
    const process = spawnTracked(system.label, command, args, {
      stdin: "piped",
      stdout: "piped",
      env: system.env,
    });
    const channel = new StdioChannel(system.label, process);
    await initialize(channel);
    results[system.label] = await measurePath(
      settings,
      system.label,
      process.pid,
      sharedSession(settings, channel),
      system.peer,
      [server.pid],
    );
    await channel.close();
    await stopTracked(process);
  }
  await stopTracked(server);
  return results;
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
    const server = spawnEchoServer("echo server (start)");
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
      await stopTracked(last.process);
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
  await stopTracked(process);
  return results;
}

// ---- the table ------------------------------------------------------------------------------------

interface Measurements {
  paths: Record<string, PathResults>;
  starts: Record<string, StartResults>;
}

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
      target: system.peer ? "peer" : `≤ ${CLIENT_P50_TARGET.toFixed(2)}× direct HTTP`,
      met: system.peer ? undefined : r <= CLIENT_P50_TARGET,
    });
    rows.push({
      case: `(a) 1 KiB ×${n} p99 · ${system.label}`,
      direct: `${ms(directHttp.sequential.p99)} (HTTP)`,
      proxy: ms(path.p99),
      ratio: ratio(path.p99, directHttp.sequential.p99),
      target: system.peer ? "peer" : "—",
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
      target: system.peer ? "peer" : `≥ ${CLIENT_THROUGHPUT_TARGET.toFixed(2)}× direct HTTP`,
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
        target: system.peer ? "peer" : "—",
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
    ...clients.map((system) => ({ key: system.label, floor: false })),
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
    "marked HTTP); (b) direct: 16 requests in flight on one session.",
    "- ratio: proxy / direct. (a) latency is a full round trip, answer stream read to its end.",
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
      m.paths["direct stdio"] = await measureDirectStdio(settings);
      for (const system of servers) Object.assign(m.paths, await measureServerSystem(settings, system));
    }
    if (cases.has("a") || cases.has("b")) {
      Object.assign(m.paths, await measureClientSystems(settings, clients));
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
