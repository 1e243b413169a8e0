/**
 * The order in which the POSTs of one session arrived, for the messages that must reach the child in it.
 *
 * Concurrent POSTs come on connections of their own, and each message goes to the child once its body is
 * read: a small POST overtakes a large one that came before it. For requests that is harmless (each is
 * answered on its own), but not for a notification about one: an SDK client cancels a call with a POST
 * of its own right after the call's, and a cancellation that reaches the proxy before the request it
 * names is dropped, the call running on (found by QA). So a POST with a notification in it waits, before
 * its messages go on, for the POSTs of its session that arrived before it to hand theirs over. Others do
 * not: a request is answered on its own, and a client's answer to the server's request names none of its.
 *
 * @module
 */

import { isNotification, type JsonRpcMessage } from "../jsonrpc.ts";

/**
 * The longest a POST waits for those that arrived before it: one whose client stalls mid-body holds
 * back the session's later notifications no longer than this, and once only (see `after`).
 */
export const ARRIVAL_WAIT_MS = 10_000;

/**
 * Whether a POST of `messages` waits for the session's POSTs that arrived before it: one with a
 * notification (in a batch, with requests too: found by QA).
 */
export function waitsForEarlierPosts(messages: readonly JsonRpcMessage[]): boolean {
  return messages.some(isNotification);
}

interface Waiter {
  ticket: number;
  resolve: () => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Tickets in the order POSTs arrive: each takes one when its head has come (`arrive`), and gives it back
 * once its messages have been handed over, or it failed (`handedOver`). A POST may wait for all those
 * that arrived before it (`after`).
 *
 * @example
 * ```ts
 * const order = new ArrivalOrder();
 * const call = order.arrive();
 * const cancel = order.arrive();
 * const waiting = order.after(cancel); // a promise: `call` has not handed its messages over
 * order.handedOver(call);
 * await waiting;
 * order.handedOver(cancel);
 * ```
 */
export class ArrivalOrder {
  #last = 0;
  /** Tickets taken and not given back, oldest first. */
  #open: number[] = [];
  /** POSTs waiting for those before them, by ticket. */
  readonly #waiters: Waiter[] = [];
  #closed = false;

  /** A ticket for a POST whose head has come. */
  arrive(): number {
    this.#open.push(++this.#last);
    return this.#last;
  }

  /** The POST of `ticket` handed its messages over, or will not: those after it need not wait for it. */
  handedOver(ticket: number): void {
    const at = this.#open.indexOf(ticket);
    if (at === -1) return;
    this.#open.splice(at, 1);
    if (this.#waiters.length !== 0) this.#wake();
  }

  /**
   * Undefined when every POST that arrived before `ticket` has handed its messages over (or the session
   * ended); else a promise that resolves once they have. Waiters go on in the order they arrived. After
   * `maxMs`, those before it still reading their bodies are given up: nobody waits for them any more
   * (found by review: a POST stalled mid-body held back each later notification of its session 10 s).
   */
  after(ticket: number, maxMs = ARRIVAL_WAIT_MS): Promise<void> | undefined {
    const oldest = this.#open[0];
    if (this.#closed || oldest === undefined || oldest >= ticket) return undefined;
    return new Promise((resolve) => {
      const waiter: Waiter = { ticket, resolve, timer: setTimeout(() => this.#giveUpBefore(ticket), maxMs) };
      let at = this.#waiters.length;
      while (at > 0 && this.#waiters[at - 1].ticket > ticket) at--;
      this.#waiters.splice(at, 0, waiter);
    });
  }

  /** The session ended: no one waits any longer, nor will. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
  }

  /**
   * Gives up the tickets before `ticket` of POSTs still reading their bodies (not waiting themselves),
   * and lets go the waiters nothing else holds back, in order: `ticket`'s among them.
   */
  #giveUpBefore(ticket: number): void {
    const waiting = new Set(this.#waiters.map((waiter) => waiter.ticket));
    this.#open = this.#open.filter((open) => open >= ticket || waiting.has(open));
    this.#wake();
  }

  /** Lets go, oldest first, the waiters that no POST arrived before them still holds back. */
  #wake(): void {
    const oldest = this.#open[0] ?? Infinity;
    while (this.#waiters.length !== 0 && this.#waiters[0].ticket <= oldest) {
      const waiter = this.#waiters.shift()!;
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
  }
}
