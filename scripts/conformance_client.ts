/**
 * `deno run -A scripts/conformance_client.ts [OPTIONS]`: runs client scenarios of the official MCP
 * conformance suite (`npm:@modelcontextprotocol/conformance@0.1.16`) against mcp-proxy's client mode.
 * For each scenario the suite starts a test server and runs `tests/conformance/client_driver.ts URL`,
 * an SDK client that talks to the server through `main.ts URL` over stdio.
 *
 * Options:
 *
 * - `--runs N`: run every scenario N times (default 1), to catch timing-dependent failures;
 * - `--scenario NAME`: run this scenario only; repeatable (default: the five below);
 * - `--output DIR`: keep the suite's results there (per run and scenario: `checks.json`, the driver's
 *   `stdout.txt` and `stderr.txt` with the proxy's log, `conformance.log`); by default they go to a
 *   temporary directory, removed unless something failed.
 *
 * A scenario passes when the suite says so: no FAILURE and no WARNING check, and the driver exited 0
 * within the suite's 30 s. Prints one line per scenario and run, each failed or warning check, and a
 * summary; exit status 0 when every run passed, 1 otherwise, 2 for a malformed command line.
 *
 * The suite runs in a process group of its own, with everything it starts (the driver, the proxy); the
 * group is killed after 90 s, and on SIGINT or SIGTERM.
 *
 * @module
 */

import { say } from "./say.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const DRIVER = new URL("../tests/conformance/client_driver.ts", import.meta.url).pathname;
const DENO = Deno.execPath();
const CONFORMANCE = "npm:@modelcontextprotocol/conformance@0.1.16";

/** The scenarios of the client-mode acceptance criteria. */
const SCENARIOS = [
  "initialize",
  "tools_call",
  "sse-retry",
  "elicitation-sep1034-client-defaults",
  "auth/client-credentials-basic",
];

/** Bound on one run of the suite for one scenario (the suite gives the client 30 s). */
const SCENARIO_LIMIT_MS = 90_000;

const USAGE =
  "usage: deno run -A scripts/conformance_client.ts [--runs N] [--scenario NAME]... [--output DIR]";

const encoder = new TextEncoder();

function usageError(message: string): never {
  Deno.stderr.writeSync(encoder.encode(`conformance_client: ${message}\n${USAGE}\n`));
  Deno.exit(2);
}

interface Options {
  runs: number;
  scenarios: string[];
  output: string | undefined;
}

function parseOptions(args: string[]): Options {
  const options: Options = { runs: 1, scenarios: [], output: undefined };
  for (let i = 0; i < args.length; i++) {
    const equals = args[i].startsWith("--") ? args[i].indexOf("=") : -1;
    const name = equals === -1 ? args[i] : args[i].slice(0, equals);
    const value = () =>
      (equals === -1 ? args[++i] : args[i].slice(equals + 1)) ?? usageError(`${name} needs a value`);
    switch (name) {
      case "--runs": {
        const text = value();
        options.runs = Number(text);
        if (!Number.isInteger(options.runs) || options.runs < 1) {
          usageError(`--runs needs a positive integer, not "${text}"`);
        }
        break;
      }
      case "--scenario":
        options.scenarios.push(value());
        break;
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
  if (options.scenarios.length === 0) options.scenarios = SCENARIOS;
  return options;
}

// ---- one scenario ------------------------------------------------------------------------------

interface Check {
  id: string;
  status: string;
  description?: string;
  errorMessage?: string;
}

interface ScenarioRun {
  scenario: string;
  run: number;
  passed: boolean;
  checks: Check[];
  /** Why the suite failed the run besides its checks: timeout, the driver's exit status, no result. */
  problems: string[];
  seconds: number;
  /** The driver's stderr (with the proxy's log), for a run that failed. */
  clientLog: string;
}

/** The `checks.json` the suite wrote somewhere under `dir` (`auth/…` scenarios nest a directory). */
async function findChecks(dir: string): Promise<string | undefined> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isFile && entry.name === "checks.json") return path;
    if (entry.isDirectory) {
      const found = await findChecks(path);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function signalGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}

/** The suite's process group while one runs: what an interruption must stop. */
let running: number | undefined;
/** Set by SIGINT or SIGTERM. */
let interrupted = false;

/** Runs the suite for `scenario`; its results go to `dir`. */
async function runScenario(scenario: string, run: number, dir: string): Promise<ScenarioRun> {
  await Deno.mkdir(dir, { recursive: true });
  const started = performance.now();
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      "--frozen",
      "-A",
      CONFORMANCE,
      "client",
      "--command",
      `${DENO} run -A --quiet ${DRIVER}`,
      "--scenario",
      scenario,
      "-o",
      dir,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  running = child.pid;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(child.pid, "SIGKILL");
  }, SCENARIO_LIMIT_MS);
  const output = await child.output().finally(() => clearTimeout(timer));
  // Whatever the suite left behind (it kills only the shell it ran the driver in, on its timeout).
  signalGroup(child.pid, "SIGKILL");
  running = undefined;
  const log = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  await Deno.writeTextFile(`${dir}/conformance.log`, log);

  const result: ScenarioRun = {
    scenario,
    run,
    passed: false,
    checks: [],
    problems: [],
    seconds: 0,
    clientLog: "",
  };
  const checksFile = await findChecks(dir);
  if (checksFile !== undefined) {
    result.checks = JSON.parse(await Deno.readTextFile(checksFile));
    result.clientLog = await Deno.readTextFile(checksFile.replace(/checks\.json$/, "stderr.txt"))
      .catch(() => "");
  }
  if (interrupted) result.problems.push("interrupted by a signal");
  else if (timedOut) result.problems.push(`the suite did not finish in ${SCENARIO_LIMIT_MS / 1000} s`);
  else if (checksFile === undefined) result.problems.push(`the suite wrote no checks.json`);
  if (log.includes("CLIENT TIMED OUT")) result.problems.push("the driver timed out (30 s)");
  const exited = /CLIENT EXITED WITH ERROR \(code (-?\d+)\)/.exec(log);
  if (exited !== null) result.problems.push(`the driver exited with status ${exited[1]}`);
  result.passed = output.code === 0 && !timedOut && checksFile !== undefined;
  if (!result.passed && result.problems.length === 0 && !result.checks.some(isProblem)) {
    result.problems.push(`the suite exited with status ${output.code}`);
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

function isProblem(check: Check): boolean {
  return check.status === "FAILURE" || check.status === "WARNING";
}

function count(checks: Check[], status: string): number {
  return checks.filter((check) => check.status === status).length;
}

function printRun(result: ScenarioRun, runs: number): void {
  const { checks } = result;
  say(
    `${result.passed ? "PASS" : "FAIL"}  ${result.scenario} (run ${result.run}/${runs}): ` +
      `${count(checks, "SUCCESS")} passed, ${count(checks, "FAILURE")} failed, ` +
      `${count(checks, "WARNING")} warnings (${result.seconds.toFixed(1)} s)`,
  );
  for (const check of checks.filter(isProblem)) {
    say(`      ${check.status.padEnd(8)} ${check.id}: ${check.errorMessage ?? check.description ?? ""}`);
  }
  for (const problem of result.problems) say(`      FAILURE  ${problem}`);
  if (!result.passed && result.clientLog !== "") {
    say("      driver and proxy log:");
    for (const line of result.clientLog.trimEnd().split("\n")) say(`        ${line}`);
  }
}

// ---- main --------------------------------------------------------------------------------------

const options = parseOptions(Deno.args);
if (/\s/.test(DENO + DRIVER)) {
  // The suite splits --command at every space, quotes or not.
  say(`conformance_client: the paths of deno and the driver must not contain spaces: ${DENO} ${DRIVER}`);
  Deno.exit(1);
}
const outputDir = options.output ?? await Deno.makeTempDir({ prefix: "mcp-proxy-conformance-client-" });

const onSignal = () => {
  interrupted = true;
  if (running !== undefined) signalGroup(running, "SIGKILL");
};
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, onSignal);

say(`MCP conformance (${CONFORMANCE}), client scenarios, against mcp-proxy's client mode`);
const results: ScenarioRun[] = [];
for (let run = 1; run <= options.runs && !interrupted; run++) {
  for (const scenario of options.scenarios) {
    if (interrupted) break;
    const dir = `${outputDir}/run-${run}/${scenario.replaceAll("/", "_")}`;
    const result = await runScenario(scenario, run, dir);
    results.push(result);
    printRun(result, options.runs);
  }
}
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.removeSignalListener(signal, onSignal);

say();
say("scenario passes per run");
const width = Math.max(...options.scenarios.map((scenario) => scenario.length));
for (const scenario of options.scenarios) {
  const mine = results.filter((result) => result.scenario === scenario);
  const passes = mine.filter((result) => result.passed).length;
  say(`  ${scenario.padEnd(width)}  ${passes}/${mine.length}`);
}
const complete = results.length === options.runs * options.scenarios.length;
const passed = complete && results.every((result) => result.passed);
say();
say(
  passed
    ? "conformance_client: every scenario passed"
    : `conformance_client: ${results.filter((result) => !result.passed).length} failed run(s)` +
      (complete ? "" : ", interrupted"),
);
if (passed && options.output === undefined) await Deno.remove(outputDir, { recursive: true });
else say(`results kept in ${outputDir}`);
Deno.exit(passed ? 0 : interrupted ? 130 : 1);
