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

/** How long the first modern request waits for the first page of mcp-proxy's own `tools/list`. */
const FIRST_TOOLS_TIMEOUT_MS = 10_000;

/** The most pages of `tools/list` mcp-proxy reads itself (see `#listTools`). */
const MAX_TOOL_PAGES = 100;

/** The `_meta` envelope of mcp-proxy's own requests of revision `version`. */
function envelope(version: string): Record<string, unknown> {
  return {
    "io.modelcontextprotocol/protocolVersion": version,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": { name: "mcp-proxy", version: VERSION },
  };
}

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
    const answer = await this.#discover(server);
    if (this.#stopping) throw new SessionUnavailableError(`server "${this.name}" is shutting down`);
    if (typeof answer !== "string") {
      // The first page is waited for (not for ever): the first calls are checked with what it declares.
      if (answer.tools) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise<void>((resolve) => this.#listTools(server, answer.version, resolve)),
          new Promise<void>((resolve) => timer = setTimeout(resolve, FIRST_TOOLS_TIMEOUT_MS)),
        ]);
        clearTimeout(timer);
        if (this.#stopping) throw new SessionUnavailableError(`server "${this.name}" is shutting down`);
      }
      this.#support = "served";
      return true;
    }
    const why = answer;
    this.#support = "not served";
    this.#server = undefined;
    this.#logger.info(
      "server {name} does not serve protocol revision {version} ({why}): its clients are told to initialize",
      { name: this.name, version: FIRST_MODERN_PROTOCOL_VERSION, why },
    );
    await server.stop(`it does not serve protocol revision ${FIRST_MODERN_PROTOCOL_VERSION}`);
    return false;
  }

  /**
   * Asks the child `server/discover`: resolves with the stateless revision it names (and whether it has
   * tools), else with why it does not serve one.
   */
  #discover(server: SupervisedServer): Promise<{ version: string; tools: boolean } | string> {
    const params = { _meta: envelope(FIRST_MODERN_PROTOCOL_VERSION) };
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
        const result = response.result as { supportedVersions?: unknown; capabilities?: { tools?: unknown } };
        const versions = result?.supportedVersions;
        const modern = Array.isArray(versions)
          ? versions.find((version) => typeof version === "string" && isModernVersion(version))
          : undefined;
        resolve(
          modern === undefined
            ? "server/discover names no such revision"
            : { version: modern, tools: typeof result.capabilities?.tools === "object" },
        );
      });
      if (!sent) {
        clearTimeout(timer);
        resolve("it stopped before it could be asked");
      }
    });
  }

  /**
   * Lists the child's tools (every page, up to {@link MAX_TOOL_PAGES}) to learn their `x-mcp-header`s at
   * once: a call that comes before any client listed them is checked too. Whatever fails here only leaves
   * them to be learned from the clients' own `tools/list`.
   */
  #listTools(
    server: SupervisedServer,
    version: string,
    firstAnswered: () => void,
    cursor?: string,
    page = 1,
  ): void {
    const params: Record<string, unknown> = { _meta: envelope(version) };
    if (cursor !== undefined) params.cursor = cursor;
    const sent = server.shared.request("tools/list", params, (response) => {
      firstAnswered();
      if (response.result === undefined) return;
      this.tools.learn(response.result);
      const next = (response.result as { nextCursor?: unknown }).nextCursor;
      if (typeof next === "string" && page < MAX_TOOL_PAGES && !this.#stopping) {
        this.#listTools(server, version, () => {}, next, page + 1);
      }
    });
    if (!sent) firstAnswered();
  }
}
