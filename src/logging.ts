/**
 * Logging to stderr, never stdout: in client mode stdout carries the MCP messages.
 *
 * Two streams of lines share stderr: the proxy's own log (category `mcp-proxy`, filtered by
 * `--log-level`), and what each child server writes to its stderr (category `server-stderr`), passed
 * through at every level, each line prefixed with the server's name.
 *
 * @module
 */

import { configureSync, getLogger, type Logger, type LogLevel, type LogRecord } from "@logtape/logtape";
import type { LogFormat, LogLevelName } from "./cli/command_line.ts";
import { concatenated } from "./large_answer.ts";

const LEVELS: Record<LogLevelName, LogLevel> = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warning",
  ERROR: "error",
  CRITICAL: "fatal",
};

const LEVEL_LABELS: Record<LogLevel, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARNING",
  error: "ERROR",
  fatal: "CRITICAL",
};

const encoder = new TextEncoder();

function renderValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  return Deno.inspect(value, { colors: false, depth: 4, breakLength: Infinity });
}

function renderMessage(record: LogRecord): string {
  let text = "";
  for (let i = 0; i < record.message.length; i++) {
    text += i % 2 === 0 ? record.message[i] as string : renderValue(record.message[i]);
  }
  return text;
}

/** Control characters but tab (C0, DEL, C1): a terminal acts on them (a `\r` rewrites the line shown). */
// deno-lint-ignore no-control-regex -- control characters are what it finds
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

/** `text` with each control character shown as `\xHH`: what a child or a client wrote cannot drive the terminal. */
function shown(text: string): string {
  CONTROL.lastIndex = 0;
  if (!CONTROL.test(text)) return text;
  return text.replace(CONTROL, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Formats a record as one line: child output as `[name] text`, the proxy's own as `time LEVEL text`. */
function formatLine(record: LogRecord): string {
  if (record.category[0] === "server-stderr") {
    return `[${record.category[1]}] ${shown(renderMessage(record))}\n`;
  }
  const time = new Date(record.timestamp).toISOString();
  return `${time} ${LEVEL_LABELS[record.level].padEnd(8)} ${shown(renderMessage(record))}\n`;
}

/**
 * Log lines waiting for stderr, in order, written by asynchronous writes that leave the event loop free: a
 * synchronous write blocks the whole proxy (its HTTP side, its shutdown) while stderr is read slowly, as a
 * pipe nobody drains is, or a terminal paused. A child's lines, which a child can write faster than anyone
 * reads, and the proxy's own (found by QA: 600 timed-out calls, or a child's garbage lines, each warned of,
 * froze the proxy behind a pipe that was not read) alike. {@link flushLogs} writes the last ones out.
 */
const stderrQueue: Uint8Array<ArrayBuffer>[] = [];
let stderrQueuedBytes = 0;
let stderrWriting: Promise<void> | undefined;
/** Lines dropped because the queue was full, not yet reported. */
let stderrDropped = 0;
/** The most a slow stderr holds queued; a child's lines beyond it are dropped and counted. */
const MAX_STDERR_QUEUE_BYTES = 1024 * 1024;
/** The proxy's own lines are dropped only well beyond that. */
const MAX_OWN_QUEUE_BYTES = 4 * MAX_STDERR_QUEUE_BYTES;

/** Set by {@link lastLogLine}: no line goes after it. */
let sealed = false;

/** Writes a log line to stderr: see {@link stderrQueue}. A closed stderr is not the proxy's problem. */
function writeStderr(bytes: Uint8Array<ArrayBuffer>, childLine: boolean): void {
  if (sealed) return;
  if (stderrQueuedBytes + bytes.length > (childLine ? MAX_STDERR_QUEUE_BYTES : MAX_OWN_QUEUE_BYTES)) {
    stderrDropped++;
    return;
  }
  enqueue(bytes);
}

/** Queues `bytes` for stderr, and starts writing if nothing is. */
function enqueue(bytes: Uint8Array<ArrayBuffer>): void {
  stderrQueue.push(bytes);
  stderrQueuedBytes += bytes.length;
  stderrWriting ??= drainStderr();
}

/** How much of the queue one write takes, at most (a line longer than that goes whole). */
const WRITE_BYTES = 64 * 1024;

async function drainStderr(): Promise<void> {
  try {
    while (stderrQueue.length > 0) {
      // Some 64 KiB a write at most, so that what waits behind can still be cut (see `cutToLastLine`).
      let count = 0;
      for (let bytes = 0; count < stderrQueue.length && bytes < WRITE_BYTES; count++) {
        bytes += stderrQueue[count].length;
      }
      const chunk = concatenated(stderrQueue.splice(0, count));
      stderrQueuedBytes -= chunk.length;
      let written = 0;
      while (written < chunk.length) written += await Deno.stderr.write(chunk.subarray(written));
      if (stderrDropped > 0 && stderrQueue.length === 0 && !sealed) enqueue(droppedNote());
    }
  } catch {
    // stderr closed or broken: nowhere left to report it.
    stderrQueue.length = 0;
    stderrQueuedBytes = 0;
  } finally {
    stderrWriting = undefined;
  }
}

/**
 * Resolves once the queued log lines are written, or after `timeoutMs` (stderr may never be read): for the
 * last lines before the process exits.
 */
export async function flushLogs(timeoutMs = 1000): Promise<void> {
  if (stderrWriting === undefined) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([stderrWriting, new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs))]);
  clearTimeout(timer);
}

/** A line of the log's own, outside logtape (a note of lines dropped, a crash), in the log's format. */
let ownLine = (_level: string, text: string) => `${text}\n`;

/** How many lines each dropped-lines note queued and not written yet reports. */
const noteCounts = new WeakMap<Uint8Array, number>();

/** The line that says how many lines were dropped; counts them as reported. */
function droppedNote(): Uint8Array<ArrayBuffer> {
  const note = encoder.encode(
    ownLine("WARNING", `mcp-proxy: ${stderrDropped} log lines dropped: stderr was not read fast enough`),
  );
  noteCounts.set(note, stderrDropped);
  stderrDropped = 0;
  return note;
}

/**
 * Queues `text` as the last line of the log: lines logged later (a child's, say) are dropped. For a crash's
 * report: see {@link cutToLastLine}.
 */
export function lastLogLine(text: string): void {
  if (sealed) return;
  sealed = true;
  if (stderrDropped > 0) enqueue(droppedNote());
  // Past the queue's bound too: it is the line that says why the process ends.
  enqueue(encoder.encode(ownLine("CRITICAL", text.endsWith("\n") ? text.slice(0, -1) : text)));
}

/**
 * Drops the lines still waiting before the {@link lastLogLine} (with a line saying how many went): for a
 * stderr read too slowly for them all, so that the last line goes out before the process ends.
 */
export function cutToLastLine(): void {
  if (!sealed || stderrQueue.length <= 1) return;
  const last = stderrQueue.pop()!;
  // A note queued among them counts the lines it reports (found by review: they were lost from the count).
  for (const entry of stderrQueue) stderrDropped += noteCounts.get(entry) ?? 1;
  stderrQueue.length = 0;
  stderrQueue.push(droppedNote(), last);
  stderrQueuedBytes = stderrQueue[0].length + last.length;
}

/** Formats a record as one JSON object: time, level, logger (or server), message, and its properties. */
function formatJson(record: LogRecord): string {
  const time = new Date(record.timestamp).toISOString();
  const level = LEVEL_LABELS[record.level];
  if (record.category[0] === "server-stderr") {
    return JSON.stringify({ time, level, server: record.category[1], stderr: renderMessage(record) }) + "\n";
  }
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record.properties)) {
    fields[key] = value instanceof Error ? value.message : value;
  }
  return JSON.stringify({
    time,
    level,
    logger: record.category.join("."),
    message: renderMessage(record),
    ...fields,
  }) +
    "\n";
}

/** Sets up logging for the whole process; call once, before anything logs. */
export function setupLogging(level: LogLevelName, format: LogFormat = "text"): void {
  const formatter = format === "json" ? formatJson : formatLine;
  // Found by review: with --log-format json, a crash's report and the dropped-lines note were plain text.
  ownLine = format === "json"
    ? (level, text) =>
      JSON.stringify({ time: new Date().toISOString(), level, logger: "mcp-proxy", message: text }) + "\n"
    : (_level, text) => `${text}\n`;
  configureSync({
    reset: true,
    sinks: {
      stderr: (record: LogRecord) =>
        writeStderr(encoder.encode(formatter(record)), record.category[0] === "server-stderr"),
    },
    loggers: [
      { category: "mcp-proxy", lowestLevel: LEVELS[level], sinks: ["stderr"] },
      { category: "server-stderr", lowestLevel: "trace", sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** The proxy's logger for one part of it, e.g. `proxyLogger("http")`. */
export function proxyLogger(...subcategory: string[]): Logger {
  return getLogger(["mcp-proxy", ...subcategory]);
}

/** The logger that passes through the stderr lines of the server named `name`. */
export function serverStderrLogger(name: string): Logger {
  return getLogger(["server-stderr", name]);
}

/** A text quoted in a log line or an error message: on one line, and at most 200 characters of it. */
export function oneLine(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 200 ? line.slice(0, 200) + "…" : line;
}
