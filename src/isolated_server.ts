/**
 * `--isolate-sessions`: every client session gets a server process of its own, started when the
 * session opens and stopped when it ends (or idles out). Nothing is shared between clients; each child
 * still runs behind a {@link SharedServer}, with one session.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import {
  type ServerSession,
  type SessionOptions,
  type SessionPeer,
  type SessionSource,
  SessionUnavailableError,
} from "./shared_server.ts";
import type { SupervisedServer } from "./supervised_server.ts";

/** Options of {@link IsolatedServer}. */
export interface IsolatedServerOptions {
  name: string;
  /**
   * Creates the server of one session, to be stopped when its last session closes; not restarted:
   * `onGone` is called when its child exits, and the session ends with it.
   */
  create(onLastSessionClosed: () => void, onGone: (reason: string) => void): SupervisedServer;
  logger: Logger;
}

/** A {@link SessionSource} that starts a child for each session. */
export class IsolatedServer implements SessionSource {
  readonly name: string;
  readonly #create: IsolatedServerOptions["create"];
  readonly #logger: Logger;
  readonly #running = new Set<SupervisedServer>();
  #stopping = false;

  constructor(options: IsolatedServerOptions) {
    this.name = options.name;
    this.#create = options.create;
    this.#logger = options.logger;
  }

  /** Number of children running now. */
  get size(): number {
    return this.#running.size;
  }

  openSession(peer: SessionPeer, options: SessionOptions): ServerSession {
    if (this.#stopping) throw new SessionUnavailableError(`server "${this.name}" is shutting down`);
    const server: SupervisedServer = this.#create(
      () => {
        this.#running.delete(server);
        server.stop("its session ended").catch((error) =>
          this.#logger.error("stopping a session's server {name} failed: {error}", { name: this.name, error })
        );
      },
      (reason) => {
        this.#logger.info("a session of {name} ends: its server {reason}", { name: this.name, reason });
        peer.end?.(reason);
      },
    );
    const error = server.start();
    if (error !== undefined) throw new SessionUnavailableError(error.message);
    this.#running.add(server);
    return server.shared.openSession(peer, options);
  }

  /** Refuses new sessions, answers what is running with an error, and stops every child. */
  async shutdown(reason: string): Promise<void> {
    this.#stopping = true;
    const running = [...this.#running];
    this.#running.clear();
    await Promise.all(running.map((server) => server.stop(reason)));
  }

  /** Kills every child at once. */
  kill(): void {
    for (const server of this.#running) server.kill();
  }
}
