/**
 * `--named-server-config FILE`: the JSON file that lists named stdio servers, in the format Claude
 * Desktop and the Python mcp-proxy use (`{"mcpServers": {"NAME": {"command": …}}}`).
 *
 * A file that cannot be used at all is a {@linkcode ConfigError}; a single bad entry is only a warning
 * and is skipped, so one typo does not take the other servers down.
 *
 * @module
 */

import type { StdioServerSpec } from "./cli/command_line.ts";

/** What a readable config file yields: the servers to run and why any entry was left out. */
export interface NamedServerConfig {
  /** The usable, enabled entries, in file order. */
  servers: StdioServerSpec[];
  /** One message per skipped entry, naming the file, the entry and the reason; the caller logs them. */
  warnings: string[];
}

/** A config file that cannot be used at all: the caller prints `message` and exits with status 1. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

// Names become part of URLs (`/servers/NAME/`), so they are limited to characters that need no escaping.
const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9._~-]*$/;
const MAX_SHOWN_VALUE_LENGTH = 60;

/** A bad value as it appeared in the file, shortened so that a warning stays one readable line. */
function describe(value: unknown): string {
  const json = JSON.stringify(value) ?? String(value);
  return json.length > MAX_SHOWN_VALUE_LENGTH ? `${json.slice(0, MAX_SHOWN_VALUE_LENGTH - 1)}…` : json;
}

/**
 * What kind of value a bad one is, without the value: one that holds a command, its arguments or its
 * environment may hold a secret (a token written as `["TOKEN=…"]`, found by QA), and a warning goes to
 * logs.
 */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === "object") return "an object";
  if (typeof value === "number") return "a number";
  if (typeof value === "boolean") return value ? "true" : "false";
  return `a ${typeof value}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Offset of the first syntax error in `text`, which `JSON.parse` has rejected, for the errors V8
 * reports without a position ("Unexpected token … is not valid JSON", "Unexpected end of JSON input").
 */
function scanForJsonError(text: string): number {
  let at = 0;
  const skipWhitespace = () => {
    while (" \t\n\r".includes(text[at] ?? "x")) at++;
  };
  const literal = (word: string): boolean => {
    for (const char of word) {
      if (text[at] !== char) return false;
      at++;
    }
    return true;
  };
  const number = (): boolean => {
    const pattern = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    pattern.lastIndex = at;
    if (!pattern.test(text)) return false;
    at = pattern.lastIndex;
    return true;
  };
  const string = (): boolean => {
    at++;
    for (;;) {
      const char = text[at];
      if (char === undefined || char < " ") return false;
      if (char === '"') {
        at++;
        return true;
      }
      if (char !== "\\") {
        at++;
      } else if ('"\\/bfnrt'.includes(text[at + 1] ?? "x")) {
        at += 2;
      } else if (/^u[0-9a-fA-F]{4}$/.test(text.slice(at + 1, at + 6))) {
        at += 6;
      } else {
        at++;
        return false;
      }
    }
  };
  const sequence = (close: "]" | "}", item: () => boolean): boolean => {
    at++;
    skipWhitespace();
    if (text[at] === close) {
      at++;
      return true;
    }
    for (;;) {
      if (!item()) return false;
      skipWhitespace();
      if (text[at] === close) {
        at++;
        return true;
      }
      if (text[at] !== ",") return false;
      at++;
    }
  };
  const member = (): boolean => {
    skipWhitespace();
    if (text[at] !== '"' || !string()) return false;
    skipWhitespace();
    if (text[at] !== ":") return false;
    at++;
    return value();
  };
  const value = (): boolean => {
    skipWhitespace();
    switch (text[at]) {
      case "{":
        return sequence("}", member);
      case "[":
        return sequence("]", value);
      case '"':
        return string();
      case "t":
        return literal("true");
      case "f":
        return literal("false");
      case "n":
        return literal("null");
      default:
        return number();
    }
  };

  value();
  return at;
}

function parseJson(text: string, fileName: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const reported = / at position (\d+)/.exec(message);
    const offset = reported ? Number(reported[1]) : scanForJsonError(text);
    const lines = text.slice(0, offset).split("\n");
    const position = `line ${lines.length}, column ${lines[lines.length - 1].length + 1}`;
    // Our position replaces V8's, and the echo of the text is noise in a one-line message.
    const reason = message.replace(/ at position \d+.*$/s, "").replace(/ in JSON$/, "")
      // However it quotes the text (`"…"`, `..."…"...`): a value there may be a secret (found by review).
      .replace(/, .* is not valid JSON$/s, "");
    throw new ConfigError(`${fileName} is not valid JSON: ${reason} at ${position}`);
  }
}

/**
 * Whether an `enabled` value switches its entry on: Python's truth of it (false, 0, "", null, [] and {}
 * are false), as the Python version takes it, but for the text "false" in any case, which is taken for
 * what it says.
 */
function enabledValue(value: unknown): boolean {
  if (typeof value === "string") return value !== "" && value.toLowerCase() !== "false";
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

/**
 * Why `enabled`/`disabled` switch the entry off, or `undefined` when it is on; see {@link enabledValue}.
 */
function disabledBy(entry: Record<string, unknown>): string | undefined {
  if ("enabled" in entry && !enabledValue(entry.enabled)) return `"enabled": ${describe(entry.enabled)}`;
  if (entry.disabled === true) return '"disabled": true';
  return undefined;
}

/** The entry as a server spec, or the reason it cannot be one (the first problem found). */
function toServerSpec(name: string, entry: Record<string, unknown>): StdioServerSpec | string {
  if ("disabled" in entry && typeof entry.disabled !== "boolean") {
    return `"disabled" must be true or false, got ${describe(entry.disabled)}`;
  }
  if (!SERVER_NAME.test(name)) {
    return `the name must match ${SERVER_NAME.source} because it becomes part of the URL /servers/NAME/`;
  }
  const { command, args = [], env = {}, cwd } = entry;
  if (command === undefined) return `"command" must be a non-empty string, but it is missing`;
  if (typeof command !== "string" || command.trim() === "") {
    return `"command" must be a non-empty string, got ${
      typeof command === "string" ? describe(command) : kindOf(command)
    }`;
  }
  if (!Array.isArray(args)) return `"args" must be a list of strings, got ${kindOf(args)}`;
  const badArg = args.findIndex((arg) => typeof arg !== "string");
  if (badArg !== -1) {
    return `"args" must be a list of strings, but item ${badArg + 1} is ${kindOf(args[badArg])}`;
  }
  if (!isObject(env)) return `"env" must be an object of string values, got ${kindOf(env)}`;
  const badVariable = Object.entries(env).find(([, value]) => typeof value !== "string");
  if (badVariable) {
    return `"env" must be an object of string values, but ${describe(badVariable[0])} is ${
      kindOf(badVariable[1])
    }`;
  }
  // A name with "=" or NUL, or a NUL in a value or an argument, cannot reach a process: the spawn would
  // fail again at each restart.
  const badName = Object.keys(env).find((key) => key === "" || /[=\0]/.test(key));
  if (badName !== undefined) {
    // Up to its "=": `"TOKEN=secret": ""` holds the value (found by review).
    const equals = badName.indexOf("=");
    const shown = equals === -1 ? describe(badName) : `${describe(badName.slice(0, equals + 1))}…`;
    return `"env" names a variable ${shown}: a name must be non-empty, without "=" or NUL`;
  }
  const nulValue = Object.keys(env).find((key) => (env[key] as string).includes("\0"));
  if (nulValue !== undefined) return `"env" ${describe(nulValue)}: the value must not contain NUL characters`;
  if ([command, ...args].some((arg) => arg.includes("\0"))) {
    return `"command" and "args" must not contain NUL characters`;
  }
  if (cwd !== undefined && (typeof cwd !== "string" || cwd === "")) {
    return `"cwd" must be a non-empty string, got ${describe(cwd)}`;
  }

  return {
    name,
    command,
    args: [...args],
    env: Object.fromEntries(Object.entries(env)) as Record<string, string>,
    ...(cwd === undefined ? {} : { cwd }),
  };
}

/**
 * Validates the text of a named-server config file. Pure: `fileName` is only used in messages.
 *
 * Entries are taken in file order (except that names which are array indices, like `"7"`, come first:
 * JavaScript orders object keys that way). `timeout` and unknown keys are ignored; `cwd` is an
 * extension of ours. `transportType` is ignored as the Python version does (every entry is run over
 * stdio); a value other than `"stdio"` is warned about. A disabled entry (`"enabled"` false, or another
 * value Python takes as false, such as `0` or `null`, or `"false"`; `"disabled": true`) and an entry with a bad field are
 * skipped with a warning.
 *
 * @throws {ConfigError} The text is empty, not JSON, not an object, or has no `mcpServers` object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseNamedServerConfig } from "./named_server_config.ts";
 *
 * const { servers, warnings } = parseNamedServerConfig(
 *   '{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}, "time": {"args": []}}}',
 *   "servers.json",
 * );
 * assert.deepEqual(servers, [{ name: "fetch", command: "uvx", args: ["mcp-server-fetch"], env: {} }]);
 * assert.deepEqual(warnings, [
 *   'servers.json: server "time": "command" must be a non-empty string, but it is missing; skipped',
 * ]);
 * ```
 */
export function parseNamedServerConfig(text: string, fileName: string): NamedServerConfig {
  // Editors on Windows like to start UTF-8 files with a byte-order mark, which JSON.parse rejects.
  const json = text.startsWith("\uFEFF") ? text.slice(1) : text;
  if (json.trim() === "") {
    throw new ConfigError(`${fileName} is empty; expected a JSON object with an "mcpServers" object`);
  }
  const config = parseJson(json, fileName);
  if (!isObject(config)) {
    throw new ConfigError(`${fileName} must hold a JSON object at the top level, got ${kindOf(config)}`);
  }
  const entries = config.mcpServers;
  if (!isObject(entries)) {
    const got = "mcpServers" in config ? `; "mcpServers" is ${kindOf(entries)}` : "";
    throw new ConfigError(`${fileName} has no "mcpServers" object${got}`);
  }

  const servers: StdioServerSpec[] = [];
  const warnings: string[] = [];
  for (const [name, entry] of Object.entries(entries)) {
    const where = `${fileName}: server ${describe(name)}`;
    if (!isObject(entry)) {
      warnings.push(`${where} must be an object, got ${kindOf(entry)}; skipped`);
      continue;
    }
    // Checked before the fields: an entry is often switched off precisely because it is incomplete.
    const switchedOffBy = disabledBy(entry);
    if (switchedOffBy) {
      warnings.push(`${where} is disabled (${switchedOffBy}), skipped`);
      continue;
    }
    const spec = toServerSpec(name, entry);
    if (typeof spec === "string") {
      warnings.push(`${where}: ${spec}; skipped`);
      continue;
    }
    if ("enabled" in entry && typeof entry.enabled !== "boolean") {
      warnings.push(
        `${where}: "enabled" ${describe(entry.enabled)} is taken as true, as the Python version does`,
      );
    }
    if ("transportType" in entry && entry.transportType !== "stdio") {
      warnings.push(
        `${where}: "transportType" ${describe(entry.transportType)} is ignored; it is run over stdio`,
      );
    }
    servers.push(spec);
  }
  return { servers, warnings };
}

/**
 * Reads and validates a named-server config file; see {@linkcode parseNamedServerConfig}.
 *
 * @throws {ConfigError} The file cannot be read, is not UTF-8, or its content is unusable as a whole.
 *
 * @example
 * ```ts ignore
 * import { loadNamedServerConfig } from "./named_server_config.ts";
 *
 * const { servers, warnings } = await loadNamedServerConfig("servers.json");
 * ```
 */
export async function loadNamedServerConfig(path: string): Promise<NamedServerConfig> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`cannot read named-server config ${path}: ${reason}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Not read with its bad bytes replaced: a command or a value would then be silently other than written.
    throw new ConfigError(`${path} is not valid UTF-8 (JSON text must be)`);
  }
  return parseNamedServerConfig(text, path);
}
