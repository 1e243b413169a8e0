/**
 * Turns `mcp-proxy`'s arguments (and the few environment variables it honours) into a {@linkcode CommandLine}:
 * argparse-compatible tokenising, defaults, mode selection and validation. Pure: no I/O, no printing.
 *
 * @module
 */

import { splitShellWords } from "../shell_split.ts";
import {
  type ClientModeOptions,
  type ClientTransportName,
  type CommandLine,
  type CommonOptions,
  type LogFormat,
  type LogLevelName,
  type RestartPolicy,
  type ServerModeOptions,
  type StdioServerSpec,
  UsageError,
  type VerifySsl,
} from "./command_line.ts";

/** How many values an option takes: none, exactly one or two, or one optional value. */
type Arity = "none" | "one" | "two" | "optional";

/** The mode an option belongs to; options of the other mode are ignored with a warning. */
type Scope = "client" | "server" | "common";

interface OptionSpec {
  readonly key: string;
  /** Short (`-H`) and long (`--headers`) spellings; the long one is used in messages. */
  readonly names: readonly string[];
  readonly arity: Arity;
  readonly scope: Scope;
  /** Names of the two values of a two-value option, for messages. */
  readonly metavars?: readonly [string, string];
}

/**
 * How long a session may stay idle by default before it is closed, with `--isolate-sessions` (its child is
 * stopped) or `--max-sessions` (its place is freed): 10 minutes. Otherwise sessions never idle out.
 */
export const DEFAULT_BOUNDED_IDLE_TIMEOUT_MS = 600_000;

/** The longest stdio line read by default: 64 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** The largest HTTP request body accepted by default: 4 MiB, as the MCP SDK's transport. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** How long client mode keeps trying to reach the server by default: 30 s. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

const OPTIONS = [
  { key: "help", names: ["-h", "--help"], arity: "none", scope: "common" },
  { key: "version", names: ["--version"], arity: "none", scope: "common" },
  { key: "headers", names: ["-H", "--headers"], arity: "two", scope: "client", metavars: ["KEY", "VALUE"] },
  { key: "transport", names: ["--transport"], arity: "one", scope: "client" },
  { key: "apiAccessToken", names: ["--api-access-token"], arity: "one", scope: "client" },
  { key: "verifySsl", names: ["--verify-ssl"], arity: "optional", scope: "client" },
  { key: "noVerifySsl", names: ["--no-verify-ssl"], arity: "none", scope: "client" },
  { key: "clientId", names: ["--client-id"], arity: "one", scope: "client" },
  { key: "clientSecret", names: ["--client-secret"], arity: "one", scope: "client" },
  { key: "tokenUrl", names: ["--token-url"], arity: "one", scope: "client" },
  { key: "connectTimeout", names: ["--connect-timeout"], arity: "one", scope: "client" },
  { key: "requestTimeout", names: ["--request-timeout"], arity: "one", scope: "common" },
  { key: "maxLineSize", names: ["--max-line-size"], arity: "one", scope: "common" },
  { key: "logFormat", names: ["--log-format"], arity: "one", scope: "common" },
  { key: "apiKey", names: ["--api-key"], arity: "one", scope: "server" },
  { key: "maxBodySize", names: ["--max-body-size"], arity: "one", scope: "server" },
  { key: "maxSessions", names: ["--max-sessions"], arity: "one", scope: "server" },
  { key: "env", names: ["-e", "--env"], arity: "two", scope: "server", metavars: ["KEY", "VALUE"] },
  { key: "cwd", names: ["--cwd"], arity: "one", scope: "server" },
  { key: "passEnvironment", names: ["--pass-environment"], arity: "none", scope: "server" },
  { key: "noPassEnvironment", names: ["--no-pass-environment"], arity: "none", scope: "server" },
  {
    key: "namedServer",
    names: ["--named-server"],
    arity: "two",
    scope: "server",
    metavars: ["NAME", "COMMAND_STRING"],
  },
  { key: "namedServerConfig", names: ["--named-server-config"], arity: "one", scope: "server" },
  { key: "port", names: ["--port"], arity: "one", scope: "server" },
  { key: "host", names: ["--host"], arity: "one", scope: "server" },
  { key: "ssePort", names: ["--sse-port"], arity: "one", scope: "server" },
  { key: "sseHost", names: ["--sse-host"], arity: "one", scope: "server" },
  { key: "stateless", names: ["--stateless"], arity: "none", scope: "server" },
  { key: "noStateless", names: ["--no-stateless"], arity: "none", scope: "server" },
  { key: "allowOrigin", names: ["--allow-origin"], arity: "one", scope: "server" },
  { key: "exposeHeader", names: ["--expose-header"], arity: "one", scope: "server" },
  { key: "allowHost", names: ["--allow-host"], arity: "one", scope: "server" },
  { key: "isolateSessions", names: ["--isolate-sessions"], arity: "none", scope: "server" },
  { key: "sessionIdleTimeout", names: ["--session-idle-timeout"], arity: "one", scope: "server" },
  { key: "noRestart", names: ["--no-restart"], arity: "none", scope: "server" },
  { key: "restartDelay", names: ["--restart-delay"], arity: "one", scope: "server" },
  { key: "restartDelayMax", names: ["--restart-delay-max"], arity: "one", scope: "server" },
  { key: "logLevel", names: ["--log-level"], arity: "one", scope: "common" },
  { key: "debug", names: ["--debug"], arity: "none", scope: "common" },
  { key: "noDebug", names: ["--no-debug"], arity: "none", scope: "common" },
] as const satisfies readonly OptionSpec[];

type Option = (typeof OPTIONS)[number];
type OptionKey = Option["key"];

const OPTIONS_BY_NAME: ReadonlyMap<string, Option> = new Map(
  OPTIONS.flatMap((option) => option.names.map((name) => [name, option] as const)),
);
const OPTIONS_BY_KEY: ReadonlyMap<OptionKey, Option> = new Map(OPTIONS.map((option) => [option.key, option]));
const LONG_NAMES: readonly string[] = OPTIONS.flatMap((option) =>
  option.names.filter((n) => n.startsWith("--"))
);

/**
 * The long options of the Python version (argparse, whose unique prefixes work too): an abbreviation
 * that named one of them there is read as that one, though ours have more names it begins.
 */
const PYTHON_LONG_NAMES: ReadonlySet<string> = new Set([
  "--help",
  "--version",
  "--headers",
  "--transport",
  "--verify-ssl",
  "--no-verify-ssl",
  "--client-id",
  "--client-secret",
  "--token-url",
  "--env",
  "--cwd",
  "--pass-environment",
  "--no-pass-environment",
  "--log-level",
  "--debug",
  "--no-debug",
  "--named-server",
  "--named-server-config",
  "--port",
  "--host",
  "--stateless",
  "--no-stateless",
  "--sse-port",
  "--sse-host",
  "--allow-origin",
]);

const LOG_LEVELS: readonly LogLevelName[] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const TRANSPORTS: readonly ClientTransportName[] = ["auto", "sse", "streamablehttp"];
const VERIFY_SSL_FALSE = ["false", "0", "no", "off"];
const VERIFY_SSL_TRUE = ["true", "1", "yes", "on"];

/** argparse's test for a token that is a negative number, hence a positional, not an option. */
const NEGATIVE_NUMBER = /^-\d+$|^-\d*\.\d+$/;
/** Named servers are served under `/servers/NAME/`, so NAME must be a plain URL path segment. */
const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9._~-]*$/;
/** RFC 9110 `token`: what an HTTP header name may consist of. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SESSION_ID_HEADER = "mcp-session-id";
const DEFAULT_HOST = "127.0.0.1";
const MAX_PORT = 65535;
const SEPARATOR_HINT = "arguments meant for the server command must come after --, " +
  "e.g. mcp-proxy --port 8080 -- uvx srv --flag";

function quote(value: string): string {
  return JSON.stringify(value);
}

/**
 * A name given where a KEY goes, quoted up to the first `separator` and not beyond: what follows is a
 * value written into it (`-e TOKEN=…` as for docker, `-H "Authorization: …"` as for curl), which may be a
 * secret (found by QA and review).
 */
function quotedUpTo(name: string, separator: RegExp): string {
  const at = name.search(separator);
  return at === -1 ? quote(name) : `${quote(name.slice(0, at + 1))}…`;
}

function isHttpUrl(value: string): boolean {
  return /^https?:\/\//i.test(value);
}

function isOptionLike(token: string): boolean {
  return token.startsWith("-") && token !== "-" && !NEGATIVE_NUMBER.test(token);
}

/** The long option names `name` could abbreviate: itself if exact, else every name it is a prefix of. */
function longNameCandidates(name: string): string[] {
  if (OPTIONS_BY_NAME.has(name)) return [name];
  return name === "--" ? [] : LONG_NAMES.filter((candidate) => candidate.startsWith(name));
}

/** Whether `token` would be read as one of our options (so it cannot be an option's value). */
function isKnownOption(token: string): boolean {
  if (token === "--" || OPTIONS_BY_NAME.has(token)) return true;
  if (!token.startsWith("--")) return false;
  const equals = token.indexOf("=");
  return longNameCandidates(equals === -1 ? token : token.slice(0, equals)).length > 0;
}

/** An option token resolved to its spec: `shownAs` is the spelling used in messages. */
interface ResolvedOption {
  option: Option;
  shownAs: string;
  inlineValue?: string;
}

/** Resolves an option-like token, or returns `undefined` if it is not one of ours. */
function resolveOption(token: string): ResolvedOption | undefined {
  if (!token.startsWith("--")) {
    const option = OPTIONS_BY_NAME.get(token);
    if (option) return { option, shownAs: token };
    const attachedTo = OPTIONS_BY_NAME.get(token.slice(0, 2));
    if (attachedTo) {
      const metavars = "metavars" in attachedTo ? ` ${attachedTo.metavars.join(" ")}` : "";
      throw new UsageError(
        `${token.slice(0, 2)} takes no attached value; write ${
          token.slice(0, 2)
        }${metavars} as separate arguments`,
      );
    }
    return undefined;
  }
  const equals = token.indexOf("=");
  const name = equals === -1 ? token : token.slice(0, equals);
  const inlineValue = equals === -1 ? undefined : token.slice(equals + 1);
  let candidates = longNameCandidates(name);
  if (candidates.length > 1) {
    // What abbreviates one option of the Python version (`--log` for --log-level) stays its own.
    const python = candidates.filter((candidate) => PYTHON_LONG_NAMES.has(candidate));
    if (python.length === 1) candidates = python;
  }
  if (candidates.length > 1) {
    throw new UsageError(`ambiguous option ${name}: it could be ${candidates.join(", ")}`);
  }
  if (candidates.length === 0) return undefined;
  const option = OPTIONS_BY_NAME.get(candidates[0])!;
  return { option, shownAs: candidates[0], inlineValue };
}

/** A port, written as Python's `int()` reads it (as the Python mcp-proxy does): "+8080", " 8080", "8_080". */
function parsePort(value: string, shownAs: string): number {
  const digits = /^\s*\+?(\d+(?:_\d+)*)\s*$/.exec(value)?.[1].replaceAll("_", "");
  const port = Number(digits);
  if (digits === undefined || port > MAX_PORT) {
    throw new UsageError(`${shownAs} expects an integer from 0 to ${MAX_PORT}, got ${quote(value)}`);
  }
  return port;
}

/** A size in bytes: a whole number, optionally with a unit: K, KB, KiB, M, MB, MiB, G, GB, GiB (all 1024-based). */
function parseSize(value: string, shownAs: string): number {
  const match = /^(\d+)\s*(k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(value.trim());
  const power = { k: 1, m: 2, g: 3 }[match?.[2]?.[0].toLowerCase() as "k" | "m" | "g"] ?? 0;
  const bytes = match === null ? NaN : Number(match[1]) * 1024 ** power;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new UsageError(`${shownAs} expects a size such as 1048576, 512K or 4M, got ${quote(value)}`);
  }
  return bytes;
}

/** A whole number, 0 or more. */
function parseCount(value: string, shownAs: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`${shownAs} expects a whole number (0 for no limit), got ${quote(value)}`);
  }
  return Number(value);
}

/** Seconds (decimals allowed) as milliseconds; 0 only where it means "no limit". */
function parseSeconds(value: string, shownAs: string, zeroMeansNoLimit: boolean): number {
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || (!zeroMeansNoLimit && seconds === 0)) {
    const expected = zeroMeansNoLimit
      ? "a number of seconds (0 for no limit)"
      : "a positive number of seconds";
    throw new UsageError(`${shownAs} expects ${expected}, got ${quote(value)}`);
  }
  // At least 1 ms when not 0 (found by QA: 0.0001 meant no limit); at most what a timer can wait (2^31 - 1
  // ms, some 24.8 days; found by QA: beyond, the timer fired at once, over and over).
  if (seconds > MAX_SECONDS) {
    throw new UsageError(
      `${shownAs} expects at most ${MAX_SECONDS} seconds (24.8 days), got ${quote(value)}`,
    );
  }
  return seconds === 0 ? 0 : Math.max(1, Math.round(seconds * 1000));
}

/** The longest time a timer waits: 2^31 - 1 ms. */
const MAX_SECONDS = 2_147_483;

function parseChoice<T extends string>(value: string, choices: readonly T[], shownAs: string): T {
  const choice = choices.find((candidate) => candidate.toLowerCase() === value.toLowerCase());
  if (choice === undefined) {
    throw new UsageError(`${shownAs} expects one of ${choices.join(", ")}, got ${quote(value)}`);
  }
  return choice;
}

function parseVerifySsl(value: string | undefined): VerifySsl {
  if (value === undefined) return { kind: "verify" };
  const lower = value.toLowerCase();
  if (VERIFY_SSL_FALSE.includes(lower)) return { kind: "no-verify" };
  if (VERIFY_SSL_TRUE.includes(lower)) return { kind: "verify" };
  if (value === "") {
    throw new UsageError("--verify-ssl expects true, false or the path of a CA bundle, got an empty value");
  }
  return { kind: "ca-file", path: value };
}

/** Rejects an empty value for options where it can only be a mistake; never echoes the value. */
function requireNonEmpty(value: string | undefined, shownAs: string): void {
  if (value === "") throw new UsageError(`${shownAs} expects a non-empty value`);
}

/**
 * `MCP_PROXY_API_KEY`, when set; never echoed. Set but empty is a usage error, as an empty `--api-key` is:
 * `MCP_PROXY_API_KEY=${KEY}` with `KEY` unset (a compose file, a unit) must not run with no key at all.
 */
function apiKeyFromEnvironment(env: Record<string, string | undefined>): string[] {
  const key = env.MCP_PROXY_API_KEY;
  if (key === undefined) return [];
  if (key === "") {
    throw new UsageError("MCP_PROXY_API_KEY is set but empty: give it a key, or unset it to need none");
  }
  if (/\s/.test(key)) {
    throw new UsageError("MCP_PROXY_API_KEY must not contain white space: a key is sent as one token");
  }
  return [key];
}

/**
 * Why an `--allow-origin` value can never equal a browser's `Origin` header (scheme, host and port alone,
 * in lower case), or undefined when it can.
 */
function originProblem(origin: string): string | undefined {
  if (origin === "*") return undefined;
  if (origin.includes(",")) return "can never match: give each origin its own --allow-origin";
  if (!URL.canParse(origin)) {
    return "can never match: an origin is a scheme, a host and a port, e.g. https://app.example";
  }
  const parsed = new URL(origin);
  if (parsed.origin !== "null" && parsed.origin !== origin) {
    return `can never match: browsers send ${parsed.origin} (no path, no trailing slash, lower case)`;
  }
  return undefined;
}

/** Everything the token scan collected, before the mode is known; defaults applied. */
interface Collected {
  positionals: string[];
  /** Options given explicitly, in order of first appearance, with the spelling to show. */
  given: Map<OptionKey, string>;
  warnings: string[];
  headers: [string, string][];
  transport: ClientTransportName;
  apiAccessToken?: string;
  verifySsl: VerifySsl;
  clientId?: string;
  clientSecret?: string;
  tokenUrl?: string;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  maxLineBytes: number;
  logFormat: LogFormat;
  apiKeys: string[];
  maxBodyBytes: number;
  maxSessions: number;
  env: [string, string][];
  cwd?: string;
  passEnvironment: boolean;
  namedServers: [string, string][];
  namedServerConfig?: string;
  port: number;
  host: string;
  stateless: boolean;
  allowOrigins: string[];
  exposeHeaders: string[];
  allowHosts: string[];
  isolateSessions: boolean;
  sessionIdleTimeoutMs?: number;
  restart: RestartPolicy;
  logLevel: LogLevelName;
  debug: boolean;
}

/** Records one option occurrence; returns `"help"` or `"version"` when the command line ends there. */
function applyOption(
  collected: Collected,
  key: OptionKey,
  shownAs: string,
  values: string[],
): "help" | "version" | undefined {
  const [value, second] = values;
  switch (key) {
    case "help":
    case "version":
      return key;
    case "headers":
      collected.headers.push([value, second]);
      break;
    case "transport":
      collected.transport = parseChoice(value, TRANSPORTS, shownAs);
      break;
    case "apiAccessToken":
      collected.apiAccessToken = value;
      break;
    case "verifySsl":
      collected.verifySsl = parseVerifySsl(value);
      break;
    case "noVerifySsl":
      collected.verifySsl = { kind: "no-verify" };
      break;
    case "clientId":
      collected.clientId = value;
      break;
    case "clientSecret":
      collected.clientSecret = value;
      break;
    case "tokenUrl":
      collected.tokenUrl = value;
      break;
    case "connectTimeout":
      collected.connectTimeoutMs = parseSeconds(value, shownAs, false);
      break;
    case "requestTimeout":
      collected.requestTimeoutMs = parseSeconds(value, shownAs, true);
      break;
    case "maxLineSize":
      collected.maxLineBytes = parseSize(value, shownAs);
      break;
    case "logFormat":
      collected.logFormat = parseChoice(value, LOG_FORMATS, shownAs);
      break;
    case "apiKey":
      requireNonEmpty(value, shownAs);
      if (/\s/.test(value)) {
        throw new UsageError(`${shownAs} must not contain white space: a key is sent as one token`);
      }
      collected.apiKeys.push(value);
      break;
    case "maxBodySize":
      collected.maxBodyBytes = parseSize(value, shownAs);
      break;
    case "maxSessions":
      collected.maxSessions = parseCount(value, shownAs);
      break;
    case "env":
      collected.env.push([value, second]);
      break;
    case "cwd":
      collected.cwd = value;
      break;
    case "passEnvironment":
    case "noPassEnvironment":
      collected.passEnvironment = key === "passEnvironment";
      break;
    case "namedServer":
      collected.namedServers.push([value, second]);
      break;
    case "namedServerConfig":
      collected.namedServerConfig = value;
      break;
    // The deprecated spellings count only without the real one, which the Python version always uses.
    case "ssePort":
      if (!collected.given.has("port")) collected.port = parsePort(value, shownAs);
      else parsePort(value, shownAs);
      break;
    case "port":
      collected.port = parsePort(value, shownAs);
      break;
    case "sseHost":
      if (!collected.given.has("host")) collected.host = value;
      break;
    case "host":
      collected.host = value;
      break;
    case "stateless":
    case "noStateless":
      collected.stateless = key === "stateless";
      break;
    case "allowOrigin":
      collected.allowOrigins.push(value);
      break;
    case "exposeHeader":
      collected.exposeHeaders.push(value);
      break;
    case "allowHost":
      collected.allowHosts.push(value.toLowerCase());
      break;
    case "isolateSessions":
      collected.isolateSessions = true;
      break;
    case "sessionIdleTimeout":
      collected.sessionIdleTimeoutMs = parseSeconds(value, shownAs, true);
      break;
    case "noRestart":
      collected.restart.enabled = false;
      break;
    case "restartDelay":
      collected.restart.initialDelayMs = parseSeconds(value, shownAs, false);
      break;
    case "restartDelayMax":
      collected.restart.maxDelayMs = parseSeconds(value, shownAs, false);
      break;
    case "logLevel":
      collected.logLevel = parseChoice(value, LOG_LEVELS, shownAs);
      break;
    case "debug":
    case "noDebug":
      collected.debug = key === "debug";
      break;
  }
  return undefined;
}

/**
 * Reads the tokens left to right like argparse: options anywhere before `--`, positionals collected in
 * order. `--help`/`--version` end parsing where they stand; an unknown option is reported only after the
 * scan (so `--help` later on still wins), every other malformed option at once.
 */
function collect(argv: readonly string[]): Collected | "help" | "version" {
  const collected: Collected = {
    positionals: [],
    given: new Map(),
    warnings: [],
    headers: [],
    transport: "auto",
    verifySsl: { kind: "verify" },
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    requestTimeoutMs: 0,
    maxLineBytes: DEFAULT_MAX_LINE_BYTES,
    logFormat: "text",
    apiKeys: [],
    maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
    maxSessions: 0,
    env: [],
    passEnvironment: false,
    namedServers: [],
    port: 0,
    host: DEFAULT_HOST,
    stateless: false,
    allowOrigins: [],
    exposeHeaders: [],
    allowHosts: [],
    isolateSessions: false,
    restart: { enabled: true, initialDelayMs: 1000, maxDelayMs: 30_000 },
    logLevel: "INFO",
    debug: false,
  };
  let unknownOption: string | undefined;
  let afterSeparator = false;
  let i = 0;
  /** The option just read, when its value was the token before this one. */
  let lastOption: OptionKey | undefined;

  const takeValue = (shownAs: string, what: string): string => {
    const next = argv[i];
    if (next === undefined || isKnownOption(next)) throw new UsageError(`${shownAs} expects ${what}`);
    i++;
    return next;
  };

  while (i < argv.length) {
    const token = argv[i++];
    if (afterSeparator || !isOptionLike(token)) {
      if (!afterSeparator && lastOption === "allowOrigin" && isHttpUrl(token)) {
        // The Python version's --allow-origin takes several values. Before the command, the second would
        // run client mode here; after it, it is another origin, as it is there, not the server's argument.
        if (collected.positionals.length === 0) {
          throw new UsageError(
            `${quote(token)} follows --allow-origin's value: give each origin its own --allow-origin ` +
              "(mcp-proxy takes one per flag); a URL there would be taken as the server to connect to",
          );
        }
        collected.allowOrigins.push(token);
        continue;
      }
      lastOption = undefined;
      collected.positionals.push(token);
      continue;
    }
    lastOption = undefined;
    if (token === "--") {
      afterSeparator = true;
      continue;
    }
    const resolved = resolveOption(token);
    if (resolved === undefined) {
      // Only the name: a value after `=` may be a secret.
      unknownOption ??= token.split("=", 1)[0];
      continue;
    }
    const { option, shownAs, inlineValue } = resolved;
    const values: string[] = [];
    if (option.arity === "none" || option.arity === "two") {
      if (inlineValue !== undefined) {
        const expected = option.arity === "none" ? "takes no value" : "takes two separate values";
        throw new UsageError(`${shownAs} ${expected}, but was written as ${shownAs}=…`);
      }
      if (option.arity === "two") {
        const what = `two values, ${option.metavars.join(" ")}`;
        values.push(takeValue(shownAs, what), takeValue(shownAs, what));
      }
    } else if (option.arity === "one") {
      values.push(inlineValue ?? takeValue(shownAs, "a value"));
    } else if (inlineValue !== undefined) {
      values.push(inlineValue);
    } else if (i < argv.length && !argv[i].startsWith("-") && !isHttpUrl(argv[i])) {
      values.push(argv[i++]);
    }

    if (!collected.given.has(option.key)) {
      collected.given.set(option.key, shownAs);
      if (option.key === "ssePort" || option.key === "sseHost") {
        collected.warnings.push(`${shownAs} is deprecated, use ${shownAs.replace("--sse-", "--")}`);
      }
    }
    const finished = applyOption(collected, option.key, shownAs, values);
    if (finished) return finished;
    if (inlineValue === undefined) lastOption = option.key;
  }

  if (unknownOption !== undefined) {
    throw new UsageError(`unrecognized option ${unknownOption}: ${SEPARATOR_HINT}`);
  }
  return collected;
}

/** One warning per option of `scope` that was given although the other mode runs. */
function ignoredOptionWarnings(collected: Collected, scope: Scope, mode: string): string[] {
  return [...collected.given]
    .filter(([key]) => OPTIONS_BY_KEY.get(key)?.scope === scope)
    .map(([, shownAs]) => `${shownAs} is ignored in ${mode} mode`);
}

/**
 * What an HTTP header value may hold (RFC 9110 §5.5): tabs, visible characters and spaces, and bytes 0x80 to
 * 0xFF; `fetch` throws at any other (a line break, a control character, `€`).
 */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const HEADER_VALUE_RULE =
  "must hold only printable characters of ISO-8859-1: no line breaks, control characters or characters such as € (an HTTP header cannot carry them)";

/** Rejects a token sent in an HTTP header that cannot be; never echoes it. */
function requireHeaderValue(value: string | undefined, shownAs: string): void {
  if (value !== undefined && !HEADER_VALUE.test(value)) {
    throw new UsageError(`${shownAs} ${HEADER_VALUE_RULE}`);
  }
}

/**
 * A URL's text as an error may show it: without a user name and password, a query or a fragment, which
 * may hold secrets (found by review: an unparseable URL was shown whole).
 */
function withoutSecrets(url: string): string {
  return url.replace(/\/\/[^/?#]*@/, "//***@").replace(/[?#].*$/s, "");
}

function buildHeaders(pairs: readonly [string, string][], shownAs: string): Record<string, string> {
  const entries: [string, string][] = [];
  const indexByLowerName = new Map<string, number>();
  for (const [name, value] of pairs) {
    if (!HEADER_NAME.test(name)) {
      const shown = quotedUpTo(name, /[:\s=]/);
      throw new UsageError(
        `${shownAs} expects an HTTP header name as KEY, got ${shown} (write ${shownAs} KEY VALUE)`,
      );
    }
    if (!HEADER_VALUE.test(value)) throw new UsageError(`${shownAs} ${name}: the VALUE ${HEADER_VALUE_RULE}`);
    const index = indexByLowerName.get(name.toLowerCase());
    if (index === undefined) {
      indexByLowerName.set(name.toLowerCase(), entries.length);
      entries.push([name, value]);
    } else {
      entries[index] = [name, value];
    }
  }
  return Object.fromEntries(entries);
}

/** Headers client mode writes itself, whatever `-H` says: the wire's, and the media types of MCP's. */
const OWN_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "content-type",
  "accept",
]);

/** A warning for each `-H` header client mode does not send as given. */
function ownHeaderWarnings(headers: Record<string, string>, shownAs: string): string[] {
  return Object.keys(headers).filter((name) => OWN_HEADERS.has(name.toLowerCase())).map((name) =>
    `${shownAs} ${name} is not sent: mcp-proxy sets this header itself`
  );
}

function buildOAuth(collected: Collected): ClientModeOptions["oauth"] {
  const { clientId, clientSecret, tokenUrl } = collected;
  if (clientId === undefined && clientSecret === undefined) {
    if (tokenUrl !== undefined) {
      throw new UsageError("--token-url needs --client-id and --client-secret as well");
    }
    return undefined;
  }
  if (clientSecret === undefined) {
    throw new UsageError("--client-id needs --client-secret as well: OAuth2 client credentials take both");
  }
  if (clientId === undefined) {
    throw new UsageError("--client-secret needs --client-id as well: OAuth2 client credentials take both");
  }
  requireNonEmpty(clientId, "--client-id");
  requireNonEmpty(clientSecret, "--client-secret");
  if (tokenUrl === undefined) return { clientId, clientSecret };
  if (!isHttpUrl(tokenUrl) || !URL.canParse(tokenUrl)) {
    throw new UsageError(
      `--token-url expects an http:// or https:// URL, got ${quote(withoutSecrets(tokenUrl))}`,
    );
  }
  const parsed = new URL(tokenUrl);
  if (parsed.username !== "" || parsed.password !== "") {
    // Never echoed: it holds a secret.
    throw new UsageError(
      "--token-url must not hold credentials (user:password@): --client-id and --client-secret are sent with HTTP Basic",
    );
  }
  return { clientId, clientSecret, tokenUrl };
}

function buildClientMode(
  collected: Collected,
  url: string,
  extraArgs: readonly string[],
  env: Record<string, string | undefined>,
  common: Omit<CommonOptions, "warnings">,
): ClientModeOptions {
  if (extraArgs.length > 0) {
    // Ignored, as the Python version ignores them; not shown: one may be a secret put in the wrong place.
    const count = extraArgs.length === 1 ? "1 argument" : `${extraArgs.length} arguments`;
    collected.warnings.push(`client mode takes no arguments after the URL: ${count} ignored`);
  }
  if (!URL.canParse(url)) throw new UsageError(`${quote(withoutSecrets(url))} is not a valid URL`);
  requireNonEmpty(collected.apiAccessToken, "--api-access-token");
  requireHeaderValue(collected.apiAccessToken, "--api-access-token");
  if (collected.apiAccessToken === undefined) requireHeaderValue(env.API_ACCESS_TOKEN, "API_ACCESS_TOKEN");
  const apiAccessToken = collected.apiAccessToken ?? (env.API_ACCESS_TOKEN || undefined);
  const oauth = buildOAuth(collected);
  const headersShownAs = collected.given.get("headers") ?? "--headers";
  const headers = buildHeaders(collected.headers, headersShownAs);
  return {
    mode: "client",
    url,
    transport: collected.transport,
    headers,
    ...(apiAccessToken === undefined ? {} : { apiAccessToken }),
    verifySsl: collected.verifySsl,
    ...(oauth === undefined ? {} : { oauth }),
    connectTimeoutMs: collected.connectTimeoutMs,
    ...common,
    warnings: [
      ...collected.warnings,
      ...ownHeaderWarnings(headers, headersShownAs),
      ...ignoredOptionWarnings(collected, "server", "client"),
    ],
  };
}

function buildDefaultServerEnv(pairs: readonly [string, string][], shownAs: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of pairs) {
    if (name === "" || /[=\0]/.test(name)) {
      const shown = quotedUpTo(name, /=/);
      throw new UsageError(
        `${shownAs} expects an environment variable name as KEY, got ${shown} (write ${shownAs} KEY VALUE)`,
      );
    }
    if (value.includes("\0")) throw new UsageError(`${shownAs} ${name}: the VALUE must not contain NUL`);
    env[name] = value;
  }
  return env;
}

function buildNamedServers(definitions: readonly [string, string][], warnings: string[]): StdioServerSpec[] {
  const servers = new Map<string, StdioServerSpec>();
  for (const [name, commandString] of definitions) {
    if (!SERVER_NAME.test(name)) {
      throw new UsageError(
        `--named-server expects a NAME usable in the URL /servers/NAME/ (letters, digits, ".", "_", "~", "-", ` +
          `starting with a letter or digit), got ${quote(name)}`,
      );
    }
    let words: string[];
    try {
      words = splitShellWords(commandString);
    } catch (error) {
      throw new UsageError(
        `--named-server ${name}: cannot split COMMAND_STRING: ${(error as Error).message}`,
      );
    }
    const [command, ...args] = words;
    if (command === undefined || command === "") {
      throw new UsageError(`--named-server ${name}: COMMAND_STRING is empty, expected a command to run`);
    }
    if (servers.has(name)) {
      warnings.push(
        `--named-server ${name} is given more than once; the last definition replaces the earlier`,
      );
    }
    servers.set(name, { name, command, args, env: {} });
  }
  return [...servers.values()];
}

function buildServerMode(
  collected: Collected,
  positionals: readonly string[],
  env: Record<string, string | undefined>,
  common: Omit<CommonOptions, "warnings">,
): ServerModeOptions {
  const { given } = collected;
  const warnings = [...collected.warnings, ...ignoredOptionWarnings(collected, "client", "server")];
  const [command, ...args] = positionals;

  let defaultServer: StdioServerSpec | undefined;
  if (command !== undefined) {
    const env = buildDefaultServerEnv(collected.env, given.get("env") ?? "--env");
    // Empty is none, as the Python version takes it (`--cwd "$DIR"` with DIR unset).
    if (collected.cwd === "") warnings.push("--cwd is empty: the server starts in mcp-proxy's own directory");
    const cwd = collected.cwd || undefined;
    defaultServer = { name: "default", command, args, env, ...(cwd === undefined ? {} : { cwd }) };
  } else {
    for (const key of ["env", "cwd"] as const) {
      const shownAs = given.get(key);
      if (shownAs !== undefined) {
        warnings.push(
          `${shownAs} is ignored: it applies only to the default server, and no command was given`,
        );
      }
    }
  }

  let namedServers: StdioServerSpec[] = [];
  const namedServerConfig = collected.namedServerConfig;
  if (namedServerConfig !== undefined) {
    requireNonEmpty(namedServerConfig, "--named-server-config");
    if (collected.namedServers.length > 0) {
      warnings.push("--named-server is ignored because --named-server-config is given");
    }
  } else {
    namedServers = buildNamedServers(collected.namedServers, warnings);
  }

  if (defaultServer !== undefined && namedServers.some(({ name }) => name === defaultServer.name)) {
    throw new UsageError(
      `--named-server ${defaultServer.name}: that name is the default server's (the command given without a ` +
        `name, served at /); choose another`,
    );
  }

  if (defaultServer === undefined && namedServers.length === 0 && namedServerConfig === undefined) {
    // The warnings are not printed when parsing fails: one that explains it goes with the error.
    const ignored = collected.warnings.find((warning) => warning.startsWith("the SSE_URL"));
    throw new UsageError(
      `nothing to run: give a command, --named-server, --named-server-config, or a URL${
        ignored === undefined ? "" : ` (${ignored})`
      }`,
      1,
    );
  }

  requireNonEmpty(collected.host, given.get("host") ?? given.get("sseHost") ?? "--host");
  if (given.has("port") && given.has("ssePort")) warnings.push("--sse-port is ignored: --port is given");
  if (given.has("host") && given.has("sseHost")) warnings.push("--sse-host is ignored: --host is given");
  collected.allowOrigins.forEach((origin) => requireNonEmpty(origin, "--allow-origin"));
  for (const origin of collected.allowOrigins) {
    const problem = originProblem(origin);
    if (problem !== undefined) warnings.push(`--allow-origin ${origin} ${problem}`);
  }
  // Found by QA: an empty one (an unset variable) let through requests with an empty Host, and nothing else.
  collected.allowHosts.forEach((host) => requireNonEmpty(host, "--allow-host"));
  for (const host of collected.allowHosts) {
    if (/[:/]/.test(host) && !/^\[[0-9a-f:.]+\]$/i.test(host)) {
      warnings.push(
        `--allow-host ${host} can never match: give a host name alone, without a scheme or port (IPv6 in brackets)`,
      );
    }
  }
  if (given.has("restartDelayMax") && collected.restart.maxDelayMs < collected.restart.initialDelayMs) {
    warnings.push(
      `--restart-delay-max is below --restart-delay: restarts wait ${
        collected.restart.initialDelayMs / 1000
      } s`,
    );
  }
  const exposeHeaders = [SESSION_ID_HEADER];
  for (const header of collected.exposeHeaders) {
    if (!HEADER_NAME.test(header)) {
      throw new UsageError(`--expose-header expects an HTTP header name, got ${quote(header)}`);
    }
    if (!exposeHeaders.some((known) => known.toLowerCase() === header.toLowerCase())) {
      exposeHeaders.push(header);
    }
  }

  return {
    mode: "server",
    ...(defaultServer === undefined ? {} : { defaultServer }),
    namedServers,
    ...(namedServerConfig === undefined ? {} : { namedServerConfig }),
    passEnvironment: collected.passEnvironment,
    host: collected.host,
    port: collected.port,
    stateless: collected.stateless,
    allowOrigins: collected.allowOrigins,
    exposeHeaders,
    allowHosts: collected.allowHosts,
    isolateSessions: collected.isolateSessions,
    sessionIdleTimeoutMs: collected.sessionIdleTimeoutMs ??
      (collected.isolateSessions || collected.maxSessions > 0 ? DEFAULT_BOUNDED_IDLE_TIMEOUT_MS : 0),
    restart: {
      ...collected.restart,
      maxDelayMs: Math.max(collected.restart.maxDelayMs, collected.restart.initialDelayMs),
    },
    apiKeys: [...collected.apiKeys, ...apiKeyFromEnvironment(env)],
    maxBodyBytes: collected.maxBodyBytes,
    maxSessions: collected.maxSessions,
    ...common,
    warnings,
  };
}

/**
 * Parses `mcp-proxy`'s command line the way the Python version's argparse setup does, with the
 * improvements listed in the compatibility reference (repeatable `--allow-origin`, working `--sse-port`,
 * `--transport auto`, OAuth2 checks, and errors that explain themselves).
 *
 * Reads only `env.SSE_URL` (deprecated fallback for the URL) and `env.API_ACCESS_TOKEN` (client mode).
 * Never prints: remarks go to `warnings`, and the caller prints errors with the usage line.
 *
 * @param argv The arguments after the program name, e.g. `Deno.args`.
 * @param env The environment, e.g. `Deno.env.toObject()`.
 * @returns What to do: help, version, client mode or server mode, with defaults applied.
 * @throws {UsageError} With `exitCode` 2 for a malformed command line (unknown option, missing or bad
 *   value), 1 when there is nothing to run.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./parse_command_line.ts";
 *
 * const parsed = parseCommandLine(["--port", "8080", "--", "uvx", "mcp-server-fetch", "--flag"], {});
 * assert.equal(parsed.mode, "server");
 * if (parsed.mode === "server") {
 *   assert.equal(parsed.port, 8080);
 *   assert.deepEqual(parsed.defaultServer?.args, ["mcp-server-fetch", "--flag"]);
 * }
 * ```
 */
export function parseCommandLine(argv: string[], env: Record<string, string | undefined>): CommandLine {
  const collected = collect(argv);
  if (collected === "help") return { mode: "help" };
  if (collected === "version") return { mode: "version" };

  const common: Omit<CommonOptions, "warnings"> = {
    logLevel: collected.debug ? "DEBUG" : collected.logLevel,
    logFormat: collected.logFormat,
    requestTimeoutMs: collected.requestTimeoutMs,
    maxLineBytes: collected.maxLineBytes,
  };
  const [first, ...rest] = collected.positionals;
  if (first === "") {
    throw new UsageError("the command is empty: give a command or an http:// or https:// URL");
  }

  let target = first;
  if (target === undefined && env.SSE_URL) {
    if (isHttpUrl(env.SSE_URL)) {
      target = env.SSE_URL;
      collected.warnings.push("the SSE_URL environment variable is deprecated, pass the URL as an argument");
    } else {
      collected.warnings.push(
        "the SSE_URL environment variable is ignored: it is not an http:// or https:// URL",
      );
    }
  }

  if (target !== undefined && isHttpUrl(target)) {
    return buildClientMode(collected, target, rest, env, common);
  }
  return buildServerMode(collected, collected.positionals, env, common);
}
