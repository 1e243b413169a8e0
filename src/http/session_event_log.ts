/**
 * Resumability for Streamable HTTP: the messages a session sent on its SSE streams are kept, so that a
 * client whose stream broke can reconnect with `Last-Event-ID` and get what it missed. One log per
 * session, bounded by a number of events and by their total size: the oldest are forgotten first, but
 * the session's GET stream and the streams of its POSTs each keep at least half of either bound. A GET
 * stream busy with the server's own messages would otherwise push out the answer a broken POST stream
 * waits to be resumed for. Among the POSTs' events, the answers and the rest share alike: a server's
 * messages that belong to no request go on the stream of a request still running, as mcp-proxy relates
 * them, and would otherwise push out the answer of another; many answers, the server's request a running
 * call waits on. The newest event stays, whatever its size. What it forgot of a stream is remembered (the
 * newest event's place, the requests whose answers were among them), so that a client resuming the stream
 * from before it is told.
 *
 * Event ids are `STREAM:SEQ`: the stream the event was sent on, and its place in the session's log.
 *
 * @module
 */

import type { JsonText } from "../large_answer.ts";
import { memberSpan } from "../json_members.ts";

/** Events kept per session by default. */
export const DEFAULT_MAX_EVENTS = 1000;
/** Bytes kept per session by default (of a text, its UTF-16 code units: close enough). */
export const DEFAULT_MAX_TEXT_LENGTH = 8 * 1024 * 1024;

/** One logged event: the JSON text of a message. */
export interface LoggedEvent {
  readonly id: string;
  readonly streamId: string;
  readonly seq: number;
  /** The message's JSON text, or its UTF-8 bytes. */
  readonly data: JsonText;
  /** Whether it is the answer to a request. */
  readonly answer: boolean;
}

/** What a stream lost from the log after the event a client resumes it from (see `takeLost`). */
export interface LostEvents {
  /** The ids of the answers among the events forgotten, each as its JSON text has it. */
  answerIds: string[];
}

/** Streams whose forgotten events are remembered (by their ids and answers), the most recent ones. */
const MAX_STREAMS_WITH_LOSSES = 256;

/** The stream id of a session's GET stream (the stream of the server's own messages) in event ids. */
export const GET_STREAM = "0";

/** What stands in the log's array for an event it forgot, until the array is cut. */
const FORGOTTEN: LoggedEvent = Object.freeze({ id: "", streamId: "", seq: 0, data: "", answer: false });

const decoder = new TextDecoder();

/** The id of the answer `data`, as its JSON text has it; undefined if it cannot be found. */
function writtenAnswerId(data: JsonText): string | undefined {
  const text = typeof data === "string" ? data : decoder.decode(data);
  const span = memberSpan(text, ["id"]);
  return span == null ? undefined : text.slice(span.start, span.start + span.length);
}

/** Splits an event id into its stream and sequence number; undefined if it is not one of ours. */
export function parseEventId(eventId: string): { streamId: string; seq: number } | undefined {
  const colon = eventId.lastIndexOf(":");
  if (colon <= 0) return undefined;
  const seq = Number(eventId.slice(colon + 1));
  if (!Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { streamId: eventId.slice(0, colon), seq };
}

/** The events of one kind of stream (the GET stream, or the POSTs'), oldest first. */
class Lane {
  events: LoggedEvent[] = [];
  first = 0;
  textLength = 0;
  /** Told of each event forgotten. */
  readonly #onForget: (event: LoggedEvent) => void;

  constructor(onForget: (event: LoggedEvent) => void) {
    this.#onForget = onForget;
  }

  get size(): number {
    return this.events.length - this.first;
  }

  push(event: LoggedEvent): void {
    this.events.push(event);
    this.textLength += event.data.length;
  }

  forgetOldest(): void {
    const event = this.events[this.first];
    this.#onForget(event);
    this.textLength -= event.data.length;
    // Let go of its text now, not when the array is cut (found by QA: 64 forgotten 20 MB answers of a
    // session were kept, 1.3 GB).
    this.events[this.first] = FORGOTTEN;
    this.first++;
    // Drop forgotten events in batches, so that a full log does not shift its array on every append.
    if (this.first > 64 && this.first * 2 > this.events.length) {
      this.events = this.events.slice(this.first);
      this.first = 0;
    }
  }

  since(streamId: string, seq: number): LoggedEvent[] {
    const found: LoggedEvent[] = [];
    for (let i = this.first; i < this.events.length; i++) {
      const event = this.events[i];
      if (event.seq > seq && event.streamId === streamId) found.push(event);
    }
    return found;
  }
}

/** The events of the POSTs' streams: their answers, and the rest (progress, the server's own messages). */
class PostLanes {
  readonly others: Lane;
  readonly answers: Lane;

  constructor(onForget: (event: LoggedEvent) => void) {
    this.others = new Lane(onForget);
    this.answers = new Lane(onForget);
  }

  get size(): number {
    return this.others.size + this.answers.size;
  }

  get textLength(): number {
    return this.others.textLength + this.answers.textLength;
  }

  /**
   * Forgets the oldest event that is not the newest (the one of `newest`, its lane), of the lane that holds
   * more (of the count with `overCount`, else of the size): the other keeps its half (found by review:
   * answers forgotten last left the rest room for one). When that lane holds only the newest, the other
   * gives way; over the size, only beyond half of `bound` (found by review: a large notification pushed out
   * answers well within their half). Returns false when nothing may be forgotten.
   */
  forgetOldest(newest: Lane, overCount: boolean, bound: number): boolean {
    // No closures: a full log forgets an event on every append.
    const othersShare = overCount ? this.others.size : this.others.textLength;
    const answersShare = overCount ? this.answers.size : this.answers.textLength;
    const first = othersShare >= answersShare ? this.others : this.answers;
    if (first.size - (first === newest ? 1 : 0) > 0) {
      first.forgetOldest();
      return true;
    }
    const other = first === this.others ? this.answers : this.others;
    // By count, the newest is one event: the other gives way, so that the log keeps its bound.
    if (
      other.size === 0 || (!overCount && (first === this.others ? answersShare : othersShare) * 2 <= bound)
    ) {
      return false;
    }
    other.forgetOldest();
    return true;
  }

  since(streamId: string, seq: number): LoggedEvent[] {
    const others = this.others.since(streamId, seq);
    const answers = this.answers.since(streamId, seq);
    if (others.length === 0) return answers;
    if (answers.length === 0) return others;
    return [...others, ...answers].sort((a, b) => a.seq - b.seq);
  }
}

/**
 * The event log of one session.
 *
 * @example
 * ```ts
 * const log = new SessionEventLog();
 * const id = log.append("3", '{"jsonrpc":"2.0","id":1,"result":{}}');   // "3:1"
 * log.after("3:0");   // [that event]
 * ```
 */
export class SessionEventLog {
  readonly #maxEvents: number;
  readonly #maxTextLength: number;
  /** The events of the GET stream ({@link GET_STREAM}). */
  readonly #get = new Lane((event) => this.#forgot(event));
  /** The events of the POSTs' streams. */
  readonly #posts = new PostLanes((event) => this.#forgot(event));
  #seq = 0;
  /**
   * By stream, the sequence number of its newest event forgotten, and the ids of the answers among them
   * not reported yet (a POST's, a batch's at most): a client that resumes a stream from before them is
   * told (see `takeLost`).
   */
  readonly #forgotten = new Map<string, { newest: number; answers: { seq: number; id: string }[] }>();

  constructor(maxEvents = DEFAULT_MAX_EVENTS, maxTextLength = DEFAULT_MAX_TEXT_LENGTH) {
    this.#maxEvents = maxEvents;
    this.#maxTextLength = maxTextLength;
  }

  /** The most events kept. */
  get maxEvents(): number {
    return this.#maxEvents;
  }

  /** The most text kept, in UTF-16 code units (a rough count of bytes). */
  get maxTextLength(): number {
    return this.#maxTextLength;
  }

  /** Number of events kept. */
  get size(): number {
    return this.#get.size + this.#posts.size;
  }

  /**
   * The total length of the texts the log's memory still holds, counted over all it references: no more
   * than those of the events kept, as a forgotten event's text is let go at once. For tests.
   */
  get heldTextLength(): number {
    let total = 0;
    for (const lane of [this.#get, this.#posts.others, this.#posts.answers]) {
      for (const event of lane.events) total += event.data.length;
    }
    return total;
  }

  /** A new event id on `streamId` that names no message (an SSE priming event). */
  mark(streamId: string): string {
    return `${streamId}:${++this.#seq}`;
  }

  /** Logs `data` as sent on `streamId` (with `answer`, an answer to a request); returns its event id. */
  append(streamId: string, data: JsonText, answer = false): string {
    const seq = ++this.#seq;
    const id = `${streamId}:${seq}`;
    const lane = streamId === GET_STREAM ? this.#get : answer ? this.#posts.answers : this.#posts.others;
    lane.push({ id, streamId, seq, data, answer });
    for (;;) {
      const overCount = this.size > this.#maxEvents;
      if (!overCount && this.#get.textLength + this.#posts.textLength <= this.#maxTextLength) break;
      // From a lane over its half of the bound passed (at least one is), oldest first. The newest event
      // stays, whatever its size: it is the one a broken stream most likely misses. It may leave the log
      // over its bound, by less than its own size: the other lane keeps its half (found by review).
      if (this.#mayGiveWay(this.#get, lane === this.#get, overCount)) this.#get.forgetOldest();
      else if (!this.#mayGiveWay(this.#posts, lane !== this.#get, overCount)) break;
      else if (
        !this.#posts.forgetOldest(lane, overCount, overCount ? this.#maxEvents : this.#maxTextLength)
      ) break;
    }
    return id;
  }

  /** The events logged on the stream of `eventId` after it, oldest first; undefined for a malformed id. */
  after(eventId: string): LoggedEvent[] | undefined {
    const last = parseEventId(eventId);
    if (last === undefined) return undefined;
    return this.since(last.streamId, last.seq);
  }

  /** The events logged on `streamId` with a sequence number above `seq`, oldest first. */
  since(streamId: string, seq: number): LoggedEvent[] {
    return streamId === GET_STREAM ? this.#get.since(streamId, seq) : this.#posts.since(streamId, seq);
  }

  /**
   * What the log forgot of the events on `streamId` with a sequence number above `seq`: a client that
   * resumes the stream from there misses them. Undefined when it forgot none of them. The answers among
   * them are reported once: the caller answers for them (found by review: each resume from the same id
   * reported them again).
   */
  takeLost(streamId: string, seq: number): LostEvents | undefined {
    const forgotten = this.#forgotten.get(streamId);
    if (forgotten === undefined || forgotten.newest <= seq) return undefined;
    const answerIds: string[] = [];
    forgotten.answers = forgotten.answers.filter((each) => {
      if (each.seq <= seq) return true;
      answerIds.push(each.id);
      return false;
    });
    return { answerIds };
  }

  #forgot(event: LoggedEvent): void {
    let forgotten = this.#forgotten.get(event.streamId);
    if (forgotten === undefined) {
      if (this.#forgotten.size >= MAX_STREAMS_WITH_LOSSES) {
        this.#forgotten.delete(this.#forgotten.keys().next().value!);
      }
      this.#forgotten.set(event.streamId, forgotten = { newest: 0, answers: [] });
    }
    forgotten.newest = Math.max(forgotten.newest, event.seq);
    if (!event.answer) return;
    const id = writtenAnswerId(event.data);
    if (id !== undefined) forgotten.answers.push({ seq: event.seq, id });
  }

  /**
   * Whether `of` is over its half of the bound passed (of the count with `overCount`, else of the size),
   * with an event to forget other than the newest (which it holds when `holdsNewest`).
   */
  #mayGiveWay(of: Lane | PostLanes, holdsNewest: boolean, overCount: boolean): boolean {
    if (of.size - (holdsNewest ? 1 : 0) === 0) return false;
    return overCount ? of.size * 2 > this.#maxEvents : of.textLength * 2 > this.#maxTextLength;
  }
}
