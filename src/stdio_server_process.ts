/**
 * A stdio MCP server as a child process: JSON-RPC messages in on stdin, out on stdout, one per line;
 * its stderr passed through to ours, line by line, prefixed with its name.
 *
 * The child leads its own process group, so that shutdown reaches whatever it started too: close its
 * stdin, give it time to exit, then SIGTERM the group, then SIGKILL it.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { StdioServerSpec } from "./cli/command_line.ts";
import { JsonLineWriter, readJsonLines } from "./json_lines.ts";
import {
  idOfTruncatedResponse,
  type JsonRpcMessage,
  type RequestId,
  truncatedMessageKind,
} from "./jsonrpc.ts";
import type { JsonText, LinePieces } from "./large_answer.ts";
import { type LineSink, LineSplitter } from "./line_splitter.ts";
import { serverStderrLogger } from "./logging.ts";
import {
  resolveWindowsCommand,
  windowsComspec,
  windowsKillTreeCommand,
  type WindowsSpawnPlan,
  windowsSpawnPlan,
} from "./windows_command.ts";

/** The child could not be started; `message` says why and what to do, in one line. */
export class SpawnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SpawnError";
  }
}

/** Options of {@link StdioServerProcess.spawn}. */
export interface StdioServerProcessOptions {
  spec: StdioServerSpec;
  /** The child's complete environment (nothing else is inherited). */
  env: Record<string, string>;
  /** Receives every message the child writes to stdout, in order, with its line (its JSON text). */
  onMessage(message: JsonRpcMessage, line: string): void;
  /**
   * Offered each line of `LARGE_ANSWER_BYTES` or more before it is decoded: true when it took the line
   * as it is; the line is then not given to `onMessage`. The bytes must be copied to be kept.
   */
  onLargeLine?(line: Uint8Array, noCarriageReturn?: boolean): boolean;
  /** Offered each long line while it streams in (see `JsonLinesHandlers.onLongLine`). */
  onLongLine?(start: Uint8Array): LineSink | undefined;
  /** An answer over `maxLineBytes` was dropped: `id` is its id, when it could be found. */
  onOversizeAnswer?(id: RequestId, bytes: number): void;
  /** A request of the child's over `maxLineBytes` was dropped: `id` is its id, as the child wrote it. */
  onOversizeRequest?(id: RequestId, bytes: number): void;
  /** A line that is an answer's but not a valid one (`why`) was dropped: `id` is its id. */
  onInvalidAnswer?(id: RequestId, why: string): void;
  logger: Logger;
  /** Longest line read from the child (a message or a stderr line), in bytes. */
  maxLineBytes: number;
  /**
   * True while the child has work already: a message to it may then wait for the end of the event
   * loop's turn, to be written with the others of that turn (see `JsonLineWriter`).
   */
  busy?: () => boolean;
}

const decoder = new TextDecoder();

function delay(ms: number): Promise<"timeout"> {
  return new Promise((resolve) => setTimeout(() => resolve("timeout"), ms));
}

/** Sends `signal` to the process group led by `pid`; false when no process of the group is left. */
function signalGroup(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

function describeSpawnFailure(spec: StdioServerSpec, error: unknown): string {
  const who = `server "${spec.name}"`;
  if (spec.cwd !== undefined) {
    try {
      if (!Deno.statSync(spec.cwd).isDirectory) {
        return `${who}: working directory ${spec.cwd} is not a directory`;
      }
    } catch {
      return `${who}: working directory ${spec.cwd} does not exist`;
    }
  }
  if (error instanceof Deno.errors.NotFound) {
    // A path is not looked up on PATH: the advice below would not help (found by QA).
    if (/[/\\]/.test(spec.command)) {
      // A file that is there, but whose `#!` interpreter is not, fails the same way (found in review).
      // A relative path is the child's: from its working directory.
      const path = spec.cwd !== undefined && !/^([/\\]|[A-Za-z]:)/.test(spec.command)
        ? `${spec.cwd}/${spec.command}`
        : spec.command;
      return isFile(path)
        ? `${who}: cannot start ${spec.command}: the interpreter its #! line names (or a library it needs) is not found`
        : `${who}: command not found: ${spec.command} (no such file)`;
    }
    // The child looks it up on the PATH it gets: mcp-proxy's own unless one is given for it.
    return `${who}: command not found: ${spec.command} is on no directory of the PATH it gets. Give its ` +
      `absolute path, or a PATH that has it (-e PATH … for the default server, "env" in a config file).`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `${who}: permission denied running ${spec.command}: is it executable?`;
  }
  return `${who}: cannot start ${spec.command}: ${error instanceof Error ? error.message : String(error)}`;
}

/**
 * Throws {@link SpawnError} when `spec.command` cannot be found: a path that is not an executable file,
 * or a name on no directory of `env.PATH`. For servers started later than the proxy (one per session).
 */
export function assertCommandExists(spec: StdioServerSpec, env: Record<string, string>): void {
  if (spec.cwd !== undefined && !isDirectory(spec.cwd)) {
    throw new SpawnError(describeSpawnFailure(spec, new Deno.errors.NotFound(spec.cwd)));
  }
  if (Deno.build.os === "windows") {
    windowsPlan(spec, env);
    return;
  }
  const base = spec.cwd ?? Deno.cwd();
  const candidates = spec.command.includes("/")
    ? [spec.command.startsWith("/") ? spec.command : `${base}/${spec.command}`]
    : (env.PATH ?? "").split(":").filter((dir) => dir !== "").map((dir) => `${dir}/${spec.command}`);
  // A file there that cannot run is named as such, as a spawn would: unless one further on can.
  let notExecutable = false;
  for (const candidate of candidates) {
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return;
      notExecutable = true;
    } catch {
      // Not there: try the next directory.
    }
  }
  const error = notExecutable
    ? new Deno.errors.PermissionDenied(spec.command)
    : new Deno.errors.NotFound(spec.command);
  throw new SpawnError(describeSpawnFailure(spec, error));
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * How to start `spec` on Windows, where Deno neither finds `.cmd`/`.bat` files through PATHEXT nor runs
 * them directly: such a file runs through `cmd.exe /d /s /c` with a quoted command line.
 */
function windowsPlan(spec: StdioServerSpec, env: Record<string, string>): WindowsSpawnPlan {
  const base = spec.cwd ?? Deno.cwd();
  const relative = /[\\/]/.test(spec.command) && !/^([a-zA-Z]:)?[\\/]/.test(spec.command);
  const command = relative ? `${base}\\${spec.command}` : spec.command;
  const resolved = resolveWindowsCommand(command, env, isFile);
  if (resolved === undefined) {
    throw new SpawnError(describeSpawnFailure(spec, new Deno.errors.NotFound(spec.command)));
  }
  try {
    return windowsSpawnPlan(resolved, spec.args, windowsComspec(Deno.env.toObject()));
  } catch (error) {
    throw new SpawnError(`server "${spec.name}": ${error instanceof Error ? error.message : error}`);
  }
}

/** Ends a process and everything it started, on Windows (no process groups there). */
async function windowsKillTree(pid: number): Promise<void> {
  const { command, args } = windowsKillTreeCommand(pid);
  try {
    await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output();
  } catch {
    // Gone already, or taskkill is missing: nothing more to do.
  }
}

/** A running stdio MCP server. Create it with {@link StdioServerProcess.spawn}. */
export class StdioServerProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves when the child has exited and everything it wrote to stdout was delivered. */
  readonly exited: Promise<Deno.CommandStatus>;
  readonly #stdin: JsonLineWriter;
  readonly #logger: Logger;
  #shutdown: Promise<void> | undefined;

  private constructor(child: Deno.ChildProcess, options: StdioServerProcessOptions) {
    this.name = options.spec.name;
    this.pid = child.pid;
    this.#logger = options.logger;
    this.#stdin = new JsonLineWriter(
      child.stdin,
      (error) => this.#logger.warn("cannot write to server {name}: {error}", { name: this.name, error }),
      options.busy === undefined ? undefined : { mayHold: options.busy },
    );
    const { maxLineBytes } = options;
    const stdoutDone = this.#readMessages(child.stdout, maxLineBytes, options);
    const stderrDone = this.#readStderr(child.stderr, maxLineBytes);
    // A child that closes its stdout can answer nothing more: if it does not exit with it, it is stopped,
    // so that it counts as gone (its calls get errors, it is restarted) rather than hang every call.
    stdoutDone.then(async () => {
      if (await within(child.status, 1000) || this.#shutdown !== undefined) return;
      this.#logger.error("server {name} closed its stdout but keeps running: stopping it", {
        name: this.name,
      });
      this.shutdown(0);
    });
    this.exited = (async () => {
      const status = await child.status;
      // Output written just before exit is routed before the exit is reported, unless a grandchild
      // holds the pipe open.
      await within(Promise.all([stdoutDone, stderrDone]), 250);
      return status;
    })();
  }

  /** Starts the server; throws {@link SpawnError} with a one-line explanation when it cannot. */
  static spawn(options: StdioServerProcessOptions): StdioServerProcess {
    const { spec } = options;
    const plan = Deno.build.os === "windows"
      ? windowsPlan(spec, options.env)
      : { command: spec.command, args: spec.args };
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(plan.command, {
        args: plan.args,
        windowsRawArguments: plan.windowsRawArguments,
        cwd: spec.cwd,
        env: options.env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        detached: Deno.build.os !== "windows",
      }).spawn();
    } catch (error) {
      throw new SpawnError(describeSpawnFailure(spec, error));
    }
    return new StdioServerProcess(child, options);
  }

  /**
   * Writes one message to the child's stdin (`json`, when given, is its JSON text on one line, or that
   * text's UTF-8 bytes, whole or in pieces, written as it is). Messages are written in the order of the
   * calls.
   */
  send(message: JsonRpcMessage, json?: JsonText | LinePieces): void {
    this.#stdin.write(message, json);
  }

  /** About how many bytes of messages wait for the child to read them. */
  get backlogBytes(): number {
    return this.#stdin.pendingBytes;
  }

  /**
   * Stops the child and everything it started: close its stdin, wait up to `graceMs` for it to exit,
   * then SIGTERM its process group, wait up to a second, then SIGKILL the group. Safe to call twice.
   */
  shutdown(graceMs = 2000): Promise<void> {
    this.#shutdown ??= this.#stop(graceMs);
    return this.#shutdown;
  }

  async #stop(graceMs: number): Promise<void> {
    this.#stdin.close();
    let exited = await within(this.exited, graceMs);
    if (Deno.build.os === "windows") {
      if (!exited) await windowsKillTree(this.pid);
    } else if (signalGroup(this.pid, "SIGTERM")) {
      // Only the child's own lingering is worth a line: what it left running is stopped silently.
      // Stopped at once (it closed its output, say): nothing lingered.
      if (!exited && graceMs > 0) {
        this.#logger.info(
          "server {name} (pid {pid}) did not exit within {seconds} s of its input closing: SIGTERM",
          {
            name: this.name,
            pid: this.pid,
            seconds: graceMs / 1000,
          },
        );
      }
      // SIGCONT is harmless and fails once the whole group is gone: use it to wait for the group.
      const deadline = Date.now() + 1000;
      while (Date.now() < deadline && signalGroup(this.pid, "SIGCONT")) await delay(25);
      if (signalGroup(this.pid, "SIGKILL")) {
        this.#logger.warn("server {name} (pid {pid}) or what it started outlived SIGTERM by 1 s: SIGKILL", {
          name: this.name,
          pid: this.pid,
        });
      }
    }
    exited = await within(this.exited, 2000);
    if (!exited) {
      this.#logger.error("server {name} (pid {pid}) did not exit", { name: this.name, pid: this.pid });
    }
  }

  /** Kills the child and its process group at once, without a grace period. */
  kill(): void {
    if (Deno.build.os === "windows") windowsKillTree(this.pid);
    else signalGroup(this.pid, "SIGKILL");
  }

  #readMessages(
    stdout: ReadableStream<Uint8Array>,
    maxLineBytes: number,
    { onMessage, onLargeLine, onLongLine, onOversizeAnswer, onOversizeRequest, onInvalidAnswer }:
      StdioServerProcessOptions,
  ): Promise<void> {
    const name = this.name;
    return readJsonLines(stdout, maxLineBytes, {
      onMessage,
      onLargeLine,
      onLongLine,
      onInvalid: (why, line, value) => {
        this.#logger.warn(
          "server {name} wrote a line that is not a JSON-RPC message ({why}); skipped: {line}",
          {
            name,
            why,
            line,
          },
        );
        // An answer's (an id, no method): its request is answered with an error rather than wait for ever
        // (found by QA: one with both a result and an error left its call hanging).
        const id = (value as { id?: unknown } | null)?.id;
        if (
          typeof value === "object" && value !== null && !Array.isArray(value) && !("method" in value) &&
          (typeof id === "number" || typeof id === "string")
        ) {
          onInvalidAnswer?.(id, why);
        }
      },
      onOversize: (bytes, head, tail) => {
        this.#logger.error("server {name} wrote a {bytes}-byte line, over the {max}-byte limit; skipped", {
          name,
          bytes,
          max: maxLineBytes,
        });
        // The child's own request gets an error (found by review: taken for an answer, it failed the client's
        // call of the same id at the proxy, and the child heard nothing). Anything else with an id at one of
        // its ends is taken for an answer, and fails its request: its `result` may show at neither end (found
        // by review: `_meta` first).
        const [start, end] = [decoder.decode(head), decoder.decode(tail)];
        const message = truncatedMessageKind(start, end);
        if (message?.kind === "request") onOversizeRequest?.(message.spelled ?? message.id, bytes);
        else if (message?.kind !== "notification") {
          const id = message?.kind === "response" ? message.id : idOfTruncatedResponse(start, end);
          if (id !== undefined) onOversizeAnswer?.(id, bytes);
        }
      },
      onError: (error) => this.#logger.error("message from server {name} failed: {error}", { name, error }),
    });
  }

  async #readStderr(stderr: ReadableStream<Uint8Array>, maxLineBytes: number): Promise<void> {
    const logger = serverStderrLogger(this.name);
    try {
      for await (const line of stderr.pipeThrough(new LineSplitter({ maxLineBytes }))) {
        logger.info("{line}", { line: decoder.decode(line) });
      }
    } catch (error) {
      this.#logger.debug("reading stderr of server {name} ended: {error}", { name: this.name, error });
    }
  }
}

/** Whether `promise` settles within `ms`; its timer is cleared either way (none is left to keep the process). */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
