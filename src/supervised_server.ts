/**
 * A shared stdio server kept running: when its child exits or cannot start, the requests waiting for it
 * get errors at once, and a new child is started after a delay that doubles with each failure in a row
 * (capped). The new child is initialized as the first one was, so the sessions carry on.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { RestartPolicy, StdioServerSpec } from "./cli/command_line.ts";
import type { RequestId } from "./jsonrpc.ts";
import type { ModernStatus } from "./modern_server.ts";
import { SharedServer } from "./shared_server.ts";
import { joinShellWords } from "./shell_split.ts";
import { SpawnError, StdioServerProcess } from "./stdio_server_process.ts";

/** Where a server stands, as `/status` and `/health` report it. */
export type ServerState = "running" | "restarting" | "failed" | "stopped";

/** One server's entry in `/status`. */
export interface ServerStatus {
  state: ServerState;
  pid: number | null;
  restarts: number;
  last_exit_code: number | null;
  sessions: number;
  /**
   * Only while the child has not answered the first `initialize` in time (see
   * `SharedServer.initializeOverdue`): true, and `/health` is degraded.
   */
  initialize_overdue?: true;
  /** The server's child of the stateless revision (see `modern_server.ts`). */
  modern?: ModernStatus;
}

/** A child that ran at least this long counts as healthy: the next failure starts the backoff over. */
const STABLE_AFTER_MS = 30_000;

/** Options of {@link SupervisedServer}. */
export interface SupervisedServerOptions {
  spec: StdioServerSpec;
  /** The child's environment. */
  env: Record<string, string>;
  policy: RestartPolicy;
  maxLineBytes: number;
  supportedProtocolVersions: readonly string[];
  requestTimeoutMs: number;
  /** Called each time the last open session closes (for a server per session). */
  onLastSessionClosed?: () => void;
  /** Called when the child exited and is not restarted (restarts off), with why; not after `stop()`. */
  onGone?: (reason: string) => void;
  /** The child serves the stateless revision; see `SharedServerOptions.modern` and `onToolsListed`. */
  modern?: { onToolsListed: (result: unknown) => void };
  logger: Logger;
}

/** See the module documentation. */
export class SupervisedServer {
  readonly shared: SharedServer;
  readonly #options: SupervisedServerOptions;
  readonly #logger: Logger;
  #process: StdioServerProcess | undefined;
  #state: ServerState = "stopped";
  #restarts = 0;
  #failuresInARow = 0;
  #lastExitCode: number | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopping = false;
  /** Why the current child is being stopped by the supervisor itself, to be said of its exit. */
  #stoppedBecause: string | undefined;

  constructor(options: SupervisedServerOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.shared = new SharedServer({
      name: options.spec.name,
      sendToChild: (message, json) => this.#process?.send(message, json),
      logger: options.logger,
      supportedProtocolVersions: options.supportedProtocolVersions,
      requestTimeoutMs: options.requestTimeoutMs,
      onLastSessionClosed: options.onLastSessionClosed,
      modern: options.modern !== undefined,
      onToolsListed: options.modern?.onToolsListed,
      // As much as a slow client may fall behind: a line, and 16 MiB more.
      childBacklog: {
        bytes: () => this.#process?.backlogBytes ?? 0,
        maxBytes: options.maxLineBytes + 16 * 1024 * 1024,
      },
      // A child that cannot serve the sessions is restarted, as if it had exited (with the same backoff).
      onRefusedAfterRestart: (reason) => {
        this.#stoppedBecause = reason;
        this.#process?.shutdown(0);
      },
    });
  }

  /**
   * Starts the first child; returns why it could not start, and does nothing more then: the caller says
   * so, and calls {@link retryLater} to have it tried again in the background.
   */
  start(): SpawnError | undefined {
    return this.#launch(true);
  }

  /** After `start()` failed with `error`: logs it, and retries as the restart policy allows. */
  retryLater(error: SpawnError): void {
    this.#logger.error("{message}", { message: error.message });
    this.#scheduleRestart(`it could not start: ${error.message}`);
  }

  status(): ServerStatus {
    return {
      state: this.#state,
      pid: this.#state === "running" ? this.#process?.pid ?? null : null,
      restarts: this.#restarts,
      last_exit_code: this.#lastExitCode,
      sessions: this.shared.sessionCount,
      ...(this.#state === "running" && this.shared.initializeOverdue ? { initialize_overdue: true } : {}),
    };
  }

  /** Answers what is running with an error (before returning), then stops the child for good. */
  stop(reason: string): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#timer);
    this.#state = "stopped";
    this.shared.childStopped(reason);
    return this.#process?.shutdown() ?? Promise.resolve();
  }

  /** Kills the child and its process group at once. */
  kill(): void {
    this.#stopping = true;
    clearTimeout(this.#timer);
    this.#process?.kill();
  }

  #launch(first = false): SpawnError | undefined {
    const { spec } = this.#options;
    let process: StdioServerProcess;
    try {
      process = StdioServerProcess.spawn({
        spec,
        env: this.#options.env,
        onMessage: (message, line) => this.shared.handleChildMessage(message, line),
        onLargeLine: (line, noCarriageReturn) => this.shared.relayLargeAnswer(line, noCarriageReturn),
        onLongLine: (start) => this.shared.streamLargeAnswer(start),
        onOversizeAnswer: (id, bytes) => this.#answerTooLarge(id, bytes),
        onOversizeRequest: (id, bytes) =>
          this.shared.refuseChildRequest(
            id,
            `the request is ${bytes} bytes, over --max-line-size (${this.#options.maxLineBytes})`,
          ),
        onInvalidAnswer: (id, why) => {
          if (typeof id === "number") this.shared.failRequest(id, `the server's answer is not valid: ${why}`);
        },
        logger: this.#logger,
        maxLineBytes: this.#options.maxLineBytes,
        busy: () => this.shared.childIsBusy,
      });
    } catch (error) {
      if (!(error instanceof SpawnError)) throw error;
      this.shared.childStopped(`it could not start: ${error.message}`);
      if (first) this.#state = "failed";
      else this.retryLater(error);
      return error;
    }
    this.#process = process;
    this.#state = "running";
    const startedAt = Date.now();
    // The arguments may hold a secret (`--api-key …`): only debug shows them. Quoted, so that the words
    // show as they are (found by QA: `sh -c echo boom; exit 0` read as more).
    const argumentCount = spec.args.length === 1 ? "1 argument" : `${spec.args.length} arguments`;
    this.#logger.info("started server {name}: {command}, {count} (pid {pid})", {
      name: spec.name,
      command: joinShellWords([spec.command]),
      count: argumentCount,
      pid: process.pid,
    });
    this.#logger.debug("server {name} runs {command}", {
      name: spec.name,
      command: joinShellWords([spec.command, ...spec.args]),
    });
    if (this.#restarts > 0) this.shared.childStarted();
    process.exited.then((status) => {
      if (this.#stopping) return;
      const reason = this.#stoppedBecause ??
        (status.signal !== null ? `killed by ${status.signal}` : `exited with code ${status.code}`);
      this.#stoppedBecause = undefined;
      this.#lastExitCode = status.code;
      this.shared.childStopped(reason);
      // Success is what it says of itself: unasked, but no failure (a server that ends once idle, say).
      if (status.code === 0 && status.signal === null) {
        this.#logger.warn("server {name} {reason}", { name: spec.name, reason });
      } else this.#logger.error("server {name} {reason}", { name: spec.name, reason });
      // What it started and left running (a wrapper's helper, an `npx` child) goes with it: a restarted
      // child leads a process group of its own, and shutdown stops only the current one.
      process.shutdown(0);
      if (Date.now() - startedAt >= STABLE_AFTER_MS) this.#failuresInARow = 0;
      this.#scheduleRestart(reason);
    });
    return undefined;
  }

  #answerTooLarge(id: RequestId, bytes: number): void {
    if (typeof id !== "number") return;
    this.shared.failRequest(
      id,
      `the server's answer is ${bytes} bytes, over --max-line-size (${this.#options.maxLineBytes})`,
    );
  }

  /** After the child exited or could not start (`reason`): a restart later, or none. */
  #scheduleRestart(reason: string): void {
    const { policy, spec } = this.#options;
    if (!policy.enabled || this.#stopping) {
      this.#state = "failed";
      if (this.#stopping) return;
      this.shared.childGoneForGood();
      this.#options.onGone?.(reason);
      return;
    }
    const delay = Math.min(policy.initialDelayMs * 2 ** this.#failuresInARow, policy.maxDelayMs);
    this.#failuresInARow++;
    this.#state = "restarting";
    this.#logger.info("restarting server {name} in {seconds} s", { name: spec.name, seconds: delay / 1000 });
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#stopping) return;
      this.#restarts++;
      this.#launch();
    }, delay);
  }
}
