/**
 * `deno task soak [options]`: a bounded soak of server mode, at most `--seconds` (default 110); not
 * run in CI.
 *
 * It starts mcp-proxy in front of `tests/fixtures/fixture_server.ts` (with `--restart-delay 0.2
 * --restart-delay-max 0.5`: the backoff only starts over after a child ran 30 s, so with the default
 * maximum of 30 s a child killed every 3 s would soon be down most of the time), warms it up, and records
 * the proxy's footprint: resident memory (VmRSS of its deno process), open file descriptors, and the
 * number of processes in its subtree. Then it opens and closes `--sessions` sessions (default 1000;
 * Streamable HTTP and legacy SSE, alternately) and makes `--calls` echo calls (default 50,000) across
 * them, `--concurrency` in flight (default 32, two per session), spread over the time available (or as
 * fast as they go with `--fast`), while the child is killed with SIGKILL every `--kill-every` seconds
 * (default 3). Every call must be answered, with the right echo or with a JSON-RPC error; a call without
 * an answer within 30 s is LOST. At the end, with everything closed and the child running again, the
 * footprint is measured again.
 *
 * Pass/fail rules, all of which must hold:
 * - no call lost, no wrong echo, no HTTP failure (a status other than the protocol's, or a dropped
 *   connection), every session opened and closed, and all the calls and sessions done in time;
 * - RSS after a forced garbage collection at most 10% above the baseline's;
 * - open fds at most max(10%, +3) above the baseline, and processes at most max(10%, +1) above it: the
 *   counts are small, and the child is a new process with new pipes;
 * - a fresh session gets its echo at the end, and no process of the proxy's subtree outlives it.
 *
 * The baseline is taken after a warm-up (`--warmup` calls, default 2000, then one child kill and 500 more
 * calls): a cold deno has not compiled its hot paths (the restart path included) nor sized its heap yet. The garbage collection is forced through the
 * proxy's V8 inspector (the proxy runs with `--inspect` on a loopback port), because V8 collects lazily:
 * idle RSS says more about when V8 last collected than about what the proxy keeps. The cold figures,
 * idle RSS and the V8 heap in use are printed as well, and RSS split into its private part (`RssAnon`,
 * what the process allocated) and its file-backed part (`RssFile`, mostly pages of the deno executable,
 * which grows as more of deno's code runs: a warm-up does not reach all of it). The proxy runs with the V8 flags it ships with
 * (`scripts/permissions.ts`); `--proxy-v8-flags FLAGS` replaces them (`""`: none), e.g. to see how much of
 * the RSS is V8's young generation.
 *
 * Exits 0 when everything passed, 1 otherwise, 130 on Ctrl-C (after stopping the proxy).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { decodeEventStream } from "../src/client/server_sent_events.ts";
import { V8_FLAGS } from "./permissions.ts";
import { say } from "./say.ts";

const DENO = Deno.execPath();
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const FIXTURE = new URL("../tests/fixtures/fixture_server.ts", import.meta.url).pathname;
const PROTOCOL_VERSION = "2025-11-25";
const CALL_TIMEOUT_MS = 30_000;
/** Time kept at the end of `--seconds` for closing, restarting, idling and measuring. */
const END_PHASE_MS = 12_000;
const IDLE_MS = 5_000;
/** Calls in the warm-up after its child kill. */
const WARMUP_CALLS_AFTER_KILL = 500;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function positive(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!(value > 0)) throw new Error(`--${name} must be a positive number, not ${JSON.stringify(text)}`);
  return value;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

// ---- footprint -------------------------------------------------------------------------------------

/** What the proxy holds: memory, descriptors, processes. */
interface Footprint {
  rssKb: number;
  /** The private part of RSS (`RssAnon`): what the process allocated. */
  anonKb: number;
  /** The file-backed part of RSS (`RssFile`): mostly pages of the deno executable, paged in as run. */
  fileKb: number;
  /** V8 heap in use after a forced garbage collection; undefined when no collection was forced. */
  heapKb?: number;
  fds: number;
  processes: number;
}

/** Parent pid of every process, from field 4 of /proc/PID/stat. */
function parentsOfAll(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z") parents.set(Number(entry.name), Number(fields[1]));
    } catch {
      // It exited while we looked.
    }
  }
  return parents;
}

/** `pid` and all its living descendants. */
function subtree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const [child, parent] of parentsOfAll()) {
    children.set(parent, [...children.get(parent) ?? [], child]);
  }
  const found = [pid];
  for (let i = 0; i < found.length; i++) found.push(...children.get(found[i]) ?? []);
  return found;
}

function footprint(pid: number, heapKb?: number): Footprint {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
  const anonKb = Number(/^RssAnon:\s+(\d+) kB/m.exec(status)?.[1]);
  const fileKb = Number(/^RssFile:\s+(\d+) kB/m.exec(status)?.[1]);
  const fds = [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
  return { rssKb, anonKb, fileKb, heapKb, fds, processes: subtree(pid).length };
}

/**
 * Makes the proxy collect its garbage, through its V8 inspector (`--inspect`), and returns the heap in
 * use afterwards, in KiB. V8 collects lazily: a process left idle keeps the garbage of its last burst,
 * and RSS measured then says more about when V8 last collected than about what the proxy keeps.
 */
async function collectGarbage(inspectPort: number): Promise<number> {
  const targets = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
  const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
  const answers = new Map<number, (result: Record<string, number>) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    answers.get(message.id)?.(message.result);
  };
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let nextId = 0;
  const call = (method: string) =>
    new Promise<Record<string, number>>((resolve) => {
      const id = ++nextId;
      answers.set(id, resolve);
      socket.send(JSON.stringify({ id, method }));
    });
  try {
    // Twice: the first collection's finalizers may free more.
    await call("HeapProfiler.collectGarbage");
    await call("HeapProfiler.collectGarbage");
    return Math.round((await call("Runtime.getHeapUsage")).usedSize / 1024);
  } finally {
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.close();
    await closed;
  }
}

// ---- sessions --------------------------------------------------------------------------------------

/** How one call ended. */
type Outcome =
  | { kind: "ok" }
  | { kind: "error"; code: number }
  | { kind: "lost" }
  | { kind: "wrong"; detail: string }
  | { kind: "http"; detail: string };

/** One client session, over either transport. */
interface SoakSession {
  call(id: number, text: string): Promise<Outcome>;
  close(): Promise<void>;
}

interface JsonRpcAnswer {
  id?: unknown;
  result?: { content?: { text?: string }[] };
  error?: { code: number; message: string };
}

function initializeMessage(id: number) {
  return {
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: "mcp-proxy-soak", version: "1.0.0" },
    },
  };
}

function echoMessage(id: number, text: string) {
  return { jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { text } } };
}

const INITIALIZED = JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" });

/** Judges an answer to `echo(text)`. */
function judge(answer: JsonRpcAnswer, text: string): Outcome {
  if (answer.error !== undefined && typeof answer.error.code === "number") {
    return { kind: "error", code: answer.error.code };
  }
  const echoed = answer.result?.content?.[0]?.text;
  if (echoed === text) return { kind: "ok" };
  return { kind: "wrong", detail: `expected ${text}, got ${JSON.stringify(answer).slice(0, 200)}` };
}

function isTimeout(error: unknown): boolean {
  return error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError");
}

/** The answer with `id` in a POST response: JSON, or an SSE stream that carries it. */
async function answerIn(response: Response, id: number): Promise<JsonRpcAnswer | undefined> {
  if (response.headers.get("content-type")?.startsWith("application/json")) {
    return await response.json() as JsonRpcAnswer;
  }
  let found: JsonRpcAnswer | undefined;
  for await (const event of decodeEventStream(response.body!)) {
    if (event.data === "") continue;
    const message = JSON.parse(event.data) as JsonRpcAnswer;
    if (message.id === id) found = message;
  }
  return found;
}

/** Streamable HTTP: `initialize` POST, then one POST per call, DELETE at the end. */
async function openStreamable(origin: string, client: Deno.HttpClient): Promise<SoakSession> {
  const url = `${origin}/mcp`;
  const headers: Record<string, string> = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
  };
  const signal = AbortSignal.timeout(CALL_TIMEOUT_MS);
  const init = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify(initializeMessage(0)),
    client,
    signal,
  });
  const sessionId = init.headers.get("mcp-session-id");
  const answer = init.status === 200 ? await answerIn(init, 0) : (await init.body?.cancel(), undefined);
  if (sessionId === null || answer?.result === undefined) {
    throw new Error(`initialize over /mcp: HTTP ${init.status}, ${JSON.stringify(answer)}`);
  }
  headers["Mcp-Session-Id"] = sessionId;
  headers["MCP-Protocol-Version"] = PROTOCOL_VERSION;
  const notified = await fetch(url, { method: "POST", headers, body: INITIALIZED, client, signal });
  await notified.body?.cancel();
  if (notified.status !== 202) {
    throw new Error(`notifications/initialized over /mcp: HTTP ${notified.status}`);
  }

  return {
    async call(id, text) {
      try {
        const response = await fetch(url, {
          method: "POST",
          headers,
          body: JSON.stringify(echoMessage(id, text)),
          client,
          signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
        });
        if (response.status !== 200) {
          return { kind: "http", detail: `POST /mcp: HTTP ${response.status} ${await response.text()}` };
        }
        const answer = await answerIn(response, id);
        if (answer === undefined) {
          return { kind: "http", detail: `POST /mcp: the stream ended without answer ${id}` };
        }
        return judge(answer, text);
      } catch (error) {
        if (isTimeout(error)) return { kind: "lost" };
        return { kind: "http", detail: `POST /mcp: ${error}` };
      }
    },
    async close() {
      const response = await fetch(url, {
        method: "DELETE",
        headers,
        client,
        signal: AbortSignal.timeout(10_000),
      });
      await response.body?.cancel();
      if (response.status !== 200) throw new Error(`DELETE /mcp: HTTP ${response.status}`);
    },
  };
}

/** Legacy SSE: a GET stream that carries every answer, and a POST per message. */
async function openLegacySse(origin: string, client: Deno.HttpClient): Promise<SoakSession> {
  const abort = new AbortController();
  // The time limit applies to opening the stream, up to its first event; the stream then stays open.
  const opening = setTimeout(() => abort.abort(), CALL_TIMEOUT_MS);
  const stream = await fetch(`${origin}/sse`, { client, signal: abort.signal }).finally(() => {
    clearTimeout(opening);
  });
  if (stream.status !== 200) {
    await stream.body?.cancel();
    throw new Error(`GET /sse: HTTP ${stream.status}`);
  }
  const events = decodeEventStream(stream.body!).getReader();
  const firstTimer = setTimeout(() => abort.abort(), CALL_TIMEOUT_MS);
  const first = await events.read().finally(() => clearTimeout(firstTimer));
  if (first.done || first.value.event !== "endpoint") {
    abort.abort();
    await events.cancel().catch(() => {});
    throw new Error(`GET /sse: the first event is not "endpoint" but ${JSON.stringify(first.value)}`);
  }
  const endpoint = new URL(first.value.data, origin).href;
  const waiting = new Map<number, (answer: JsonRpcAnswer | undefined) => void>();
  let ended = false;
  const pump = (async () => {
    try {
      for (let next = await events.read(); !next.done; next = await events.read()) {
        if (next.value.event !== "message") continue;
        const message = JSON.parse(next.value.data) as JsonRpcAnswer;
        if (typeof message.id === "number") waiting.get(message.id)?.(message);
      }
    } catch {
      // Aborted by close().
    }
    ended = true;
    for (const resolve of waiting.values()) resolve(undefined);
  })();

  const post = async (body: string): Promise<string | undefined> => {
    try {
      const response = await fetch(endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
        client,
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
      const text = await response.text();
      return response.status === 202 ? undefined : `POST /messages/: HTTP ${response.status} ${text}`;
    } catch (error) {
      return `POST /messages/: ${error}`;
    }
  };
  /** Sends a request and waits for its answer on the stream; "lost" after the time limit. */
  const request = async (id: number, body: string): Promise<JsonRpcAnswer | "lost" | string> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = new Promise<JsonRpcAnswer | "lost" | undefined>((resolve) => {
      waiting.set(id, resolve);
      timer = setTimeout(() => resolve("lost"), CALL_TIMEOUT_MS);
    });
    try {
      if (ended) return "the SSE stream ended";
      const refused = await post(body);
      if (refused !== undefined) return refused;
      return await answer ?? "the SSE stream ended before the answer";
    } finally {
      clearTimeout(timer);
      waiting.delete(id);
    }
  };

  const initialized = await request(0, JSON.stringify(initializeMessage(0)));
  const problem = typeof initialized === "string"
    ? initialized
    : initialized.result === undefined
    ? JSON.stringify(initialized)
    : await post(INITIALIZED);
  if (problem !== undefined) {
    abort.abort();
    await pump;
    throw new Error(`initialize over /sse: ${problem}`);
  }

  return {
    async call(id, text) {
      const answer = await request(id, JSON.stringify(echoMessage(id, text)));
      if (answer === "lost") return { kind: "lost" };
      if (typeof answer === "string") return { kind: "http", detail: answer };
      return judge(answer, text);
    },
    async close() {
      abort.abort();
      await events.cancel().catch(() => {});
      await pump;
    },
  };
}

// ---- the run ---------------------------------------------------------------------------------------

/** What happened, for the report. */
class Tally {
  ok = 0;
  errors = 0;
  lost = 0;
  wrong = 0;
  httpFailures = 0;
  sessionsOpened = 0;
  sessionsClosed = 0;
  sessionFailures = 0;
  errorCodes = new Map<number, number>();
  /** The first few failures, word for word. */
  details: string[] = [];

  get answered(): number {
    return this.ok + this.errors;
  }

  count(outcome: Outcome): void {
    switch (outcome.kind) {
      case "ok":
        this.ok++;
        return;
      case "error":
        this.errors++;
        this.errorCodes.set(outcome.code, (this.errorCodes.get(outcome.code) ?? 0) + 1);
        return;
      case "lost":
        this.lost++;
        this.note("a call was lost (no answer within 30 s)");
        return;
      case "wrong":
        this.wrong++;
        this.note(outcome.detail);
        return;
      case "http":
        this.httpFailures++;
        this.note(outcome.detail);
    }
  }

  note(detail: string): void {
    if (this.details.length < 10) this.details.push(detail);
  }
}

interface Workload {
  origin: string;
  client: Deno.HttpClient;
  sessions: number;
  calls: number;
  concurrency: number;
  deadline: number;
  /** When set, call number k starts no earlier than `start + k * intervalMs`. */
  pace?: { start: number; intervalMs: number };
  tally: Tally;
  /** Labels the echo texts, so that warm-up and soak answers cannot be mixed up. */
  label: string;
}

/**
 * Opens `sessions` sessions, `concurrency / 2` at a time (the even ones over Streamable HTTP, the odd
 * ones over SSE), and makes `calls` echo calls spread evenly across them, two in flight per session.
 */
async function runWorkload(work: Workload): Promise<void> {
  const { tally } = work;
  const perSession = Math.floor(work.calls / work.sessions);
  const extra = work.calls % work.sessions;
  let nextSession = 0;
  let started = 0;

  const runSession = async (index: number) => {
    const open = index % 2 === 0 ? openStreamable : openLegacySse;
    let session: SoakSession;
    try {
      session = await open(work.origin, work.client);
    } catch (error) {
      tally.sessionFailures++;
      tally.note(`session ${index}: ${error}`);
      return;
    }
    tally.sessionsOpened++;
    const calls = perSession + (index < extra ? 1 : 0);
    let nextCall = 0;
    const chain = async () => {
      while (nextCall < calls && Date.now() < work.deadline) {
        const id = ++nextCall;
        if (work.pace !== undefined) {
          const wait = work.pace.start + started++ * work.pace.intervalMs - Date.now();
          if (wait > 0) await sleep(wait);
        }
        const outcome = await session.call(id, `${work.label}-${index}-${id}-${Math.random()}`);
        tally.count(outcome);
        // A client told that the server is restarting waits a moment before its next call.
        if (outcome.kind === "error") await sleep(20);
      }
    };
    await Promise.all([chain(), chain()]);
    try {
      await session.close();
      tally.sessionsClosed++;
    } catch (error) {
      tally.sessionFailures++;
      tally.note(`closing session ${index}: ${error}`);
    }
  };

  const worker = async () => {
    while (nextSession < work.sessions && Date.now() < work.deadline) await runSession(nextSession++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.floor(work.concurrency / 2)) }, worker));
}

interface ServerReport {
  state: string;
  pid: number | null;
  restarts: number;
  sessions: number;
}

async function serverStatus(origin: string, client: Deno.HttpClient): Promise<ServerReport> {
  const response = await fetch(`${origin}/status`, { client, signal: AbortSignal.timeout(10_000) });
  const body = await response.json();
  return body.servers.default as ServerReport;
}

async function waitUntil(what: string, deadline: number, probe: () => Promise<boolean>): Promise<void> {
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(100);
  }
}

/** Kills the child every `everyMs` while it runs, until `stop` is aborted; returns the number of kills. */
async function killChildRepeatedly(
  origin: string,
  client: Deno.HttpClient,
  everyMs: number,
  stop: AbortSignal,
): Promise<{ kills: number; skipped: number }> {
  let kills = 0;
  let skipped = 0;
  while (!stop.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, everyMs);
      stop.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    if (stop.aborted) break;
    const status = await serverStatus(origin, client).catch(() => undefined);
    if (status?.state !== "running" || status.pid === null) {
      skipped++;
      continue;
    }
    try {
      Deno.kill(status.pid, "SIGKILL");
      kills++;
    } catch {
      skipped++;
    }
  }
  return { kills, skipped };
}

function percent(start: number, end: number): string {
  const delta = (end - start) / start * 100;
  return `${delta >= 0 ? "+" : ""}${delta.toFixed(1)}%`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) =>
    row.map((cell, column) => column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))
      .join("  ")
  );
}

/** The command line of the soak. */
interface SoakOptions {
  seconds: number;
  sessions: number;
  calls: number;
  concurrency: number;
  killEveryMs: number;
  warmupCalls: number;
  /** Run the calls as fast as they go, instead of spread over the time available. */
  fast: boolean;
  /** `--restart-delay-max` for the proxy. */
  restartDelayMax: string;
  /** `--v8-flags` for the proxy's deno (by default the shipped ones); "": none. */
  proxyV8Flags: string;
}

function parseOptions(args: string[]): SoakOptions {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string" },
      sessions: { type: "string" },
      calls: { type: "string" },
      concurrency: { type: "string" },
      "kill-every": { type: "string" },
      warmup: { type: "string" },
      fast: { type: "boolean" },
      "restart-delay-max": { type: "string" },
      "proxy-v8-flags": { type: "string" },
    },
  });
  return {
    seconds: positive("seconds", values.seconds, 110),
    sessions: positive("sessions", values.sessions, 1000),
    calls: positive("calls", values.calls, 50_000),
    concurrency: positive("concurrency", values.concurrency, 32),
    killEveryMs: positive("kill-every", values["kill-every"], 3) * 1000,
    warmupCalls: positive("warmup", values.warmup, 2000),
    fast: values.fast ?? false,
    restartDelayMax: String(positive("restart-delay-max", values["restart-delay-max"], 0.5)),
    proxyV8Flags: values["proxy-v8-flags"] ?? V8_FLAGS.join(","),
  };
}

/** The proxy under test, its log, and every pid seen in its subtree. */
interface ProxyUnderTest {
  origin: string;
  pid: number;
  inspectPort: number;
  readonly exited: boolean;
  seenPids: Set<number>;
  logTail(): string;
  /** Lines `was initialized again` in the log: restarts that completed. */
  reinitializations(): number;
  stop(): Promise<void>;
}

function startProxy(options: SoakOptions): ProxyUnderTest {
  const port = freePort();
  const inspectPort = freePort();
  const args = [
    "run",
    "-A",
    "--quiet",
    `--inspect=127.0.0.1:${inspectPort}`,
    ...(options.proxyV8Flags === "" ? [] : [`--v8-flags=${options.proxyV8Flags}`]),
    MAIN,
    "--port",
    String(port),
    "--restart-delay",
    "0.2",
    "--restart-delay-max",
    options.restartDelayMax,
    "--",
    DENO,
    "run",
    "-A",
    "--quiet",
    FIXTURE,
  ];
  say(`proxy: deno ${args.join(" ")}`);
  const child = new Deno.Command(DENO, { args, stdin: "null", stdout: "null", stderr: "piped" }).spawn();
  let tail = "";
  let reinitializations = 0;
  const reading = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      reinitializations += text.match(/was initialized again/g)?.length ?? 0;
      tail = (tail + text).slice(-4000);
    }
  })();
  let exited = false;
  const status = child.status.then(() => {
    exited = true;
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    pid: child.pid,
    inspectPort,
    get exited() {
      return exited;
    },
    seenPids: new Set([child.pid]),
    logTail: () => tail,
    reinitializations: () => reinitializations,
    async stop() {
      if (!exited) child.kill("SIGTERM");
      const timer = setTimeout(() => !exited && child.kill("SIGKILL"), 8000);
      await status;
      clearTimeout(timer);
      await reading;
    },
  };
}

/** Footprints of one run: cold, before the soak, after it; idle and after a forced GC. */
interface Measurements {
  cold?: Footprint;
  baselineIdle?: Footprint;
  baseline?: Footprint;
  endIdle?: Footprint;
  end?: Footprint;
}

/** Idle footprint, then the footprint after a forced GC. */
async function measure(proxy: ProxyUnderTest): Promise<[Footprint, Footprint]> {
  const idle = footprint(proxy.pid);
  const heapKb = await collectGarbage(proxy.inspectPort);
  await sleep(500);
  return [idle, footprint(proxy.pid, heapKb)];
}

/** What the report needs beyond the tally. */
interface Outcomes {
  kills: { kills: number; skipped: number };
  restarts?: number;
  soakMs: number;
  finalCheck: string;
}

async function soak(
  options: SoakOptions,
  proxy: ProxyUnderTest,
  tally: Tally,
  measured: Measurements,
  failures: string[],
): Promise<Outcomes> {
  const started = Date.now();
  const budgetEnd = started + options.seconds * 1000;
  const { origin } = proxy;
  const control = Deno.createHttpClient({});
  const outcomes: Outcomes = { kills: { kills: 0, skipped: 0 }, soakMs: 0, finalCheck: "not made" };
  try {
    await waitUntil("the proxy serves", started + 30_000, async () => {
      if (proxy.exited) throw new Error(`the proxy exited:\n${proxy.logTail()}`);
      return (await serverStatus(origin, control)).state === "running";
    });
    await sleep(500);
    measured.cold = footprint(proxy.pid);

    // Warm-up: both transports; then the restart path once, as the soak takes it again and again (the
    // child killed, restarted, re-initialized, called again); then idle, and the baseline.
    const warmupClient = Deno.createHttpClient({});
    const warmup = new Tally();
    const warmupRound = (calls: number) =>
      runWorkload({
        origin,
        client: warmupClient,
        sessions: Math.max(2, Math.round(calls / 50)),
        calls,
        concurrency: options.concurrency,
        deadline: started + 45_000,
        tally: warmup,
        label: "warmup",
      });
    await warmupRound(options.warmupCalls);
    const { pid: warmupPid } = await serverStatus(origin, control);
    const reinitialized = proxy.reinitializations();
    if (warmupPid !== null) Deno.kill(warmupPid, "SIGKILL");
    await waitUntil(
      "the child is initialized again after the warm-up kill",
      Date.now() + 10_000,
      async () => {
        const status = await serverStatus(origin, control);
        return status.state === "running" && proxy.reinitializations() > reinitialized;
      },
    );
    await warmupRound(WARMUP_CALLS_AFTER_KILL);
    warmupClient.close();
    const warmupCalls = options.warmupCalls + WARMUP_CALLS_AFTER_KILL;
    if (warmup.ok !== warmupCalls) failures.push(`warm-up: only ${warmup.ok} of ${warmupCalls} calls ok`);
    const warmupRestarts = (await serverStatus(origin, control)).restarts;
    await sleep(IDLE_MS);
    [measured.baselineIdle, measured.baseline] = await measure(proxy);
    for (const pid of subtree(proxy.pid)) proxy.seenPids.add(pid);

    // The soak, spread over the time left (unless --fast), while the child is killed again and again.
    const soakStart = Date.now();
    const deadline = budgetEnd - END_PHASE_MS;
    const client = Deno.createHttpClient({});
    const stopKilling = new AbortController();
    const killing = killChildRepeatedly(origin, control, options.killEveryMs, stopKilling.signal);
    const pidWatch = setInterval(() => {
      for (const pid of subtree(proxy.pid)) proxy.seenPids.add(pid);
    }, 500);
    await runWorkload({
      origin,
      client,
      sessions: options.sessions,
      calls: options.calls,
      concurrency: options.concurrency,
      deadline,
      pace: options.fast
        ? undefined
        : { start: soakStart, intervalMs: (deadline - soakStart) * 0.85 / options.calls },
      tally,
      label: "soak",
    });
    stopKilling.abort();
    outcomes.kills = await killing;
    clearInterval(pidWatch);
    outcomes.soakMs = Date.now() - soakStart;
    client.close();

    // Everything closed: the child runs again, the sessions are gone; idle, then measure.
    await waitUntil("the child runs again and no session is open", Date.now() + 10_000, async () => {
      const status = await serverStatus(origin, control);
      return status.state === "running" && status.sessions === 0;
    }).catch((error) => failures.push(String(error)));
    await sleep(IDLE_MS);
    outcomes.restarts = (await serverStatus(origin, control)).restarts - warmupRestarts;
    control.close();
    [measured.endIdle, measured.end] = await measure(proxy);

    // A fresh session still works (on a client of its own, closed before the proxy stops).
    const checkClient = Deno.createHttpClient({});
    try {
      const session = await openStreamable(origin, checkClient);
      const outcome = await session.call(1, "still here");
      await session.close();
      outcomes.finalCheck = outcome.kind === "ok" ? "ok" : JSON.stringify(outcome);
    } catch (error) {
      outcomes.finalCheck = String(error);
    } finally {
      checkClient.close();
    }
  } catch (error) {
    failures.push(`the soak stopped: ${error instanceof Error ? error.message : error}`);
  }
  return outcomes;
}

/** Checks the rules of the module documentation; prints the tables; returns the exit status. */
function report(
  options: SoakOptions,
  tally: Tally,
  measured: Measurements,
  outcomes: Outcomes,
  survivors: number[],
  elapsedMs: number,
  failures: string[],
): number {
  if (tally.lost > 0) failures.push(`${tally.lost} calls lost`);
  if (tally.wrong > 0) failures.push(`${tally.wrong} calls got a wrong echo`);
  if (tally.httpFailures > 0) failures.push(`${tally.httpFailures} calls failed at the HTTP level`);
  if (tally.sessionFailures > 0) failures.push(`${tally.sessionFailures} sessions failed to open or close`);
  if (tally.sessionsOpened < options.sessions) {
    failures.push(`only ${tally.sessionsOpened} of ${options.sessions} sessions opened in time`);
  }
  const made = tally.answered + tally.lost + tally.wrong + tally.httpFailures;
  if (made < options.calls) failures.push(`only ${made} of ${options.calls} calls made in time`);
  if (outcomes.kills.kills === 0) failures.push("the child was never killed");
  if (outcomes.finalCheck !== "ok") {
    failures.push(`a fresh session's echo at the end: ${outcomes.finalCheck}`);
  }
  if (survivors.length > 0) failures.push(`processes left running after the proxy stopped: ${survivors}`);

  say();
  const { cold, baselineIdle, baseline, endIdle, end } = measured;
  if (cold && baselineIdle && baseline && endIdle && end) {
    const rows = [["", "cold", "baseline", "end", "delta", "limit", "verdict"]];
    const row = (name: string, start: number, finish: number, cold?: number, limit?: number) => {
      const ok = limit === undefined || finish <= limit;
      if (!ok) failures.push(`${name}: ${finish} at the end, over the limit ${Math.floor(limit!)}`);
      rows.push([
        name,
        cold === undefined ? "" : String(cold),
        String(start),
        String(finish),
        percent(start, finish),
        limit === undefined ? "" : `≤ ${Math.floor(limit)}`,
        limit === undefined ? "(info)" : ok ? "ok" : "FAIL",
      ]);
    };
    row("RSS idle, KiB", baselineIdle.rssKb, endIdle.rssKb, cold.rssKb);
    row("RSS after GC, KiB", baseline.rssKb, end.rssKb, undefined, baseline.rssKb * 1.1);
    row("  of it private (RssAnon)", baseline.anonKb, end.anonKb);
    row("  of it file-backed (RssFile)", baseline.fileKb, end.fileKb);
    row("V8 heap after GC, KiB", baseline.heapKb!, end.heapKb!);
    row("open fds", baseline.fds, end.fds, cold.fds, Math.max(baseline.fds * 1.1, baseline.fds + 3));
    row(
      "processes",
      baseline.processes,
      end.processes,
      cold.processes,
      Math.max(baseline.processes * 1.1, baseline.processes + 1),
    );
    for (const line of table(rows)) say(line);
    say();
  }
  const codes = [...tally.errorCodes].map(([code, count]) => `${code} ×${count}`).join(", ");
  const seconds = outcomes.soakMs / 1000;
  const figures = [
    ["calls answered", `${tally.answered} of ${options.calls}`],
    ["  with the right echo", String(tally.ok)],
    ["  with a JSON-RPC error", `${tally.errors}${codes ? ` (${codes})` : ""}`],
    ["  lost", String(tally.lost)],
    ["  wrong echo", String(tally.wrong)],
    ["  HTTP failures", String(tally.httpFailures)],
    ["sessions opened / closed", `${tally.sessionsOpened} / ${tally.sessionsClosed} of ${options.sessions}`],
    ["session failures", String(tally.sessionFailures)],
    ["child kills (skipped: not running)", `${outcomes.kills.kills} (${outcomes.kills.skipped})`],
    ["restarts (/status)", String(outcomes.restarts ?? "?")],
    ["soak phase", `${seconds.toFixed(1)} s, ${Math.round(made / seconds)} calls/s`],
    ["whole run", `${(elapsedMs / 1000).toFixed(1)} s`],
    ["fresh session at the end", outcomes.finalCheck],
  ];
  for (const line of table(figures)) say(line);
  for (const detail of tally.details) say(`  - ${detail}`);
  say();
  if (failures.length === 0) {
    say("PASS");
    return 0;
  }
  for (const failure of failures) say(`FAIL: ${failure}`);
  return 1;
}

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  const started = Date.now();
  say(
    `mcp-proxy soak: ${options.sessions} sessions, ${options.calls} calls, ${options.concurrency} in flight, ` +
      `the child killed every ${options.killEveryMs / 1000} s, at most ${options.seconds} s`,
  );
  const proxy = startProxy(options);
  const onInterrupt = () => {
    say("\ninterrupted: stopping the proxy");
    proxy.stop().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  const tally = new Tally();
  const measured: Measurements = {};
  const failures: string[] = [];
  let outcomes: Outcomes;
  try {
    outcomes = await soak(options, proxy, tally, measured, failures);
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await proxy.stop();
  }
  const survivors = [...proxy.seenPids].filter((pid) => parentsOfAll().has(pid));
  const status = report(options, tally, measured, outcomes, survivors, Date.now() - started, failures);
  if (status !== 0) say(`\nthe end of the proxy's log:\n${proxy.logTail()}`);
  return status;
}

Deno.exit(await main());
