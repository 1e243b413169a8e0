/**
 * Resumability for Streamable HTTP: the messages sent on a session's SSE streams are kept, so that a
 * client whose stream broke can reconnect with `Last-Event-ID` and get what it missed. One store per
 * session, bounded by a number of events: the oldest are forgotten first.
 *
 * @module
 */

import type { JSONRPCMessage } from "../mcp_sdk.ts";

/** Events kept per session by default. */
export const DEFAULT_EVENTS_PER_SESSION = 1000;

interface StoredEvent {
  streamId: string;
  seq: number;
  message: JSONRPCMessage;
}

/** Event ids are `STREAM:SEQ`; the stream id is the SDK's (a UUID, or `_GET_stream`). */
function parseEventId(eventId: string): { streamId: string; seq: number } | undefined {
  const colon = eventId.lastIndexOf(":");
  const seq = Number(eventId.slice(colon + 1));
  if (colon <= 0 || !Number.isSafeInteger(seq)) return undefined;
  return { streamId: eventId.slice(0, colon), seq };
}

/**
 * The SDK's `EventStore`, in memory and bounded. Priming events (empty messages the SDK stores to hand
 * out a first event id) are kept for their ids but never replayed.
 *
 * @example
 * ```ts
 * new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator, eventStore: new BoundedEventStore() });
 * ```
 */
export class BoundedEventStore {
  readonly #maxEvents: number;
  #events: StoredEvent[] = [];
  #seq = 0;

  constructor(maxEvents = DEFAULT_EVENTS_PER_SESSION) {
    this.#maxEvents = maxEvents;
  }

  /** Number of events kept. */
  get size(): number {
    return this.#events.length;
  }

  storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const seq = ++this.#seq;
    this.#events.push({ streamId, seq, message });
    // Trim in batches, so that a full store does not shift the array on every message.
    if (this.#events.length > this.#maxEvents * 1.25) this.#events = this.#events.slice(-this.#maxEvents);
    return Promise.resolve(`${streamId}:${seq}`);
  }

  getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return Promise.resolve(parseEventId(eventId)?.streamId);
  }

  async replayEventsAfter(
    lastEventId: string,
    { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    const last = parseEventId(lastEventId);
    if (last === undefined) throw new Error(`unknown event id ${JSON.stringify(lastEventId)}`);
    for (const event of this.#events) {
      if (event.streamId !== last.streamId || event.seq <= last.seq) continue;
      if (Object.keys(event.message).length === 0) continue;
      await send(`${event.streamId}:${event.seq}`, event.message);
    }
    return last.streamId;
  }
}
