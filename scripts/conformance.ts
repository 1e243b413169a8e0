/**
 * `deno task conformance [OPTIONS] [-- PROXY OPTIONS]`: runs the server scenarios of the official MCP
 * conformance suite (`npm:@modelcontextprotocol/conformance@0.1.16`) against mcp-proxy, in two
 * configurations, each with `tests/fixtures/conformance_server.ts` at the end:
 *
 * - (a) server mode: the proxy's `/mcp` in front of the fixture over stdio;
 * - (b) a chain: proxy A (server mode) in front of proxy B (client mode, A's child), which talks to
 *   proxy C (server mode) serving the fixture over Streamable HTTP; the suite runs against A's `/mcp`.
 *
 * Options:
 *
 * - `--runs N`: repeat everything N times (default 1);
 * - `--only a|b`: run one configuration;
 * - `--suite active|all|pending`: the suite's scenario selection (default `active`, as the suite's own
 *   default; `pending` holds `json-schema-2020-12` and `server-sse-polling`);
 * - `--timeout-seconds N`: bound on the whole run (default 300);
 * - `--output DIR`: keep every result there (the suite's `checks.json` per scenario, its output, the
 *   proxies' logs); by default they go to a temporary directory, removed unless something failed.
 *
 * PROXY OPTIONS after `--` are given to every proxy in server mode (A and C).
 *
 * Prints, per configuration and run, one summary line, then each FAILURE, WARNING and notable INFO
 * check; at the end a table of passed/failed/warning checks per scenario. Exit status: 0 when no check
 * failed, 1 otherwise (a timeout too), 2 for a malformed command line.
 *
 * The suite runs with network access to the proxy's port only: a scenario that tries to reach anything
 * else fails with "Requires net access", which is reported.
 *
 * Every process started here leads its own process group; it and everything it started (found in
 * `/proc` before it is stopped) are stopped at the end, on a timeout, and on SIGINT or SIGTERM.
 *
 * @module
 */

import { say } from "./say.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const FIXTURE = new URL("../tests/fixtures/conformance_server.ts", import.meta.url).pathname;
const DENO = Deno.execPath();
const CONFORMANCE = "npm:@modelcontextprotocol/conformance@0.1.16";

const USAGE =
  "usage: deno task conformance [--runs N] [--only a|b] [--suite active|all|pending] [--timeout-seconds N] " +
  "[--output DIR] [-- PROXY OPTIONS]";

/** Transport traces of the suite: INFO checks not worth listing. */
const TRACE_CHECKS = new Set([
  "outgoing-request",
  "incoming-response",
  "incoming-sse-event",
  "stream-closed",
]);

const encoder = new TextEncoder();

function usageError(message: string): never {
  Deno.stderr.writeSync(encoder.encode(`conformance: ${message}\n${USAGE}\n`));
  Deno.exit(2);
}

interface Options {
  runs: number;
  only: "a" | "b" | undefined;
  suite: string;
  timeoutSeconds: number;
  output: string | undefined;
  proxyOptions: string[];
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    runs: 1,
    only: undefined,
    suite: "active",
    timeoutSeconds: 300,
    output: undefined,
    proxyOptions: [],
  };
  const positiveInteger = (name: string, value: string | undefined): number => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < 1) {
      usageError(`${name} needs a positive integer, not "${value}"`);
    }
    return number;
  };
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].startsWith("--") && args[i].includes("=")
      ? [args[i].slice(0, args[i].indexOf("=")), args[i].slice(args[i].indexOf("=") + 1)]
      : [args[i], undefined];
    const value = () => inline ?? args[++i] ?? usageError(`${name} needs a value`);
    switch (name) {
      case "--":
        options.proxyOptions = args.slice(i + 1);
        return options;
      case "--runs":
        options.runs = positiveInteger(name, value());
        break;
      case "--timeout-seconds":
        options.timeoutSeconds = positiveInteger(name, value());
        break;
      case "--only": {
        const only = value();
        if (only !== "a" && only !== "b") usageError(`--only takes a or b, not "${only}"`);
        options.only = only;
        break;
      }
      case "--suite": {
        const suite = value();
        if (!["active", "all", "pending"].includes(suite)) {
          usageError(`--suite takes active, all or pending, not "${suite}"`);
        }
        options.suite = suite;
        break;
      }
      case "--output":
        options.output = value();
        break;
      case "-h":
      case "--help":
        say(USAGE);
        Deno.exit(0);
        break;
      default:
        usageError(`unknown argument "${args[i]}"`);
    }
  }
  return options;
}

// ---- processes ---------------------------------------------------------------------------------

/** Field 22 of /proc/PID/stat (start time): tells a process from a later one with the same pid. */
function processIdentity(pid: number): { ppid: number; start: string } | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") return undefined;
    return { ppid: Number(fields[1]), start: fields[19] };
  } catch {
    return undefined;
  }
}

/** Every living descendant of `pid` (Linux only; elsewhere none are found). */
function descendants(pid: number): { pid: number; start: string }[] {
  const children = new Map<number, { pid: number; start: string }[]>();
  try {
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      const identity = processIdentity(Number(entry.name));
      if (identity === undefined) continue;
      const list = children.get(identity.ppid) ?? [];
      list.push({ pid: Number(entry.name), start: identity.start });
      children.set(identity.ppid, list);
    }
  } catch {
    return [];
  }
  const found: { pid: number; start: string }[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

function signalGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A child process in its own process group, its stdout and stderr written to `logFile`. */
class GroupProcess {
  readonly #child: Deno.ChildProcess;
  readonly #logging: Promise<void>;
  #exited = false;
  readonly status: Promise<Deno.CommandStatus>;
  #stopping: Promise<void> | undefined;

  constructor(args: string[], logFile: string, env?: Record<string, string>) {
    this.#child = new Deno.Command(DENO, {
      args,
      cwd: ROOT,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: Deno.build.os !== "windows",
    }).spawn();
    const file = Deno.openSync(logFile, { write: true, create: true, append: true });
    const writer = file.writable.getWriter();
    let chain = Promise.resolve();
    const copy = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) chain = chain.then(() => writer.write(chunk)).catch(() => {});
    };
    this.#logging = Promise.all([copy(this.#child.stdout), copy(this.#child.stderr)])
      .then(() => chain)
      .finally(() => writer.close().catch(() => {}));
    this.status = this.#child.status.then((status) => {
      this.#exited = true;
      return status;
    });
    live.add(this);
  }

  get pid(): number {
    return this.#child.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Resolves once the process exited and its output is in the log file. */
  async finished(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await this.#logging;
    live.delete(this);
    return status;
  }

  /**
   * SIGTERM to its group, SIGKILL to the group after 5 s; then SIGKILL to every descendant it had
   * (servers it started lead process groups of their own) that is still there.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const family = descendants(this.pid);
      if (!this.#exited) {
        if (Deno.build.os === "windows") this.#child.kill("SIGTERM");
        else signalGroup(this.pid, "SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const killed = new Promise<void>((resolve) =>
          timer = setTimeout(() => {
            signalGroup(this.pid, "SIGKILL");
            resolve();
          }, 5000)
        );
        await Promise.race([this.status, killed]);
        clearTimeout(timer);
      }
      signalGroup(this.pid, "SIGKILL");
      await delay(50);
      for (const { pid, start } of family) {
        if (processIdentity(pid)?.start !== start) continue;
        signalGroup(pid, "SIGKILL");
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone meanwhile.
        }
      }
      await this.finished();
    })();
    return this.#stopping;
  }
}

/** Every process started and not yet finished: what an interruption must stop. */
const live = new Set<GroupProcess>();

/** Aborted on the overall timeout or on SIGINT/SIGTERM; its reason says which. */
const cancel = new AbortController();

class Cancelled extends Error {}

/** Waits for `promise`, or throws {@link Cancelled} once the run is cancelled. */
function unlessCancelled<T>(promise: Promise<T>): Promise<T> {
  const signal = cancel.signal;
  if (signal.aborted) return Promise.reject(new Cancelled(String(signal.reason)));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Cancelled(String(signal.reason)));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function answersStatus(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(2000) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** Starts mcp-proxy in server mode on `port` and waits until it serves. */
async function startProxy(
  label: string,
  port: number,
  args: string[],
  logFile: string,
): Promise<GroupProcess> {
  const proxy = new GroupProcess(
    ["run", "-A", "--quiet", MAIN, "--port", String(port), ...args],
    logFile,
  );
  const deadline = Date.now() + 60_000;
  while (!(await unlessCancelled(answersStatus(port)))) {
    if (proxy.exited || Date.now() > deadline) {
      await proxy.stop();
      const log = await Deno.readTextFile(logFile).catch(() => "");
      throw new Error(
        `proxy ${label} did not serve on port ${port} (${proxy.exited ? "it exited" : "60 s"}):\n${log}`,
      );
    }
    await unlessCancelled(delay(100));
  }
  return proxy;
}

// ---- results -----------------------------------------------------------------------------------

interface Check {
  id: string;
  name?: string;
  description?: string;
  status: string;
  errorMessage?: string;
  details?: { message?: unknown };
}

interface ScenarioResult {
  scenario: string;
  checks: Check[];
}

interface ConfigurationResult {
  config: "a" | "b";
  run: number;
  scenarios: ScenarioResult[];
  /** Failures of the run itself (proxy start, the suite's exit status, timeout). */
  problems: string[];
  seconds: number;
  dir: string;
}

function count(checks: Check[], status: string): number {
  return checks.filter((check) => check.status === status).length;
}

/**
 * The scenarios of one suite run: from the summary on its stdout (`✓ NAME: N passed, M failed`), with
 * their checks from `DIR/server-NAME-TIMESTAMP/checks.json`. A scenario that failed without writing
 * checks (it threw) gets one FAILURE check saying so.
 */
async function readResults(dir: string, stdout: string): Promise<ScenarioResult[]> {
  const checks = new Map<string, Check[]>();
  for await (const entry of Deno.readDir(dir)) {
    const scenario = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(entry.name)?.[1];
    if (!entry.isDirectory || scenario === undefined) continue;
    try {
      checks.set(scenario, JSON.parse(await Deno.readTextFile(`${dir}/${entry.name}/checks.json`)));
    } catch {
      // No checks.json: handled with the summary below.
    }
  }
  const results: ScenarioResult[] = [];
  for (const match of stdout.matchAll(/^[✓✗] (\S+): (\d+) passed, (\d+) failed$/gm)) {
    const [, scenario, , failed] = match;
    const found = checks.get(scenario);
    checks.delete(scenario);
    if (found !== undefined) results.push({ scenario, checks: found });
    else if (Number(failed) > 0) {
      results.push({
        scenario,
        checks: [{
          id: scenario,
          status: "FAILURE",
          errorMessage: "the scenario threw: see conformance.log",
        }],
      });
    } else results.push({ scenario, checks: [] });
  }
  for (const [scenario, found] of checks) results.push({ scenario, checks: found });
  return results;
}

const DESCRIPTIONS = {
  a: "proxy → fixture over stdio",
  b: "proxy → proxy (client mode) → proxy → fixture",
};

function printConfiguration(result: ConfigurationResult, runs: number): void {
  const all = result.scenarios.flatMap((scenario) => scenario.checks);
  const failed = count(all, "FAILURE") + result.problems.length;
  say(
    `(${result.config}) ${DESCRIPTIONS[result.config]}, run ${result.run}/${runs}: ` +
      `${result.scenarios.length} scenarios, ${count(all, "SUCCESS")} passed, ${failed} failed, ` +
      `${count(all, "WARNING")} warnings (${result.seconds.toFixed(1)} s)  ${failed === 0 ? "PASS" : "FAIL"}`,
  );
  for (const problem of result.problems) say(`    FAILURE  ${problem}`);
  for (const { scenario, checks } of result.scenarios) {
    for (const check of checks) {
      if (check.status === "SUCCESS" || (check.status === "INFO" && TRACE_CHECKS.has(check.id))) continue;
      const message = typeof check.details?.message === "string" ? check.details.message : undefined;
      const why = check.errorMessage ?? message ?? check.description ?? "";
      say(`    ${check.status.padEnd(8)} ${scenario} / ${check.id}: ${why}`);
    }
  }
}

function printTable(results: ConfigurationResult[]): void {
  if (results.every((result) => result.scenarios.length === 0)) return;
  const columns = results.map((result) => `(${result.config})#${result.run}`);
  const scenarios = [...new Set(results.flatMap((result) => result.scenarios.map((s) => s.scenario)))];
  const width = Math.max(8, ...scenarios.map((scenario) => scenario.length));
  say();
  say(`passed/failed/warnings per scenario`);
  say(`${"scenario".padEnd(width)}  ${columns.map((column) => column.padStart(9)).join(" ")}`);
  for (const scenario of scenarios) {
    const cells = results.map((result) => {
      const checks = result.scenarios.find((s) => s.scenario === scenario)?.checks;
      if (checks === undefined) return "-".padStart(9);
      return `${count(checks, "SUCCESS")}/${count(checks, "FAILURE")}/${count(checks, "WARNING")}`.padStart(
        9,
      );
    });
    say(`${scenario.padEnd(width)}  ${cells.join(" ")}`);
  }
}

// ---- one configuration -------------------------------------------------------------------------

/** Runs the suite against `url`; its output goes to `dir/conformance.log`. */
async function runSuite(url: string, suite: string, dir: string): Promise<{ code: number; stdout: string }> {
  const port = new URL(url).port;
  const logFile = `${dir}/conformance.log`;
  const runner = new GroupProcess(
    [
      "run",
      "--frozen",
      "--no-prompt",
      `--allow-net=127.0.0.1:${port}`,
      "--allow-read",
      `--allow-write=${dir}`,
      "--allow-env",
      "--allow-sys",
      CONFORMANCE,
      "server",
      "--url",
      url,
      "--suite",
      suite,
      "-o",
      dir,
    ],
    logFile,
    { NO_COLOR: "1" },
  );
  try {
    const status = await unlessCancelled(runner.finished());
    return { code: status.code, stdout: await Deno.readTextFile(logFile) };
  } finally {
    await runner.stop();
  }
}

async function runConfiguration(
  config: "a" | "b",
  run: number,
  options: Options,
  dir: string,
): Promise<ConfigurationResult> {
  await Deno.mkdir(dir, { recursive: true });
  const started = performance.now();
  const result: ConfigurationResult = { config, run, scenarios: [], problems: [], seconds: 0, dir };
  const denoDir = Deno.env.get("DENO_DIR");
  const childEnv = denoDir === undefined ? [] : ["-e", "DENO_DIR", denoDir];
  const fixture = [DENO, "run", "-A", FIXTURE];
  const proxies: GroupProcess[] = [];
  try {
    const port = freePort();
    if (config === "a") {
      proxies.push(
        await startProxy(
          "a",
          port,
          [...options.proxyOptions, ...childEnv, "--", ...fixture],
          `${dir}/proxy.log`,
        ),
      );
    } else {
      const inner = freePort();
      proxies.push(
        await startProxy(
          "c",
          inner,
          [...options.proxyOptions, ...childEnv, "--", ...fixture],
          `${dir}/proxy-c.log`,
        ),
      );
      const client = [DENO, "run", "-A", MAIN, `http://127.0.0.1:${inner}/mcp`];
      proxies.push(
        await startProxy(
          "a",
          port,
          [...options.proxyOptions, ...childEnv, "--", ...client],
          `${dir}/proxy-a.log`,
        ),
      );
    }
    const { code, stdout } = await runSuite(`http://127.0.0.1:${port}/mcp`, options.suite, dir);
    result.scenarios = await readResults(dir, stdout);
    const failed = result.scenarios.some((scenario) => count(scenario.checks, "FAILURE") > 0);
    if (code !== 0 && !failed) {
      result.problems.push(`the suite exited with status ${code}: see ${dir}/conformance.log`);
    }
    if (!/^Total: \d+ passed, \d+ failed$/m.test(stdout)) {
      result.problems.push(`the suite printed no summary: see ${dir}/conformance.log`);
    }
    for (const line of stdout.split("\n").filter((line) => line.includes("Requires net access"))) {
      result.problems.push(`the suite tried to reach beyond the proxy: ${line.trim()}`);
    }
  } catch (error) {
    if (error instanceof Cancelled) result.problems.push(`cancelled: ${error.message}`);
    else result.problems.push(error instanceof Error ? error.message : String(error));
  } finally {
    for (const proxy of proxies.reverse()) await proxy.stop();
    result.seconds = (performance.now() - started) / 1000;
  }
  return result;
}

// ---- main --------------------------------------------------------------------------------------

const options = parseOptions(Deno.args);
const outputDir = options.output ?? await Deno.makeTempDir({ prefix: "mcp-proxy-conformance-" });
await Deno.mkdir(outputDir, { recursive: true });

const timer = setTimeout(
  () => cancel.abort(`the overall limit of ${options.timeoutSeconds} s (--timeout-seconds) was reached`),
  options.timeoutSeconds * 1000,
);
const onSignal = (signal: Deno.Signal) => () => cancel.abort(`interrupted by ${signal}`);
const signalHandlers = (["SIGINT", "SIGTERM"] as const).map((signal) => {
  const handler = onSignal(signal);
  Deno.addSignalListener(signal, handler);
  return { signal, handler };
});

const configs: ("a" | "b")[] = options.only === undefined ? ["a", "b"] : [options.only];
const results: ConfigurationResult[] = [];
say(`MCP conformance (${CONFORMANCE}, suite ${options.suite}) against mcp-proxy; results in ${outputDir}`);
for (let run = 1; run <= options.runs && !cancel.signal.aborted; run++) {
  for (const config of configs) {
    if (cancel.signal.aborted) break;
    const result = await runConfiguration(config, run, options, `${outputDir}/run-${run}-${config}`);
    results.push(result);
    printConfiguration(result, options.runs);
  }
}
if (cancel.signal.aborted && results.length < options.runs * configs.length) {
  say(`stopped early: ${cancel.signal.reason}`);
}
await Promise.all([...live].map((process) => process.stop()));
clearTimeout(timer);
for (const { signal, handler } of signalHandlers) Deno.removeSignalListener(signal, handler);

printTable(results);
const failures = results.reduce(
  (sum, result) =>
    sum + result.problems.length +
    result.scenarios.reduce((inner, scenario) => inner + count(scenario.checks, "FAILURE"), 0),
  0,
);
const complete = results.length === options.runs * configs.length;
const passed = failures === 0 && complete;
say();
say(
  passed
    ? "conformance: no check failed"
    : `conformance: ${failures} failed check(s)${complete ? "" : ", incomplete"}`,
);
if (passed && options.output === undefined) await Deno.remove(outputDir, { recursive: true });
else say(`results kept in ${outputDir}`);
Deno.exit(passed ? 0 : cancel.signal.reason?.toString().startsWith("interrupted") ? 130 : 1);
