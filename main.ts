/**
 * mcp-proxy: bridge MCP transports.
 *
 * - Server mode, `mcp-proxy [options] [--] COMMAND ARGS…` or named servers: local stdio MCP servers
 *   served over legacy SSE (`/sse`) and Streamable HTTP (`/mcp`).
 * - Client mode, `mcp-proxy [options] URL`: a remote SSE or Streamable HTTP server as a local stdio one.
 *
 * Read top-down: parse the command line, set up logging, pick the mode, start it, wait for a signal,
 * shut down.
 *
 * @module
 */

import { type CommandLine, UsageError } from "./src/cli/command_line.ts";
import { helpText, USAGE_LINE } from "./src/cli/help_text.ts";
import { parseCommandLine } from "./src/cli/parse_command_line.ts";
import { cutToLastLine, flushLogs, lastLogLine, proxyLogger, setupLogging } from "./src/logging.ts";
import type { ServerModeHandle } from "./src/server_mode.ts";
import { VERSION } from "./src/version.ts";

const logger = proxyLogger();
const encoder = new TextEncoder();

function write(stream: { writeSync(bytes: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
}

/**
 * Resolves with the first SIGINT, SIGTERM or SIGHUP (SIGINT or SIGBREAK on Windows); on a second one,
 * `onRepeat` runs and the process exits at once. SIGHUP (the terminal closed) is a shutdown too: left to
 * its default, it would end the proxy at once, and the children, in process groups of their own, would
 * outlive it.
 */
function waitForShutdownSignal(onRepeat: () => void): Promise<Deno.Signal> {
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM", "SIGHUP"];
  return new Promise((resolve) => {
    let received: Deno.Signal | undefined;
    for (const signal of signals) {
      Deno.addSignalListener(signal, () => {
        if (received === undefined) {
          received = signal;
          resolve(signal);
          return;
        }
        if (crashed) return; // A crash's report decides the exit (see `reportCrashes`).
        logger.warn("second {signal}: killing the servers and exiting now", { signal });
        onRepeat();
        // That line goes out, unless stderr is not read (see `flushLogs`).
        // A crash within that time decides the exit, after its report (found by review).
        flushLogs(200).then(() => {
          if (!crashed) Deno.exit(130);
        });
      });
    }
  });
}

/** Errors that mean "cannot start" and carry a one-line message for the user. */
const STARTUP_FAILURES = new Set(["ConfigError", "SpawnError", "ListenError", "TlsConfigError"]);

/** Turns the known start-up failures into one line on stderr and an exit code; rethrows the rest. */
async function reportStartupFailure(error: unknown): Promise<number> {
  if (error instanceof UsageError) {
    // After the warnings logged before it, which may explain it (found by QA: a config file's skipped
    // servers, logged asynchronously, came after the error).
    await flushLogs();
    write(Deno.stderr, `${USAGE_LINE}\nmcp-proxy: error: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof Error && STARTUP_FAILURES.has(error.name)) {
    logger.error("{message}", { message: error.message });
    return 1;
  }
  throw error;
}

/** Runs mcp-proxy with `args` (without the program name) and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let commandLine: CommandLine;
  try {
    commandLine = parseCommandLine(args, Deno.env.toObject());
  } catch (error) {
    return await reportStartupFailure(error);
  }
  if (commandLine.mode === "help") {
    write(Deno.stdout, helpText(VERSION));
    return 0;
  }
  if (commandLine.mode === "version") {
    write(Deno.stdout, `mcp-proxy ${VERSION}\n`);
    return 0;
  }

  setupLogging(commandLine.logLevel, commandLine.logFormat);
  for (const warning of commandLine.warnings) logger.warn("{warning}", { warning });

  let server: ServerModeHandle | undefined;
  killServers = () => server?.kill();
  const signal = waitForShutdownSignal(() => server?.kill());
  // Each mode loads only its own modules: server mode never loads client mode's, and the reverse.
  if (commandLine.mode === "client") {
    try {
      const { runClientMode } = await import("./src/client_mode.ts");
      await runClientMode(commandLine, signal);
    } catch (error) {
      return await reportStartupFailure(error);
    }
    return 0;
  }
  try {
    const { startServerMode } = await import("./src/server_mode.ts");
    server = await startServerMode(commandLine);
  } catch (error) {
    return await reportStartupFailure(error);
  }
  logger.info("received {signal}", { signal: await signal });
  await server.shutdown();
  return 0;
}

/** Set once the servers run: kills them at once (a second signal, a crash). */
let killServers: (() => void) | undefined;

/** Set by a crash: its report decides the exit. */
let crashed = false;

/**
 * A crash (an exception nothing caught, a rejection nothing handled) is reported after the log lines before
 * it, and the process exits 1, as Deno's own report would: log lines go to stderr asynchronously, and that
 * exit dropped those still waiting, the ones that tell what led to the crash (found by review). The report
 * is the log's last line (later ones are dropped); the exit comes once it is out, or after 1 s (stderr not
 * read), whatever fails on the way. The servers are killed first: a child must not outlive the proxy.
 */
export function reportCrashes(): void {
  const crash = (event: Event, error: unknown) => {
    event.preventDefault();
    if (crashed) return;
    crashed = true;
    try {
      killServers?.();
    } catch {
      // The report goes all the same.
    }
    try {
      let why: string;
      try {
        why = error instanceof Error ? error.stack ?? error.message : String(error);
      } catch {
        why = "(an error that cannot be shown)";
      }
      lastLogLine(`mcp-proxy: crashed: ${why}`);
    } catch {
      // Nothing more can be said: the exit below comes all the same.
    }
    // The lines before it first; those a slow stderr has not taken by then go, so that it goes out.
    flushLogs(800).then(() => {
      cutToLastLine();
      return flushLogs(200);
    }).finally(() => Deno.exit(1));
  };
  globalThis.addEventListener("error", (event) => crash(event, (event as ErrorEvent).error));
  globalThis.addEventListener(
    "unhandledrejection",
    (event) => crash(event, (event as PromiseRejectionEvent).reason),
  );
}

if (import.meta.main) {
  reportCrashes();
  const code = await main(Deno.args);
  // The last lines of a child's stderr, still on their way out.
  await flushLogs();
  // A crash meanwhile exits by its report.
  if (!crashed) Deno.exit(code);
}
