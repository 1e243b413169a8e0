/**
 * A server's child for the stateless revision of MCP (2026-07-28 and later), beside the one its sessions
 * share. A stdio server keeps the era of the first message it reads for as long as it runs (the SDK's
 * `serveStdio` does), and the sessions' child has had `initialize`: requests of the stateless revision
 * need a child of their own, which never gets one. It starts with the first such request, and is asked
 * once, with `server/discover`, whether it serves that revision. One that does takes every such request
 * from then on, from all clients, as the revision allows (no request may depend on another); one that does
 * not is stopped, and such requests are refused with the revision's `-32022`, which tells a client to fall
 * back to `initialize`.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { ToolHeaderDeclarations } from "./modern_headers.ts";
import { FIRST_MODERN_PROTOCOL_VERSION, isModernVersion } from "./modern_headers.ts";
import type { ServerSession, SessionOptions, SessionPeer } from "./shared_server.ts";
import { SessionUnavailableError } from "./shared_server.ts";
import type { ServerStatus, SupervisedServer } from "./supervised_server.ts";
import { VERSION } from "./version.ts";

/** How long the child may take to answer the first `server/discover`, its start included. */
export const DISCOVER_TIMEOUT_MS = 60_000;

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
  #asking: Promise<boolean> | undefined;
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

  /**
   * Whether the child serves the revision: starts it and asks it the first time. Throws
   * {@link SessionUnavailableError} when it cannot start (the next request tries again).
   */
  available(): Promise<boolean> {
    if (this.#support === "served") return Promise.resolve(true);
    if (this.#support === "not served") return Promise.resolve(false);
    if (this.#stopping) {
      return Promise.reject(new SessionUnavailableError(`server "${this.name}" is shutting down`));
    }
    return this.#asking ??= this.#ask().finally(() => this.#asking = undefined);
  }

  /** Opens the stateless session of one POST on the child (after {@link available} said it serves). */
  openSession(peer: SessionPeer, options: SessionOptions): ServerSession {
    if (this.#server === undefined || this.#stopping) {
      throw new SessionUnavailableError(`server "${this.name}" is shutting down`);
    }
    return this.#server.shared.openSession(peer, options);
  }

  status(): ModernStatus {
    const status: ModernStatus = { revision: this.#support };
    if (this.#server !== undefined) status.process = this.#server.status();
    return status;
  }

  /** Answers what is running with an error, then stops the child for good. */
  stop(reason: string): Promise<void> {
    this.#stopping = true;
    return this.#server?.stop(reason) ?? Promise.resolve();
  }

  kill(): void {
    this.#stopping = true;
    this.#server?.kill();
  }

  async #ask(): Promise<boolean> {
    this.#support = "asking";
    const server = this.#options.create((result) => this.tools.learn(result));
    const error = server.start();
    if (error !== undefined) {
      this.#support = "not asked";
      await server.stop(error.message);
      throw new SessionUnavailableError(error.message);
    }
    this.#server = server;
    this.#logger.info("server {name}: started a child for protocol revision {version} and later", {
      name: this.name,
      version: FIRST_MODERN_PROTOCOL_VERSION,
    });
    const why = await this.#discover(server);
    if (this.#stopping) return false;
    if (why === undefined) {
      this.#support = "served";
      return true;
    }
    this.#support = "not served";
    this.#server = undefined;
    this.#logger.info(
      "server {name} does not serve protocol revision {version} ({why}): its clients are told to initialize",
      { name: this.name, version: FIRST_MODERN_PROTOCOL_VERSION, why },
    );
    await server.stop(`it does not serve protocol revision ${FIRST_MODERN_PROTOCOL_VERSION}`);
    return false;
  }

  /** Asks the child `server/discover`: resolves undefined when it names a stateless revision, else why not. */
  #discover(server: SupervisedServer): Promise<string | undefined> {
    const params = {
      _meta: {
        "io.modelcontextprotocol/protocolVersion": FIRST_MODERN_PROTOCOL_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { name: "mcp-proxy", version: VERSION },
      },
    };
    const limitMs = this.#options.discoverTimeoutMs ?? DISCOVER_TIMEOUT_MS;
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => resolve(`no answer to server/discover within ${limitMs / 1000} s`),
        limitMs,
      );
      const sent = server.shared.request("server/discover", params, (response) => {
        clearTimeout(timer);
        if (response.error !== undefined) {
          resolve(`server/discover: error ${response.error.code} ${response.error.message}`);
          return;
        }
        const versions = (response.result as { supportedVersions?: unknown } | undefined)?.supportedVersions;
        const modern = Array.isArray(versions) &&
          versions.some((version) => typeof version === "string" && isModernVersion(version));
        resolve(modern ? undefined : "server/discover names no such revision");
      });
      if (!sent) {
        clearTimeout(timer);
        resolve("it stopped before it could be asked");
      }
    });
  }
}
