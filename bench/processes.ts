/**
 * The processes a benchmark run starts: each leads a process group of its own, is remembered until it
 * is stopped, and is stopped with everything it started (its descendants, found in `/proc`, may lead
 * groups of their own, as the proxy's children do). Also what `/proc` says about a process: resident
 * memory and CPU time.
 *
 * @module
 */

/** A process started by {@link spawnTracked}. */
export interface TrackedProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: Deno.ChildProcess;
  /** The last 16 KiB the process wrote to stderr (when stderr is captured). */
  stderrTail(): string;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
}

/** Options of {@link spawnTracked}. */
export interface SpawnOptions {
  stdin?: "piped" | "null";
  stdout?: "piped" | "null";
  /** Captured by default (its tail is kept for error messages). */
  stderr?: "piped" | "null";
  env?: Record<string, string>;
  cwd?: string;
}

const TAIL_BYTES = 16 * 1024;
const decoder = new TextDecoder();
const running = new Set<TrackedProcess>();
let closed = false;

async function keepTail(stream: ReadableStream<Uint8Array>, sink: { text: string }): Promise<void> {
  try {
    for await (const chunk of stream) {
      sink.text += decoder.decode(chunk, { stream: true });
      if (sink.text.length > 2 * TAIL_BYTES) sink.text = sink.text.slice(-TAIL_BYTES);
    }
  } catch {
    // The process is gone.
  }
}

/** Starts `command` as the leader of a new process group, and remembers it until it is stopped. */
export function spawnTracked(
  name: string,
  command: string,
  args: string[],
  options: SpawnOptions = {},
): TrackedProcess {
  if (closed) throw new Error(`not starting ${name}: the run is being stopped`);
  const stderrMode = options.stderr ?? "piped";
  const child = new Deno.Command(command, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin ?? "null",
    stdout: options.stdout ?? "null",
    stderr: stderrMode,
    detached: true,
  }).spawn();
  const tail = { text: "" };
  if (stderrMode === "piped") keepTail(child.stderr, tail);
  let exited = false;
  const status = child.status.then((status) => {
    exited = true;
    return status;
  });
  const tracked: TrackedProcess = {
    name,
    pid: child.pid,
    child,
    stderrTail: () => tail.text.slice(-TAIL_BYTES),
    get exited() {
      return exited;
    },
    status,
  };
  running.add(tracked);
  return tracked;
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // After the command name in parentheses: state, then the parent's pid.
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** The pids of every live descendant of `pid`, from `/proc`. */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const child = Number(entry.name);
    const parent = parentOf(child);
    if (parent === undefined) continue;
    const list = children.get(parent);
    if (list === undefined) children.set(parent, [child]);
    else list.push(child);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function signal(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Stops `process` and what it started: SIGTERM to it (it may shut down its own children), up to
 * `graceMs` for it to exit, then SIGKILL to its group and to the group of every descendant seen.
 */
export async function stopTracked(process: TrackedProcess, graceMs = 3000): Promise<void> {
  if (!running.has(process)) return;
  const descendants = process.exited ? [] : descendantsOf(process.pid);
  signal(-process.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (!process.exited && Date.now() < deadline) await delay(10);
  signal(-process.pid, "SIGKILL");
  for (const pid of descendants) {
    signal(-pid, "SIGKILL");
    signal(pid, "SIGKILL");
  }
  await process.status;
  for (const release of [() => process.child.stdin.abort(), () => process.child.stdout.cancel()]) {
    try {
      await release();
    } catch {
      // Not piped, locked by a reader that ends with the process, or already closed.
    }
  }
  running.delete(process);
}

/**
 * Stops every process still running (at the end of a run, on an error, on Ctrl-C); no process can be
 * started after this was called.
 */
export async function stopAll(graceMs = 1000): Promise<void> {
  closed = true;
  await Promise.all([...running].map((process) => stopTracked(process, graceMs)));
}

/** Resident memory of `pid` in KiB (`VmRSS` of `/proc/PID/status`). */
export function residentKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

let ticksPerSecond: number | undefined;

/** Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`, 100 if that fails). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      const output = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped", stderr: "null" })
        .outputSync();
      ticksPerSecond = Number(decoder.decode(output.stdout).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** The resolution of {@link cpuMicros}, in µs: one clock tick. */
export function cpuTickMicros(): number {
  return 1e6 / clockTicks();
}

/** CPU time `pid` has used so far, user and system, every thread, in µs (`/proc/PID/stat` fields 14, 15). */
export function cpuMicros(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 1e6 / clockTicks();
}

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Resolves once something accepts connections on 127.0.0.1:`port`; throws if `process` exits first. */
export async function waitForPort(port: number, process: TrackedProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      const connection = await Deno.connect({ hostname: "127.0.0.1", port });
      connection.close();
      return;
    } catch {
      if (process.exited) {
        throw new Error(`${process.name} exited before listening on port ${port}:\n${process.stderrTail()}`);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `${process.name} did not listen on port ${port} in ${timeoutMs} ms:\n${process.stderrTail()}`,
        );
      }
      await delay(10);
    }
  }
}

/** The benchmark's HTTP echo server (`bench/echo_http_server.ts`), started and listening. */
export interface EchoHttpServer {
  process: TrackedProcess;
  /** Its MCP endpoint, `http://127.0.0.1:PORT/mcp`. */
  url: string;
}

/**
 * Starts `bench/echo_http_server.ts` on a free port (`eventStream`: answering with SSE streams); resolves
 * once it accepts connections.
 */
export async function startEchoHttpServer(eventStream = false): Promise<EchoHttpServer> {
  const port = freePort();
  const process = spawnTracked("echo HTTP server", Deno.execPath(), [
    "run",
    "--quiet",
    "--no-config",
    "--allow-net",
    new URL("./echo_http_server.ts", import.meta.url).pathname,
    "--port",
    `${port}`,
    ...(eventStream ? ["--event-stream"] : []),
  ]);
  await waitForPort(port, process);
  return { process, url: `http://127.0.0.1:${port}/mcp` };
}
