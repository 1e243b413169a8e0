/**
 * The HTTP server of server mode, kept listening. `Deno.serve` accepts connections in a loop of its own,
 * which ends for good at the first error it meets: out of file descriptors (`EMFILE`, many connections
 * open at once, or held open by clients that never finish a request) it rejects `finished`, closes the
 * listening socket, and, that rejection unhandled, ends the process: the whole proxy died.
 * Here that rejection is handled, and the server listens again on the same address once it can.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";

/** Accepting that fails again this soon after listening again is the same trouble: the waits grow. */
const STILL_FAILING_MS = 10_000;

/** Options of {@link listenHttp}. */
export interface HttpListenerOptions {
  hostname: string;
  port: number;
  handler: Deno.ServeHandler<Deno.NetAddr>;
  onError: (error: unknown) => Response | Promise<Response>;
  logger: Logger;
  /** The first wait before listening again, doubled on each failure up to `maxRetryMs`. Default: 100. */
  retryMs?: number;
  /** Default: 2000. */
  maxRetryMs?: number;
}

/** A listening HTTP server; see {@link listenHttp}. */
export interface HttpListener {
  /** The bound address (the real port when port 0 was asked for); kept when listening again. */
  readonly addr: Deno.NetAddr;
  /** Stops listening and waits for the connections open to end. */
  shutdown(): Promise<void>;
}

/**
 * Listens on `hostname:port` and serves `handler`; when accepting fails, listens again on the address it
 * had, first after `retryMs`, then for as long as it takes. Throws as `Deno.serve` does when the first
 * listen fails (address in use, no such address).
 *
 * @example
 * ```ts
 * const listener = listenHttp({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   handler: () => new Response("ok"),
 *   onError: () => new Response("Internal Server Error", { status: 500 }),
 *   logger: getLogger(["example"]),
 * });
 * console.error(`listening on port ${listener.addr.port}`);
 * await listener.shutdown();
 * ```
 */
export function listenHttp(options: HttpListenerOptions): HttpListener {
  const { handler, onError, logger } = options;
  const firstRetryMs = options.retryMs ?? 100;
  const maxRetryMs = options.maxRetryMs ?? 2000;
  let stopped = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let server: Deno.HttpServer<Deno.NetAddr>;
  /** The last wait before listening again, and when it listened again: failing soon after, it waits longer. */
  let lastWaitMs = 0;
  let listenedAgainAt = -Infinity;

  const serve = (port: number) => {
    const started = Deno.serve({ hostname: options.hostname, port, onListen: () => {}, onError }, handler);
    started.finished.catch((error) => {
      if (stopped || started !== server) return;
      const waitMs = performance.now() - listenedAgainAt < STILL_FAILING_MS
        ? Math.min(2 * lastWaitMs, maxRetryMs)
        : firstRetryMs;
      logger.error("cannot accept connections ({error}); listening again on port {port} in {waitMs} ms", {
        error,
        port: addr.port,
        waitMs,
      });
      listenAgain(waitMs);
    });
    return started;
  };

  const listenAgain = (waitMs: number) => {
    lastWaitMs = waitMs;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (stopped) return;
      try {
        server = serve(addr.port);
        listenedAgainAt = performance.now();
        logger.warn("listening again on port {port}", { port: addr.port });
      } catch (error) {
        logger.debug("listening again failed ({error})", { error });
        listenAgain(Math.min(2 * waitMs, maxRetryMs));
      }
    }, waitMs);
  };

  server = serve(options.port);
  const addr = server.addr;
  return {
    addr,
    async shutdown() {
      stopped = true;
      clearTimeout(retryTimer);
      // A server whose accepting failed has closed its socket already; its `shutdown` may reject.
      await server.shutdown().catch(() => {});
    },
  };
}
