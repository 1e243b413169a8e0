/**
 * A server's child for the stateless revision of MCP (2026-07-28 and later), beside the one its sessions
 * share. A stdio server keeps the era of the first message it reads for as long as it runs (the SDK's
 * `serveStdio` does), and the sessions' child has had `initialize`: requests of the stateless revision
 * need a child of their own, which never gets one. It starts with the first such request, and is asked
 * once, with `server/discover`, whether it serves that revision (its tools are listed then too, see
 * `SharedServer.discover`). One that does takes every such request from then on, from all clients, as the
 * revision allows (no request may depend on another); one that does not is stopped, and such requests are
 * refused with the revision's `-32022`, which tells a client to fall back to `initialize`.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { FIRST_MODERN_PROTOCOL_VERSION, ToolHeaderDeclarations } from "./modern_headers.ts";
import type { ServerSession, SessionOptions, SessionPeer } from "./shared_server.ts";
import { SessionUnavailableError } from "./shared_server.ts";
import type { ServerStatus, SupervisedServer } from "./supervised_server.ts";

/** How long the child may take to answer the first `server/discover`, its start included. */
export const DISCOVER_TIMEOUT_MS = 60_000;

/**
 * A child that stopped while asked (a crash, or a 2025-era server that exits when its first message is no
 * `initialize`) counts as not serving the revision for this long, then is asked once more; a second such
 * stop counts for good.
 */
export const ASK_AGAIN_AFTER_STOP_MS = 30_000;

/** Whether the child serves the stateless revision, as far as is known. */
export type ModernSupport = "not asked" | "asking" | "served" | "not served";

/** A server's modern child in `/status`. */
export interface ModernStatus {
  revision: ModernSupport;
  /** Its process, once started and while it serves. */
  process?: ServerStatus;
}

/** Options of {@link ModernServer}. */
export interface ModernServerOptions {
  name: string;
  /** Creates the child's supervisor (not started), whose server passes `tools/list` results to `onToolsListed`. */
  create(onToolsListed: (result: unknown) => void): SupervisedServer;
  logger: Logger;
  /** Default {@link DISCOVER_TIMEOUT_MS}. */
  discoverTimeoutMs?: number;
  /** Default {@link ASK_AGAIN_AFTER_STOP_MS}. */
  askAgainAfterStopMs?: number;
}

/** See the module documentation. */
export class ModernServer {
  readonly name: string;
  /** The `x-mcp-header`s the child's tools declared, learned from its `tools/list` answers. */
  readonly tools = new ToolHeaderDeclarations();
  readonly #options: ModernServerOptions;
  readonly #logger: Logger;
  #support: ModernSupport = "not asked";
  #server: SupervisedServer | undefined;
  /** After a first child stopped while asked: when to ask again (see {@link ASK_AGAIN_AFTER_STOP_MS}). */
  #askAgainAt: number | undefined;
  #stoppedWhileAsked = 0;
  #asking: Promise<boolean> | undefined;
  /**
   * Children being stopped (one that serves no such revision, or stopped while asked), and when they are:
   * shutdown waits for them, and {@link kill} kills them with the rest.
   */
  readonly #retiring = new Map<SupervisedServer, Promise<void>>();
  #stopping = false;

  constructor(options: ModernServerOptions) {
    this.name = options.name;
    this.#options = options;
    this.#logger = options.logger;
  }

  /** True once the child is known to serve the revision: requests go to it with no wait. */
  get served(): boolean {
    return this.#support === "served";
  }

  /** The revisions the child named in its last `server/discover` (once {@link served}; asked again after a restart). */
  get supportedVersions(): readonly string[] {
    return this.#server?.shared.discoveredVersions ?? [];
  }

  /**
   * Whether the child serves the revision: starts it and asks it the first time. Throws
   * {@link SessionUnavailableError} when it cannot start or stops while asked (the next request tries again).
   * False also when the child has not said within `waitMs`: it is still asked, for the requests to come.
   */
  available(waitMs: number): Promise<boolean> {
    if (this.#support === "served") return Promise.resolve(true);
    if (this.#support === "not served") {
      if (this.#askAgainAt === undefined || Date.now() < this.#askAgainAt || this.#stopping) {
        return Promise.resolve(false);
      }
      this.#askAgainAt = undefined;
      this.#support = "not asked";
    }
    if (this.#stopping) return Promise.reject(this.#shuttingDown());
    const asking = this.#asking ??= this.#ask().finally(() => this.#asking = undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), waitMs));
    return Promise.race([asking, late]).finally(() => clearTimeout(timer));
  }

  /** Opens the stateless session of one POST on the child (after {@link available} said it serves). */
  openSession(peer: SessionPeer, options: SessionOptions): ServerSession {
    if (this.#server === undefined || this.#stopping) throw this.#shuttingDown();
    return this.#server.shared.openSession(peer, options);
  }

  status(): ModernStatus {
    const status: ModernStatus = { revision: this.#support };
    if (this.#server !== undefined) status.process = this.#server.status();
    return status;
  }

  /** Answers what is running with an error, then stops the child for good. */
  async stop(reason: string): Promise<void> {
    this.#stopping = true;
    await Promise.all([this.#server?.stop(reason), ...this.#retiring.values()]);
  }

  kill(): void {
    this.#stopping = true;
    this.#server?.kill();
    for (const server of this.#retiring.keys()) server.kill();
  }

  #shuttingDown(): SessionUnavailableError {
    return new SessionUnavailableError(`server "${this.name}" is shutting down`);
  }

  /** Stops a child that is not to serve, without making the request that found out wait for it. */
  #retire(server: SupervisedServer, reason: string): void {
    if (this.#server === server) this.#server = undefined;
    const stopped = server.stop(reason).catch((error) =>
      this.#logger.error("stopping the modern child of {name} failed: {error}", { name: this.name, error })
    );
    this.#retiring.set(server, stopped);
    stopped.finally(() => this.#retiring.delete(server));
  }

  async #ask(): Promise<boolean> {
    this.#support = "asking";
    const server = this.#options.create((result) => this.tools.learn(result));
    const error = server.start();
    if (error !== undefined) {
      this.#support = "not asked";
      this.#retire(server, error.message);
      throw new SessionUnavailableError(error.message);
    }
    this.#server = server;
    this.#logger.info("server {name}: started a child for protocol revision {version} and later", {
      name: this.name,
      version: FIRST_MODERN_PROTOCOL_VERSION,
    });
    const outcome = await server.shared.discover(this.#options.discoverTimeoutMs ?? DISCOVER_TIMEOUT_MS);
    if (this.#stopping) throw this.#shuttingDown();
    if (outcome.served) {
      this.#stoppedWhileAsked = 0;
      this.#support = "served";
      return true;
    }
    this.#retire(server, `it does not serve protocol revision ${FIRST_MODERN_PROTOCOL_VERSION}`);
    this.#support = "not served";
    // A stop is no answer, the first time: it may have been a crash.
    if (outcome.stopped && ++this.#stoppedWhileAsked === 1) {
      const waitMs = this.#options.askAgainAfterStopMs ?? ASK_AGAIN_AFTER_STOP_MS;
      this.#askAgainAt = Date.now() + waitMs;
      this.#logger.warn(
        "server {name}: its child for revision {version} {why}: taken as not serving it, and asked again in {seconds} s",
        { name: this.name, version: FIRST_MODERN_PROTOCOL_VERSION, why: outcome.why, seconds: waitMs / 1000 },
      );
      return false;
    }
    this.#logger.info(
      "server {name} does not serve protocol revision {version} ({why}): its clients are told to initialize",
      { name: this.name, version: FIRST_MODERN_PROTOCOL_VERSION, why: outcome.why },
    );
    return false;
  }
}
