/**
 * Whether anybody is left to read client mode's stdout once its parent has died. A stdio client that is
 * killed (`kill -9`, a crash) ends mcp-proxy's stdin, and mcp-proxy would then wait for the answers still
 * on their way with nobody to read them: until they come, or for ever. When its parent has exited (on Unix
 * the process gets another parent, init or a subreaper), mcp-proxy looks who holds its stdout:
 *
 * - a file or a terminal: the answers still land where they should (`mcp-proxy URL < in > out &`);
 * - a pipe (Linux): another process holding it for reading (`mcp-proxy URL < in | jq &`, its shell gone)
 *   still reads them; none means the reader died with the parent;
 * - a socket (the stdio of Node and Electron clients, Claude Desktop's among them): its peer cannot be
 *   told from here, and a socket is what a client that starts mcp-proxy itself hands it, so the parent's
 *   death counts as the reader's.
 *
 * Where it cannot tell (no `/proc`, no permission), mcp-proxy waits for the answers, as before.
 *
 * @module
 */

import { fstatSync } from "node:fs";

/** How often, once stdin has ended, the parent process is looked for. */
const WATCH_MS = 500;

/**
 * Calls `gone` once the parent process (`parent`, read at the start) has exited and nobody else reads
 * stdout (see the module documentation). Returns the interval, to clear.
 */
export function watchParent(parent: number, gone: () => void): ReturnType<typeof setInterval> | undefined {
  if (Deno.build.os === "windows") return undefined;
  const timer = setInterval(() => {
    if (Deno.ppid === parent) return;
    clearInterval(timer);
    if (!stdoutReadElsewhere()) gone();
  }, WATCH_MS);
  return timer;
}

/** Whether stdout may still be read by someone other than the parent that died; true when unsure. */
function stdoutReadElsewhere(): boolean {
  let output;
  try {
    output = fstatSync(1);
  } catch {
    return true;
  }
  if (output.isSocket()) return false;
  if (!output.isFIFO()) return true;
  return pipeReaderOtherThanSelf() ?? true;
}

/**
 * Whether a process other than this one holds stdout's pipe open for reading, from Linux's `/proc`;
 * undefined where it cannot tell.
 */
function pipeReaderOtherThanSelf(): boolean | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    const pipe = Deno.readLinkSync("/proc/self/fd/1");
    const self = String(Deno.pid);
    for (const process of Deno.readDirSync("/proc")) {
      if (process.name === self || !/^\d+$/.test(process.name)) continue;
      if (holdsForReading(process.name, pipe)) return true;
    }
    return false;
  } catch {
    return undefined;
  }
}

/** Whether process `pid` has the pipe `pipe` (as `/proc` links name it) open for reading. */
function holdsForReading(pid: string, pipe: string): boolean {
  let fds: Iterable<Deno.DirEntry>;
  try {
    fds = Deno.readDirSync(`/proc/${pid}/fd`);
  } catch {
    // Gone meanwhile, or another user's: not a reader this user's process could have handed stdout to.
    return false;
  }
  for (const fd of fds) {
    try {
      if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`) !== pipe) continue;
      // Both ends of a pipe link alike: the access mode of its flags (octal) tells them, 0 for reading.
      const flags = /^flags:\s*([0-7]+)/m.exec(Deno.readTextFileSync(`/proc/${pid}/fdinfo/${fd.name}`));
      if (flags !== null && (parseInt(flags[1], 8) & 3) === 0) return true;
    } catch {
      // Closed meanwhile.
    }
  }
  return false;
}
