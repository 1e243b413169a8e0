/**
 * Starting a stdio server on Windows the way a shell would: find the command through `PATH` and
 * `PATHEXT`, and run `.cmd` and `.bat` files (npx, pnpm and other shims) through `cmd.exe`. Deno does
 * neither by itself: it does not try `PATHEXT`, and it refuses to run a batch file directly.
 *
 * A batch file runs as `cmd.exe /d /s /c "<command line>"` with `windowsRawArguments`, so that the line
 * reaches cmd.exe unchanged. The line is built as cross-spawn builds it: every argument quoted for the
 * program's C runtime, then every cmd.exe metacharacter, quotes included, escaped with `^`, so that
 * cmd.exe never sees a quoted region and reads each `^x` as a literal `x`. npm-style shims pass their
 * arguments on with `%*`, which cmd.exe parses a second time, so theirs are escaped twice.
 *
 * Pure: the file system is reached only through the `exists` callback.
 *
 * @module
 */

/** What to pass to `new Deno.Command(command, { args, windowsRawArguments })`. */
export interface WindowsSpawnPlan {
  command: string;
  args: string[];
  /** True when `args` is already a finished command line that Deno must not quote again. */
  windowsRawArguments?: boolean;
}

/** Windows' own default when `PATHEXT` is not set. */
const DEFAULT_PATHEXT = [".COM", ".EXE", ".BAT", ".CMD"];

/**
 * cmd.exe metacharacters, escaped with `^`: cross-spawn's set (besides `^ & | < > ( ) % ! "`, the
 * delimiters `; , space` that would end the file name, and `[ ] * ? \``, harmless escaped) and `=`,
 * which is a delimiter too.
 */
const CMD_METACHARACTERS = /[()[\]%!^"`<>&|;,= *?]/g;

/**
 * Arguments made only of these characters reach a batch file unquoted (Rust's `std::process` uses the
 * same set for batch files, and also leaves non-ASCII characters unquoted); anything else is quoted.
 */
const UNQUOTED_ARGUMENT = /^[A-Za-z0-9#$*+\-./:?@\\_\u0080-\uFFFF]+$/;

/** Files that forward their arguments with `%*`: npm's cmd-shims and the shims Node.js ships. */
const NPM_STYLE_SHIM =
  /(?:[\\/]node_modules[\\/]\.bin[\\/][^\\/]+|[\\/]npm[\\/][^\\/]+|(?:^|[\\/])(?:npm|npx|pnpm|pnpx|yarn|yarnpkg|corepack))\.cmd$/i;

/** Looks `name` up in `env` case-insensitively (Windows' rule), preferring the exact spelling. */
function environmentValue(env: Record<string, string>, name: string): string | undefined {
  if (env[name] !== undefined) return env[name];
  const upper = name.toUpperCase();
  const key = Object.keys(env).find((candidate) => candidate.toUpperCase() === upper);
  return key === undefined ? undefined : env[key];
}

function pathExtensions(env: Record<string, string>): string[] {
  const listed = (environmentValue(env, "PATHEXT") ?? "").split(";")
    .map((extension) => extension.trim())
    .filter((extension) => extension.startsWith(".") && extension.length > 1);
  return listed.length > 0 ? listed : DEFAULT_PATHEXT;
}

function isPath(command: string): boolean {
  return /[\\/]/.test(command) || /^[A-Za-z]:/.test(command);
}

function hasExtension(command: string): boolean {
  const name = command.slice(Math.max(command.lastIndexOf("\\"), command.lastIndexOf("/")) + 1);
  return name.lastIndexOf(".") > 0;
}

function joinPath(directory: string, name: string): string {
  return /[\\/]$/.test(directory) ? directory + name : `${directory}\\${name}`;
}

/**
 * The files `command` may name, in the order Windows tries them: the name as given when it has an
 * extension, then the name with each `PATHEXT` extension. An extensionless file is never a candidate:
 * next to `npx.cmd`, Node.js ships `npx`, a shell script that Windows cannot run.
 */
function candidateFiles(command: string, extensions: string[]): string[] {
  const withExtensions = extensions.map((extension) => command + extension);
  return hasExtension(command) ? [command, ...withExtensions] : withExtensions;
}

/**
 * Finds the file Windows would run for `command`: a name is looked up in each directory of `PATH`, in
 * order, trying the extensions of `PATHEXT` (default `.COM;.EXE;.BAT;.CMD`); a path (with `\`, `/` or a
 * drive letter) is taken as it is, with the `PATHEXT` extensions tried when it has none. Variable names
 * are case-insensitive (`Path` is `PATH`); so are file names, which `exists` must handle. The current
 * directory is not searched.
 *
 * @param command The server's command, e.g. `npx`, `uvx.exe` or `C:\tools\server.cmd`.
 * @param env The child's environment: its `PATH` and `PATHEXT` are used.
 * @param exists Whether a regular file exists at a path (relative paths are the caller's to resolve).
 * @returns The path to run, or undefined when no candidate exists.
 *
 * @example Resolving npx to its .cmd shim
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveWindowsCommand } from "./windows_command.ts";
 *
 * const files = new Set(["C:\\nodejs\\npx", "C:\\nodejs\\npx.CMD"]);
 * const env = { Path: "C:\\Windows;C:\\nodejs", PATHEXT: ".COM;.EXE;.BAT;.CMD" };
 * assert.equal(resolveWindowsCommand("npx", env, (path) => files.has(path)), "C:\\nodejs\\npx.CMD");
 * ```
 */
export function resolveWindowsCommand(
  command: string,
  env: Record<string, string>,
  exists: (path: string) => boolean,
): string | undefined {
  if (command === "") return undefined;
  const extensions = pathExtensions(env);
  if (isPath(command)) return candidateFiles(command, extensions).find(exists);
  const directories = (environmentValue(env, "PATH") ?? "").split(";")
    .map((directory) => directory.trim().replace(/^"(.*)"$/, "$1"))
    .filter((directory) => directory !== "");
  for (const directory of directories) {
    const found = candidateFiles(joinPath(directory, command), extensions).find(exists);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Quotes `argument` for a program's C runtime (the rules of `CommandLineToArgvW`): a quoted argument
 * keeps its backslashes except those before a quote, which are doubled, and its quotes, which get a
 * backslash; backslashes at the end are doubled, so that they do not escape the closing quote.
 */
function quoteForCRuntime(argument: string): string {
  if (UNQUOTED_ARGUMENT.test(argument) && !argument.endsWith("\\")) return argument;
  let quoted = '"';
  let backslashes = 0;
  for (const character of argument) {
    if (character === "\\") {
      backslashes++;
      continue;
    }
    quoted += character === '"'
      ? "\\".repeat(2 * backslashes + 1) + '"'
      : "\\".repeat(backslashes) + character;
    backslashes = 0;
  }
  return quoted + "\\".repeat(2 * backslashes) + '"';
}

function escapeForCmd(text: string): string {
  return text.replace(CMD_METACHARACTERS, "^$&");
}

function isBatchFile(path: string): boolean {
  return /\.(?:cmd|bat)$/i.test(path);
}

/**
 * How to start the resolved file with `args`. An `.exe` (or anything but a batch file) is started
 * directly. A `.cmd` or `.bat` file is started as `comspec /d /s /c "<line>"`: `/d` skips AutoRun
 * commands, `/s /c` runs the line inside the outer quotes as it is. In the line, the file's path and
 * each argument are escaped with `^` before every cmd.exe metacharacter, so that `&`, `|`, `<`, `>`,
 * `(`, `)`, quotes and `%VAR%` stay literal; arguments are quoted for the C runtime first, unless they
 * are plain words. A `%VAR%` stays literal because `^%VAR^%` names no variable.
 *
 * For npm-style shims (`node_modules\.bin\*.cmd`, `npm\*.cmd`, `npx.cmd`, `pnpm.cmd`, `yarn.cmd`, …),
 * which hand their arguments on with `%*` for cmd.exe to parse again, the arguments are escaped twice.
 * Other batch files get their arguments as if typed at a prompt: `%1` holds a quoted argument with its
 * quotes.
 *
 * Delayed expansion (`!VAR!`) is assumed off, as it is unless the registry turns it on.
 *
 * @param resolved A path from {@linkcode resolveWindowsCommand}.
 * @param args The server's arguments.
 * @param comspec The command interpreter, e.g. from {@linkcode windowsComspec}; default `cmd.exe`.
 * @throws {TypeError} when a batch file would get an argument with a line break or NUL character,
 *   which cmd.exe cannot pass on: it ends the command there.
 *
 * @example An npx shim and an argument with an ampersand
 * ```ts
 * import assert from "node:assert/strict";
 * import { windowsSpawnPlan } from "./windows_command.ts";
 *
 * const plan = windowsSpawnPlan("C:\\nodejs\\npx.cmd", ["-y", "a&b"], "C:\\Windows\\system32\\cmd.exe");
 * assert.deepEqual(plan, {
 *   command: "C:\\Windows\\system32\\cmd.exe",
 *   args: ["/d", "/s", "/c", '"C:\\nodejs\\npx.cmd -y ^^^"a^^^&b^^^""'],
 *   windowsRawArguments: true,
 * });
 * ```
 */
export function windowsSpawnPlan(resolved: string, args: string[], comspec = "cmd.exe"): WindowsSpawnPlan {
  if (!isBatchFile(resolved)) return { command: resolved, args: [...args] };
  args.forEach((argument, index) => {
    if (/[\r\n\0]/.test(argument)) {
      throw new TypeError(
        `Cannot pass argument ${index + 1} (${JSON.stringify(argument)}) to the batch file ${resolved}: ` +
          "cmd.exe cannot pass on a line break or NUL character",
      );
    }
  });
  const escapeTwice = NPM_STYLE_SHIM.test(resolved);
  const words = args.map((argument) => {
    const once = escapeForCmd(quoteForCRuntime(argument));
    return escapeTwice ? escapeForCmd(once) : once;
  });
  const line = [escapeForCmd(resolved), ...words].join(" ");
  return { command: comspec, args: ["/d", "/s", "/c", `"${line}"`], windowsRawArguments: true };
}

/**
 * The command interpreter for {@linkcode windowsSpawnPlan}, by absolute path so that it is found
 * whatever the child's `PATH`: `ComSpec`, else `%SystemRoot%\System32\cmd.exe`, else `cmd.exe`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { windowsComspec } from "./windows_command.ts";
 *
 * assert.equal(windowsComspec({ SystemRoot: "C:\\Windows" }), "C:\\Windows\\System32\\cmd.exe");
 * ```
 */
export function windowsComspec(env: Record<string, string>): string {
  const comspec = environmentValue(env, "ComSpec");
  if (comspec) return comspec;
  const systemRoot = environmentValue(env, "SystemRoot");
  return systemRoot ? joinPath(systemRoot, "System32\\cmd.exe") : "cmd.exe";
}

/**
 * The command that ends process `pid` and every process it started, at once: Windows has no process
 * groups to signal, and `child.kill()` reaches only the child (for a shim, cmd.exe, not the server).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { windowsKillTreeCommand } from "./windows_command.ts";
 *
 * assert.deepEqual(windowsKillTreeCommand(4242), { command: "taskkill", args: ["/T", "/F", "/PID", "4242"] });
 * ```
 */
export function windowsKillTreeCommand(pid: number): { command: string; args: string[] } {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new RangeError(`Cannot kill process tree: pid must be a positive integer, got ${pid}`);
  }
  return { command: "taskkill", args: ["/T", "/F", "/PID", String(pid)] };
}
