/**
 * A server-sent-events response body that the proxy writes to as messages arrive, with keep-alive
 * comments so that idle connections survive intermediaries.
 *
 * @module
 */

const encoder = new TextEncoder();

/** How often an idle stream gets a keep-alive comment, as the Python version does. */
export const KEEP_ALIVE_MS = 15_000;

/** Options of {@link EventStream}. */
export interface EventStreamOptions {
  /** Called once when the stream ends: closed by us, or the client went away. */
  onClose?: () => void;
  keepAliveMs?: number;
  /** The most bytes that may wait for a slow client; past it the stream is closed. Default: no limit. */
  maxBacklogBytes?: number;
  /** Called when the stream is closed because the client fell behind by more than `maxBacklogBytes`. */
  onSlowConsumer?: () => void;
}

/**
 * An SSE stream: `send` an event, `close` it, or learn through `onClose` that the client left.
 *
 * @example
 * ```ts
 * const stream = new EventStream({ onClose: () => session.close() });
 * stream.send("endpoint", "/messages/?session_id=…");
 * return new Response(stream.body, { headers: EVENT_STREAM_HEADERS });
 * ```
 */
export class EventStream {
  /** The response body. */
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #closed = false;
  #queued: string[] = [];
  #keepAlive: ReturnType<typeof setInterval>;
  #onClose: (() => void) | undefined;
  #onSlowConsumer: (() => void) | undefined;

  constructor(options: EventStreamOptions = {}) {
    this.#onClose = options.onClose;
    this.#onSlowConsumer = options.onSlowConsumer;
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        cancel: () => this.#finish(),
      },
      // desiredSize then tells how far behind the client is: highWaterMark minus the bytes queued.
      new ByteLengthQueuingStrategy({ highWaterMark: options.maxBacklogBytes ?? Number.MAX_SAFE_INTEGER }),
    );
    this.#keepAlive = setInterval(
      () => this.#write(`: ping - ${new Date().toISOString()}\n\n`),
      options.keepAliveMs ?? KEEP_ALIVE_MS,
    );
  }

  /** True once the stream ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one event; `data` must not contain a newline (JSON text never does). With `id`, a client that
   * loses the stream can ask for what came after it (`Last-Event-ID`).
   */
  send(event: string, data: string, id?: string): void {
    this.#write(
      id === undefined
        ? `event: ${event}\ndata: ${data}\n\n`
        : `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`,
    );
  }

  /**
   * Sends an event with an id and no data (a priming event), and how long a client should wait before
   * it reconnects: from then on a broken stream can be resumed.
   */
  prime(id: string, retryMs: number): void {
    this.#write(`id: ${id}\nretry: ${retryMs}\ndata: \n\n`);
  }

  /** Ends the stream, after what was sent. */
  close(): void {
    if (this.#closed) return;
    this.#flush();
    if (this.#closed) return;
    try {
      this.#controller.close();
    } catch {
      // Already errored by the client going away.
    }
    this.#finish();
  }

  /** Queues `text`; what is queued in one turn of the event loop goes to the client as one chunk. */
  #write(text: string): void {
    if (this.#closed) return;
    if (this.#queued.push(text) === 1) queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    if (this.#closed || this.#queued.length === 0) return;
    const text = this.#queued.length === 1 ? this.#queued[0] : this.#queued.join("");
    this.#queued = [];
    try {
      this.#controller.enqueue(encoder.encode(text));
    } catch {
      this.#finish();
      return;
    }
    if ((this.#controller.desiredSize ?? 0) < 0) {
      this.#onSlowConsumer?.();
      this.#controller.error(new Error("the client fell too far behind"));
      this.#finish();
    }
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepAlive);
    this.#onClose?.();
  }
}

/** Response headers of an SSE stream. */
export const EVENT_STREAM_HEADERS: HeadersInit = {
  "Content-Type": "text/event-stream",
  "Cache-Control": "no-cache, no-transform",
  "Connection": "keep-alive",
  "X-Accel-Buffering": "no",
};
