/**
 * The order in which the POSTs of one session arrived, for the messages that must reach the child in it.
 *
 * Concurrent POSTs come on connections of their own, and each message goes to the child once its body is
 * read: a small POST overtakes a large one that came before it. For requests that is harmless (each is
 * answered on its own), but not for a notification about one: an SDK client cancels a call with a POST
 * of its own right after the call's, and a cancellation that reaches the proxy before the request it
 * names is dropped, the call running on (found by QA). So a POST with no request in it waits, before
 * its messages go on, for the POSTs of its session that arrived before it to hand theirs over.
 *
 * @module
 */

/**
 * The longest a POST waits for those that arrived before it: one whose client stalls mid-body holds
 * back the session's later notifications no longer than this.
 */
export const ARRIVAL_WAIT_MS = 10_000;

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
  readonly #open: number[] = [];
  /** POSTs waiting for those before them, by ticket. */
  readonly #waiters: Waiter[] = [];

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
   * Undefined when every POST that arrived before `ticket` has handed its messages over; else a promise
   * that resolves once they have, or after `maxMs`. Waiters go on in the order they arrived.
   */
  after(ticket: number, maxMs = ARRIVAL_WAIT_MS): Promise<void> | undefined {
    const oldest = this.#open[0];
    if (oldest === undefined || oldest >= ticket) return undefined;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        ticket,
        resolve,
        timer: setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          resolve();
        }, maxMs),
      };
      let at = this.#waiters.length;
      while (at > 0 && this.#waiters[at - 1].ticket > ticket) at--;
      this.#waiters.splice(at, 0, waiter);
    });
  }

  /** The session ended: no one waits any longer. */
  close(): void {
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
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
