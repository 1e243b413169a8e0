/**
 * A server-sent-events response body that the proxy writes to as messages arrive, with keep-alive
 * comments so that idle connections survive intermediaries.
 *
 * @module
 */

import { clearImmediate, setImmediate } from "node:timers";

const encoder = new TextEncoder();

/** How often an idle stream gets a keep-alive comment, as the Python version does. */
export const KEEP_ALIVE_MS = 15_000;

/**
 * What a response body is errored with when the proxy cuts it short on purpose (a client too far behind,
 * an answer that broke off): the HTTP server's `onError` notes it quietly, as no fault of the proxy.
 */
export class BodyCutShort extends Error {
  override name = "BodyCutShort";
}

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
  /**
   * What to send: text, and bytes (large data, sent as they are), in batches. The first goes as one chunk
   * at the end of this turn, and each next one a turn of the event loop after the one before it (see
   * {@link send}).
   */
  #queued: Batch[] = [];
  /** The turn a batch after the first waits for (see {@link #flushLater}). */
  #later: ReturnType<typeof setImmediate> | undefined;
  #laterTimer: ReturnType<typeof setTimeout> | undefined;
  /** The bytes the body may queue for the client before it counts as too far behind. */
  readonly #highWaterMark: number;
  /** While an event's data comes in pieces: the other events, which wait for its end. */
  #held: { pieces: (string | Uint8Array)[]; kind?: EventKind }[] | undefined;
  #keepAlive: ReturnType<typeof setInterval>;
  /** A replay under way (see {@link replay}). */
  #replay: Replay | undefined;
  #onClose: (() => void) | undefined;
  #onSlowConsumer: (() => void) | undefined;

  constructor(options: EventStreamOptions = {}) {
    this.#highWaterMark = options.maxBacklogBytes ?? Number.MAX_SAFE_INTEGER;
    this.#onClose = options.onClose;
    this.#onSlowConsumer = options.onSlowConsumer;
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        // Called as the HTTP server takes what was queued: the next part of a replay may go.
        pull: () => {
          if (this.#replay !== undefined) this.#replayMore();
        },
        cancel: () => this.#finish(),
      },
      // desiredSize then tells how far behind the client is: highWaterMark minus the bytes queued.
      new ByteLengthQueuingStrategy({ highWaterMark: this.#highWaterMark }),
    );
    this.#keepAlive = setInterval(
      () => this.#queueEvent([`: ping - ${new Date().toISOString()}\n\n`]),
      options.keepAliveMs ?? KEEP_ALIVE_MS,
    );
  }

  /** True once the stream ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True while an event's data is being sent in pieces ({@link sendInPieces}). */
  get sendingInPieces(): boolean {
    return this.#held !== undefined;
  }

  /**
   * Sends one event; `data` (text, or UTF-8 bytes sent as they are) must not contain a line break (JSON
   * text on one line never does). With `id`, a client that loses the stream can ask for what came after
   * it (`Last-Event-ID`).
   *
   * `kind` says what the event carries: an answer never goes in the same chunk as a progress notification
   * sent before it, but a turn later. The MCP SDK's SSE client handles the messages of one chunk at once,
   * and the notifications a moment later: an answer that came with them had removed the progress handler
   * of its request first (found by QA: the last progress of every call was lost, or all four when the
   * child wrote them with the answer). So that this takes two chunks however many calls run (found by
   * review: with a chunk for each, many calls fell ever further behind; merged past a few, their progress
   * was lost again), a progress notification goes in the first chunk not sent yet: ahead of answers
   * waiting for the next, which are other requests' (its own is still running).
   */
  send(event: string, data: string | Uint8Array, id?: string, kind?: EventKind): void {
    this.#queueEvent(eventPieces(event, data, id), kind);
  }

  /**
   * Starts an event whose data comes in pieces (UTF-8 bytes without line breaks) and returns where they
   * go. Other events wait until it ends, so that none lands inside it. An event cut short is given
   * another type ({@link ABORTED_EVENT}): a client that listens for `event` ignores what came of it.
   */
  sendInPieces(
    event: string,
    kind?: EventKind,
  ): { write(bytes: Uint8Array): void; end(): void; abort(): void } {
    if (this.#held !== undefined) throw new Error("an event in pieces is already being sent");
    // Its pieces go straight to the queue: a replay under way goes whole first (no stream does both now).
    if (this.#replay !== undefined) this.#replayMore(true);
    this.#queueEvent([`event: ${event}\ndata: `], kind);
    const held: { pieces: (string | Uint8Array)[]; kind?: EventKind }[] = [];
    this.#held = held;
    const finish = (tail: string) => {
      if (this.#held === held) this.#endPieces(tail);
    };
    return {
      write: (bytes) => {
        if (this.#held === held) this.#push(bytes);
      },
      end: () => finish("\n\n"),
      abort: () => finish(ABORTED_TAIL),
    };
  }

  /**
   * Sends `events` (message events, from an event log), paced: a part of some {@link REPLAY_PART_BYTES} at
   * a time, the next once the HTTP server took what went before, so that a client that does not read holds
   * no more than that in memory; what is sent meanwhile goes after them (found by QA: a thousand
   * resumptions nobody read each held the whole event log of their session, 8 GiB in all).
   */
  replay(events: readonly ReplayedEvent[]): void {
    if (this.#closed || events.length === 0) return;
    // One at a time (no stream has two now): what is left of one under way goes at once.
    if (this.#replay !== undefined) this.#replayMore(true);
    if (this.#closed) return;
    if (this.#held !== undefined) {
      for (const { data, id } of events) this.send("message", data, id);
      return;
    }
    this.#replay = { events, next: 0, after: [], afterBytes: 0, ending: false };
    this.#replayMore();
  }

  /** True while a {@link replay} has events its client has not taken yet. */
  get replaying(): boolean {
    return this.#replay !== undefined;
  }

  /**
   * Ends the stream once its replay went out (at once without one): as {@link close}, which cuts off a
   * replay under way instead.
   */
  endAfterReplay(): void {
    if (this.#replay === undefined) this.close();
    else this.#replay.ending = true;
  }

  /**
   * Queues the next part of the replay while the HTTP server has taken what went before; with `all`,
   * what is left of it at once.
   */
  #replayMore(all = false): void {
    const replay = this.#replay!;
    const waiting = this.#highWaterMark - (this.#controller.desiredSize ?? this.#highWaterMark);
    if (this.#closed || (!all && (waiting >= REPLAY_PART_BYTES || this.#queued.length !== 0))) return;
    let bytes = 0;
    const { events } = replay;
    while (replay.next < events.length && (all || bytes < REPLAY_PART_BYTES)) {
      const { data, id } = events[replay.next++];
      const pieces = eventPieces("message", data, id);
      for (const piece of pieces) bytes += piece.length;
      this.#queueNow(pieces);
    }
    if (replay.next < events.length) return;
    this.#replay = undefined;
    for (const [pieces, kind] of replay.after) this.#queueNow(pieces, kind);
    if (replay.ending) this.close();
  }

  /**
   * Sends an event with an id and no data (a priming event), and how long a client should wait before
   * it reconnects: from then on a broken stream can be resumed.
   */
  prime(id: string, retryMs: number): void {
    this.#queueEvent([`id: ${id}\nretry: ${retryMs}\ndata: \n\n`]);
  }

  /**
   * Ends the stream, after what was sent. An event still coming in pieces is cut short there (as its
   * `abort` would), and the events held behind it go out before the end. A {@link replay} its client has
   * not taken yet is cut off ({@link cutOff}): it would be held for a client that may never read it.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#replay !== undefined) return this.cutOff("the stream ended before its client took it whole");
    if (this.#held !== undefined) this.#endPieces(ABORTED_TAIL);
    this.#flush(true);
    if (this.#closed) return;
    try {
      this.#controller.close();
    } catch {
      // Already errored by the client going away.
    }
    this.#finish();
  }

  /**
   * Ends the stream at once, without what still waits for the client: for a stream another connection
   * took over (a resumption), whose client has left it. What it held is let go, not kept until a client
   * that may never read takes it (found by QA: each of a thousand resumptions nobody read held the
   * session's whole event log, 8 GiB in all).
   */
  cutOff(reason: string): void {
    if (this.#closed) return;
    this.#held = undefined;
    this.#replay = undefined;
    this.#queued = [];
    try {
      this.#controller.error(new BodyCutShort(reason));
    } catch {
      // Already errored by the client going away.
    }
    this.#finish();
  }

  /** Ends the event being sent in pieces with `tail`, then queues the events held behind it. */
  #endPieces(tail: string): void {
    const held = this.#held!;
    this.#held = undefined;
    this.#push(tail);
    // Each as it would have gone (found by review: held together, a progress notification and the answer
    // after it went in one chunk).
    for (const { pieces, kind } of held) this.#queueEvent(pieces, kind);
  }

  /**
   * Queues the pieces of one event, carrying `kind` (see {@link send}), or holds them (see {@link #held}),
   * or keeps them for after the replay under way.
   */
  #queueEvent(pieces: (string | Uint8Array)[], kind?: EventKind): void {
    if (this.#closed) return;
    if (this.#held !== undefined) {
      this.#held.push({ pieces, kind });
      return;
    }
    const replay = this.#replay;
    if (replay !== undefined) {
      replay.after.push([pieces, kind]);
      for (const piece of pieces) replay.afterBytes += piece.length;
      // What waits behind the replay counts as behind too.
      if (replay.afterBytes > this.#highWaterMark) {
        this.#onSlowConsumer?.();
        this.cutOff("the client fell too far behind");
      }
      return;
    }
    this.#queueNow(pieces, kind);
  }

  /** Queues the pieces of one event, carrying `kind` (see {@link send}). */
  #queueNow(pieces: (string | Uint8Array)[], kind?: EventKind): void {
    let batch: Batch;
    if (kind === "progress") {
      batch = this.#queued[0] ?? this.#newBatch();
      batch.progress = true;
    } else {
      // A batch after the first is made only here, when the first is also the last: two at most.
      const last = this.#queued.at(-1);
      batch = last === undefined || (kind === "answer" && last.progress) ? this.#newBatch() : last;
    }
    for (const piece of pieces) batch.pieces.push(piece);
  }

  /**
   * Queues a piece of the event being sent in pieces; what is queued in one turn of the event loop goes to
   * the client as one chunk (text and small bytes), and bytes of {@link BYTES_ON_THEIR_OWN} or more as
   * chunks of their own, not copied.
   */
  #push(piece: string | Uint8Array): void {
    if (this.#closed) return;
    (this.#queued.at(-1) ?? this.#newBatch()).pieces.push(piece);
  }

  /** Starts a batch: the first goes at the end of this turn, a later one after those before it. */
  #newBatch(): Batch {
    const batch: Batch = { pieces: [], progress: false };
    if (this.#queued.push(batch) === 1) queueMicrotask(() => this.#flush());
    return batch;
  }

  /** Sends the first batch; or with `all` (the stream ends), every one. */
  #flush(all = false): void {
    this.#cancelLater();
    if (this.#closed) return;
    do {
      const batch = this.#queued.shift();
      if (batch === undefined) return;
      try {
        for (const chunk of chunksOf(batch.pieces)) this.#controller.enqueue(chunk);
      } catch {
        this.#finish();
        return;
      }
      if ((this.#controller.desiredSize ?? 0) < 0) {
        this.#onSlowConsumer?.();
        this.#controller.error(new BodyCutShort("the client fell too far behind"));
        this.#finish();
        return;
      }
    } while (all);
    if (this.#queued.length > 0) this.#flushLater();
  }

  /**
   * Sends the next batch once the one before it could go out: after a timer, which lets the HTTP server
   * write what it has first (an immediate does not: the two went out in one write). The timer is set from
   * an immediate, so that it is never nested in the timer before it (timers nested five deep are held to
   * 4 ms).
   */
  #flushLater(turns = 0): void {
    this.#later = setImmediate(() => {
      this.#later = undefined;
      this.#laterTimer = setTimeout(() => {
        this.#laterTimer = undefined;
        // While the HTTP server has not taken what went before (a large answer going out to a slow
        // socket), a few turns more (found by review: then the two batches still went out together).
        const waiting = this.#highWaterMark - (this.#controller.desiredSize ?? this.#highWaterMark);
        if (waiting > 0 && turns < MAX_DRAIN_TURNS && !this.#closed) this.#flushLater(turns + 1);
        else this.#flush();
      }, 0);
    });
  }

  #cancelLater(): void {
    clearImmediate(this.#later);
    clearTimeout(this.#laterTimer);
    this.#later = this.#laterTimer = undefined;
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#replay = undefined;
    this.#cancelLater();
    clearInterval(this.#keepAlive);
    this.#onClose?.();
  }
}

/** One event as it is written: its head, data and end, as one text when the data is text. */
function eventPieces(event: string, data: string | Uint8Array, id?: string): (string | Uint8Array)[] {
  const head = id === undefined ? `event: ${event}\ndata: ` : `id: ${id}\nevent: ${event}\ndata: `;
  return typeof data === "string" ? [`${head}${data}\n\n`] : [head, data, "\n\n"];
}

/** An event of a log sent again (see `EventStream.replay`). */
export interface ReplayedEvent {
  /** JSON text, or its UTF-8 bytes. */
  data: string | Uint8Array;
  id: string;
}

/** About how many bytes of a replay are queued at a time (see `EventStream.replay`). */
const REPLAY_PART_BYTES = 64 * 1024;

/** A replay under way: see `EventStream.replay`. */
interface Replay {
  events: readonly ReplayedEvent[];
  /** The first event not queued yet. */
  next: number;
  /** What was sent meanwhile, to go after the replay; and its size. */
  after: [(string | Uint8Array)[], EventKind | undefined][];
  afterBytes: number;
  /** The stream ends once the replay went out (`endAfterReplay`). */
  ending: boolean;
}

/** What an event carries, as far as how it is sent goes (see `EventStream.send`). */
export type EventKind = "progress" | "answer";

/** Turns a later batch waits at most for what went before it to be taken (see `EventStream.#flushLater`). */
const MAX_DRAIN_TURNS = 20;

/** What goes to the client as one chunk (see `EventStream.send`). */
interface Batch {
  pieces: (string | Uint8Array)[];
  /** It holds a progress notification: an answer goes in the next batch. */
  progress: boolean;
}

/** The type an event sent in pieces gets when it is cut short. */
export const ABORTED_EVENT = "mcp-proxy-aborted";

/** What ends an event sent in pieces that was cut short: it gives the event {@link ABORTED_EVENT}. */
const ABORTED_TAIL = `\nevent: ${ABORTED_EVENT}\n\n`;

/** Bytes this long go out as a chunk of their own rather than be copied into one with the rest. */
const BYTES_ON_THEIR_OWN = 16 * 1024;

/** The pieces as chunks of UTF-8 bytes: as few as can be without copying large bytes. */
function chunksOf(pieces: (string | Uint8Array)[]): Uint8Array[] {
  if (pieces.every((piece) => typeof piece === "string")) {
    return [encoder.encode(pieces.length === 1 ? pieces[0] as string : pieces.join(""))];
  }
  const chunks: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  const endRun = () => {
    if (run.length === 1) chunks.push(run[0]);
    else if (run.length > 1) {
      const chunk = new Uint8Array(run.reduce((total, part) => total + part.length, 0));
      let offset = 0;
      for (const part of run) {
        chunk.set(part, offset);
        offset += part.length;
      }
      chunks.push(chunk);
    }
    run = [];
  };
  for (const piece of pieces) {
    if (typeof piece === "string") run.push(encoder.encode(piece));
    else if (piece.length < BYTES_ON_THEIR_OWN) run.push(piece);
    else {
      endRun();
      chunks.push(piece);
    }
  }
  endRun();
  return chunks;
}

/** Response headers of an SSE stream. */
export const EVENT_STREAM_HEADERS: HeadersInit = {
  "Content-Type": "text/event-stream",
  "Cache-Control": "no-cache, no-transform",
  "Connection": "keep-alive",
  "X-Accel-Buffering": "no",
};
