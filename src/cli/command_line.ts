/**
 * The shape of a parsed command line: what `parseCommandLine` returns and every mode consumes.
 * Pure data, no behaviour; defaults are already applied.
 *
 * @module
 */

/** Log levels accepted by `--log-level` (case-insensitive on input, upper-case here). */
export type LogLevelName = "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL";

/** Transports accepted by `--transport` in client mode. */
export type ClientTransportName = "auto" | "sse" | "streamablehttp";

/** A stdio MCP server to spawn: the default one or a named one. */
export interface StdioServerSpec {
  /** `"default"` for the positional command, otherwise the name from `--named-server` or the config file. */
  name: string;
  command: string;
  args: string[];
  /** Extra environment on top of the safe base (and the whole environment with `--pass-environment`). */
  env: Record<string, string>;
  /** Working directory; `undefined` means the proxy's own. */
  cwd?: string;
}

/** TLS verification for client mode: verify with system roots, don't verify, or verify with a CA bundle. */
export type VerifySsl = { kind: "verify" } | { kind: "no-verify" } | { kind: "ca-file"; path: string };

/** When and how often a shared server's child that stopped is started again. */
export interface RestartPolicy {
  /** False with `--no-restart`. */
  enabled: boolean;
  /** `--restart-delay`: delay before the first restart, in ms; doubles with every failure in a row. */
  initialDelayMs: number;
  /** `--restart-delay-max`, in ms. */
  maxDelayMs: number;
}

/** `--log-format`: lines for people, or one JSON object per line for log collectors. */
export type LogFormat = "text" | "json";

/** Settings both modes share. */
export interface CommonOptions {
  logLevel: LogLevelName;
  logFormat: LogFormat;
  /**
   * `--request-timeout` in ms, 0 for no limit: the longest wait for one answer (client mode: from the
   * remote server; server mode: from the child), after which the request gets error -32001 and is
   * cancelled upstream.
   */
  requestTimeoutMs: number;
  /** `--max-line-size`: the longest stdio line read (client mode: stdin; server mode: children's stdout). */
  maxLineBytes: number;
  /** Non-fatal remarks found while parsing (deprecated flags, ignored flags); the caller logs them. */
  warnings: string[];
}

/** `mcp-proxy [options] URL`: a remote server as a local stdio server. */
export interface ClientModeOptions extends CommonOptions {
  mode: "client";
  url: string;
  transport: ClientTransportName;
  /** From `-H KEY VALUE`, in order; a later duplicate key (case-insensitive) has replaced an earlier one. */
  headers: Record<string, string>;
  /** `--api-access-token`, or env `API_ACCESS_TOKEN` when the flag is absent. */
  apiAccessToken?: string;
  verifySsl: VerifySsl;
  /** OAuth2 client credentials; both or neither of id and secret. */
  oauth?: { clientId: string; clientSecret: string; tokenUrl?: string };
  /** `--connect-timeout`: how long to keep trying to reach the server before giving up, in ms. */
  connectTimeoutMs: number;
}

/** `mcp-proxy [options] [--] COMMAND ARGS…` and/or named servers: stdio servers over HTTP. */
export interface ServerModeOptions extends CommonOptions {
  mode: "server";
  /** The positional command with `-e` and `--cwd` applied; absent when only named servers are given. */
  defaultServer?: StdioServerSpec;
  /** From `--named-server NAME COMMAND_STRING`, in order (ignored when a config file is given). */
  namedServers: StdioServerSpec[];
  /** `--named-server-config FILE`: read and validated by the caller. */
  namedServerConfig?: string;
  passEnvironment: boolean;
  host: string;
  /** 0 means: pick a free port. */
  port: number;
  stateless: boolean;
  /** `--allow-origin`, in order; empty means no CORS headers at all. */
  allowOrigins: string[];
  /** `Access-Control-Expose-Headers`; always starts with `mcp-session-id`. */
  exposeHeaders: string[];
  /** `--allow-host`: host names accepted in `Host` and `Origin` besides the loopback names. */
  allowHosts: string[];
  /** `--isolate-sessions`: a child of its own for every client session instead of one shared child. */
  isolateSessions: boolean;
  /**
   * `--session-idle-timeout` in ms: a Streamable HTTP session without requests for this long is closed;
   * 0 means never. Defaults to 0, or 10 minutes with `--isolate-sessions`.
   */
  sessionIdleTimeoutMs: number;
  restart: RestartPolicy;
  /** `--api-key` values and env `MCP_PROXY_API_KEY`: when any, every request must carry one of them. */
  apiKeys: string[];
  /** `--max-body-size`: the largest request body accepted, in bytes (larger: 413). */
  maxBodyBytes: number;
  /** `--max-sessions`: open sessions at most, across all servers (more: 503); 0 means no limit. */
  maxSessions: number;
}

/** What the command line asks for. */
export type CommandLine =
  | { mode: "help" }
  | { mode: "version" }
  | ClientModeOptions
  | ServerModeOptions;

/** A command line that cannot be run: print `message` (and the usage line) to stderr, exit with `exitCode`. */
export class UsageError extends Error {
  /** 2 for a malformed command line, 1 when nothing to run was given. */
  readonly exitCode: 1 | 2;

  constructor(message: string, exitCode: 1 | 2 = 2) {
    super(message);
    this.name = "UsageError";
    this.exitCode = exitCode;
  }
}
