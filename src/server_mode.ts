/**
 * Server mode: spawn the configured stdio MCP servers, share each among its HTTP sessions, serve them
 * over legacy SSE and Streamable HTTP on one port, and stop it all on request.
 *
 * @module
 */

import type { RestartPolicy, ServerModeOptions, StdioServerSpec } from "./cli/command_line.ts";
import { UsageError } from "./cli/command_line.ts";
import { buildChildEnvironment } from "./child_environment.ts";
import { BodyCutShort } from "./http/event_stream.ts";
import { isLoopbackAddress, LOOPBACK_NAMES } from "./http/host_check.ts";
import { type HttpListener, listenHttp } from "./http/http_listener.ts";
import { createProxyApp, mountPrefix } from "./http/proxy_app.ts";
import { proxyLogger } from "./logging.ts";
import { SUPPORTED_PROTOCOL_VERSIONS } from "./protocol_versions.ts";
import { ConfigError, loadNamedServerConfig } from "./named_server_config.ts";
import { IsolatedServer } from "./isolated_server.ts";
import { ModernServer } from "./modern_server.ts";
import type { SessionSource } from "./shared_server.ts";
import { assertCommandExists, SpawnError } from "./stdio_server_process.ts";
import { type ServerStatus, SupervisedServer, type SupervisedServerOptions } from "./supervised_server.ts";

const logger = proxyLogger("server");

/** The HTTP server could not bind its address; `message` is one line for the user. */
export class ListenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ListenError";
  }
}

/** A running server mode. */
export interface ServerModeHandle {
  /** The bound address, with the real port when `--port 0` was given. */
  readonly address: Deno.NetAddr;
  /** Base URL of each server by name, e.g. `{ default: "http://127.0.0.1:8080" }`. */
  readonly baseUrls: Record<string, string>;
  /** Stops accepting, ends every session, stops every child. */
  shutdown(): Promise<void>;
  /** Kills every child and whatever it started, at once (for a second Ctrl-C). */
  kill(): void;
}

/** One configured server as the HTTP side sees it, and how to stop it. */
interface ServerUnit {
  source: SessionSource;
  /** The child of the stateless revision, started by its first request. */
  modern: ModernServer;
  /**
   * Answers every running call with an error (synchronously, before this returns its promise), then
   * stops the server's children.
   */
  stop(reason: string): Promise<void>;
  kill(): void;
  status(): ServerStatus;
}

async function collectSpecs(options: ServerModeOptions): Promise<StdioServerSpec[]> {
  const specs: StdioServerSpec[] = [];
  if (options.defaultServer !== undefined) specs.push(options.defaultServer);
  if (options.namedServerConfig !== undefined) {
    const config = await loadNamedServerConfig(options.namedServerConfig);
    for (const warning of config.warnings) logger.warn("{warning}", { warning });
    const clash = options.defaultServer &&
      config.servers.find(({ name }) => name === options.defaultServer!.name);
    if (clash !== undefined) {
      throw new ConfigError(
        `${options.namedServerConfig}: server "${clash.name}": that name is the default server's (the command ` +
          `given without a name, served at /); rename the entry`,
      );
    }
    specs.push(...config.servers);
  } else {
    specs.push(...options.namedServers);
  }
  if (specs.length === 0) {
    throw new UsageError("no server to run: the config file enables no server and no command was given", 1);
  }
  return specs;
}

function childEnvironment(spec: StdioServerSpec, options: ServerModeOptions): Record<string, string> {
  return buildChildEnvironment({
    parentEnv: Deno.env.toObject(),
    platform: Deno.build.os === "windows" ? "windows" : "posix",
    passEnvironment: options.passEnvironment,
    extra: spec.env,
  });
}

/** The supervisor of one child of `spec`; `modern` for the child of the stateless revision. */
function supervise(
  spec: StdioServerSpec,
  options: ServerModeOptions,
  policy: RestartPolicy,
  onLastSessionClosed?: () => void,
  onGone?: (reason: string) => void,
  modern?: SupervisedServerOptions["modern"],
): SupervisedServer {
  return new SupervisedServer({
    spec,
    env: childEnvironment(spec, options),
    policy,
    requestTimeoutMs: options.requestTimeoutMs,
    maxLineBytes: options.maxLineBytes,
    supportedProtocolVersions: SUPPORTED_PROTOCOL_VERSIONS,
    onLastSessionClosed,
    onGone,
    modern,
    logger,
  });
}

/**
 * Starts one configured server: a supervised shared child now, or (isolated) a child per session later.
 * Returns why it could not start, if it could not, and how to have it retried in the background.
 */
function startUnit(
  spec: StdioServerSpec,
  options: ServerModeOptions,
  isStopping: () => boolean,
): { unit: ServerUnit; error?: SpawnError; retryLater?: () => void } {
  // Shared by all clients also with --isolate-sessions: the revision has no sessions to keep apart.
  const modern = new ModernServer({
    name: spec.name,
    // Named apart in the log and in its stderr's prefix.
    create: (onToolsListed) =>
      supervise(
        { ...spec, name: `${spec.name} (2026-07-28)` },
        options,
        options.restart,
        undefined,
        undefined,
        {
          onToolsListed,
        },
      ),
    logger,
  });
  const stopBoth = (stop: Promise<void>, reason: string) =>
    Promise.all([stop, modern.stop(reason)]).then(() => {});
  if (options.isolateSessions) {
    // Nothing runs until a session opens: check now that the command can be found.
    assertCommandExists(spec, childEnvironment(spec, options));
    const isolated = new IsolatedServer({
      name: spec.name,
      create: (onLastSessionClosed, onGone) =>
        supervise(
          spec,
          options,
          { enabled: false, initialDelayMs: 0, maxDelayMs: 0 },
          onLastSessionClosed,
          onGone,
        ),
      logger,
    });
    const status = (): ServerStatus => ({
      state: isStopping() ? "stopped" : "running",
      pid: null,
      restarts: 0,
      last_exit_code: null,
      sessions: isolated.size,
      modern: modern.status(),
    });
    return {
      unit: {
        source: isolated,
        modern,
        stop: (reason) => stopBoth(isolated.shutdown(reason), reason),
        kill: () => {
          isolated.kill();
          modern.kill();
        },
        status,
      },
    };
  }
  const supervised = supervise(spec, options, options.restart);
  const error = supervised.start();
  const unit: ServerUnit = {
    source: supervised.shared,
    modern,
    stop: (reason) => stopBoth(supervised.stop(reason), reason),
    kill: () => {
      supervised.kill();
      modern.kill();
    },
    status: () => ({ ...supervised.status(), modern: modern.status() }),
  };
  return { unit, error, retryLater: error && (() => supervised.retryLater(error)) };
}

/**
 * The host names a request may name: bound to a loopback address, the loopback names, the bound address
 * and `--allow-host`; bound elsewhere, only `--allow-host` if given, else any (undefined).
 */
function allowedHosts(options: ServerModeOptions): string[] | undefined {
  if (!isLoopbackAddress(options.host)) return options.allowHosts.length > 0 ? options.allowHosts : undefined;
  return [...LOOPBACK_NAMES, formatHost(options.host.toLowerCase()), ...options.allowHosts];
}

function formatHost(hostname: string): string {
  return hostname.includes(":") ? `[${hostname}]` : hostname;
}

/**
 * What Deno.serve reports: a response body that ended in error, or a handler that threw. Its default
 * prints a stack trace on stderr, plain text in a JSON log; a body the proxy cut short on purpose (a client
 * too far behind, an answer that broke off) was logged where it happened.
 */
function onServeError(error: unknown): Response {
  if (error instanceof BodyCutShort) {
    logger.debug("response body cut short: {reason}", { reason: error.message });
  } else logger.error("HTTP request failed: {error}", { error });
  return new Response("Internal Server Error", { status: 500 });
}

function listen(options: ServerModeOptions, handler: Deno.ServeHandler<Deno.NetAddr>): HttpListener {
  try {
    return listenHttp({
      hostname: options.host,
      port: options.port,
      handler,
      onError: onServeError,
      logger: proxyLogger("http"),
    });
  } catch (error) {
    const where = `${formatHost(options.host)}:${options.port}`;
    if (error instanceof Deno.errors.AddrInUse) {
      throw new ListenError(`cannot listen on ${where}: the port is already in use (choose another --port)`);
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new ListenError(`cannot listen on ${where}: no such address on this machine (check --host)`);
    }
    throw new ListenError(`cannot listen on ${where}: ${error instanceof Error ? error.message : error}`);
  }
}

/**
 * Starts server mode. Throws `ConfigError` (bad config file), `SpawnError` (a server cannot start),
 * `ListenError` (address in use) or `UsageError` (nothing to run); anything started is stopped first.
 */
export async function startServerMode(options: ServerModeOptions): Promise<ServerModeHandle> {
  const specs = await collectSpecs(options);
  let stopping = false;
  const units: ServerUnit[] = [];
  const stopUnits = (reason: string) => Promise.all(units.map((unit) => unit.stop(reason)));
  // Bind first: a port in use is reported before any server is started. Spawning is synchronous, so
  // the app exists before the first request can be handled, unless no server could start: a request
  // that comes while what started stops gets 503.
  let app: ReturnType<typeof createProxyApp> | undefined = undefined;
  const httpServer = listen(
    options,
    (request) => app?.fetch(request) ?? new Response("mcp-proxy could not start\n", { status: 503 }),
  );
  const startErrors: SpawnError[] = [];
  const retries: (() => void)[] = [];
  try {
    for (const spec of specs) {
      const { unit, error, retryLater } = startUnit(spec, options, () => stopping);
      units.push(unit);
      if (error !== undefined) startErrors.push(error);
      if (retryLater !== undefined) retries.push(retryLater);
    }
    // One server that cannot start does not take the others down (it is retried in the background);
    // when none can, there is nothing to do, and no retry to announce.
    if (startErrors.length === specs.length) {
      if (startErrors.length === 1) throw startErrors[0];
      for (const error of startErrors) logger.error("{message}", { message: error.message });
      throw new SpawnError(`none of the ${specs.length} servers could start`);
    }
    for (const retry of retries) retry();
  } catch (error) {
    stopping = true;
    await Promise.all([stopUnits("mcp-proxy could not start"), httpServer.shutdown()]);
    throw error;
  }
  const proxyApp = createProxyApp({
    servers: units.map(({ source }) => source),
    modernServers: new Map(units.map(({ source, modern }) => [source.name, modern])),
    rootServer: options.defaultServer?.name,
    stateless: options.stateless,
    sessionIdleTimeoutMs: options.sessionIdleTimeoutMs,
    allowOrigins: options.allowOrigins,
    exposeHeaders: options.exposeHeaders,
    allowedHosts: allowedHosts(options),
    status: () => Object.fromEntries(units.map((unit) => [unit.source.name, unit.status()])),
    apiKeys: options.apiKeys,
    maxBodyBytes: options.maxBodyBytes,
    maxSessions: options.maxSessions,
    maxBacklogBytes: options.maxLineBytes + 16 * 1024 * 1024,
    logger: proxyLogger("http"),
  });
  app = proxyApp;

  const address = httpServer.addr;
  const origin = `http://${formatHost(address.hostname)}:${address.port}`;
  const baseUrls: Record<string, string> = {};
  for (const { source } of units) {
    const base = origin + mountPrefix(source.name, options.defaultServer?.name);
    baseUrls[source.name] = base;
    logger.info("server {name}: SSE {base}/sse  Streamable HTTP {base}/mcp", { name: source.name, base });
  }
  logger.info("status: {origin}/status", { origin });

  return {
    address,
    baseUrls,
    async shutdown() {
      if (stopping) return;
      stopping = true;
      logger.info("shutting down");
      // Calls still running get an error answer now, before their streams close.
      const unitsStopped = stopUnits("mcp-proxy is shutting down");
      await proxyApp.closeAll();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.all([
        Promise.race([httpServer.shutdown(), new Promise((resolve) => timer = setTimeout(resolve, 3000))]),
        unitsStopped,
      ]);
      clearTimeout(timer);
    },
    kill() {
      for (const unit of units) unit.kill();
    },
  };
}
