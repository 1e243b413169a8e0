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
  type SharedServer,
} from "./shared_server.ts";
import { SpawnError, type StdioServerProcess } from "./stdio_server_process.ts";

/** A child and the shared server in front of it. */
export interface RunningServer {
  shared: SharedServer;
  process: StdioServerProcess;
}

/** Options of {@link IsolatedServer}. */
export interface IsolatedServerOptions {
  name: string;
  /** Starts one child; `onLastSessionClosed` is passed to its SharedServer. Throws SpawnError. */
  start(onLastSessionClosed: () => void): RunningServer;
  logger: Logger;
}

/** A {@link SessionSource} that starts a child for each session. */
export class IsolatedServer implements SessionSource {
  readonly name: string;
  readonly #start: IsolatedServerOptions["start"];
  readonly #logger: Logger;
  readonly #running = new Set<RunningServer>();
  #stopping = false;

  constructor(options: IsolatedServerOptions) {
    this.name = options.name;
    this.#start = options.start;
    this.#logger = options.logger;
  }

  /** Number of children running now. */
  get size(): number {
    return this.#running.size;
  }

  openSession(peer: SessionPeer, options: SessionOptions): ServerSession {
    if (this.#stopping) throw new SessionUnavailableError(`server "${this.name}" is shutting down`);
    let running: RunningServer;
    try {
      running = this.#start(() => {
        this.#running.delete(running);
        running.process.shutdown().catch((error) =>
          this.#logger.error("stopping a session's server {name} failed: {error}", { name: this.name, error })
        );
      });
    } catch (error) {
      if (error instanceof SpawnError) throw new SessionUnavailableError(error.message);
      throw error;
    }
    this.#running.add(running);
    return running.shared.openSession(peer, options);
  }

  /** Refuses new sessions, answers what is running with an error, and stops every child. */
  async shutdown(reason: string): Promise<void> {
    this.#stopping = true;
    const running = [...this.#running];
    this.#running.clear();
    for (const { shared } of running) shared.childStopped(reason);
    await Promise.all(running.map(({ process }) => process.shutdown()));
  }

  /** Kills every child at once. */
  kill(): void {
    for (const { process } of this.#running) process.kill();
  }
}
