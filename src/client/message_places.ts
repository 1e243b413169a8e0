/**
 * The order of the client's messages in client mode: each has a place (1, 2, 3, … as the client wrote them),
 * and some wait until the messages at earlier places have got somewhere. Two kinds of waiting, each costing
 * O(1) (amortized) per message, however many wait at once (found by review: a wake-everyone design took
 * cubic time, and seconds, for a burst of a thousand):
 *
 * - {@link PlacesDone}: until every earlier place is done (its body written, say): places are handed out in
 *   order and mostly done in order, so a low-water mark tracks them.
 * - {@link PlacesPending}: until no earlier place of a few (those to go again) is still pending.
 *
 * @module
 */

import { DelayQueue } from "../delay_queue.ts";

/**
 * Places handed out in order (1, 2, 3, …), each done once; waits until every place before one is done, for
 * `maxMs` at most (all on one timer: a timer and an abort listener for each waiter cost quadratic time in a
 * burst, found by review).
 */
export class PlacesDone {
  /** Every place below it is done. */
  #mark = 1;
  /** Places done at or above the mark. */
  readonly #done = new Set<number>();
  /** Who waits for the mark to reach a place. */
  readonly #waiters = new Map<number, () => void>();
  readonly #giveUp: DelayQueue<number>;

  constructor(maxMs: number) {
    this.#giveUp = new DelayQueue(maxMs, (place) => this.#wake(place));
  }

  /** Whether every place before `place` is done. */
  allBefore(place: number): boolean {
    return this.#mark >= place;
  }

  /** `place` is done (again: no effect). */
  done(place: number): void {
    if (place < this.#mark) return;
    this.#done.add(place);
    while (this.#done.delete(this.#mark)) {
      this.#mark++;
      if (this.#waiters.size !== 0) this.#wake(this.#mark);
    }
  }

  /** Resolves once every place before `place` is done, or after the longest wait; one waiter per place. */
  before(place: number): Promise<void> {
    if (this.allBefore(place)) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake(place);
      this.#waiters.set(place, resolve);
      this.#giveUp.add(place);
    });
  }

  /** Every waiter let go, now and from now on: for the end. */
  close(): void {
    this.#mark = Infinity;
    this.#giveUp.clear();
    for (const resolve of this.#waiters.values()) resolve();
    this.#waiters.clear();
  }

  #wake(place: number): void {
    const resolve = this.#waiters.get(place);
    if (resolve === undefined) return;
    this.#waiters.delete(place);
    this.#giveUp.delete(place);
    resolve();
  }
}

/** A few pending places; waits until none before a place is pending. */
export class PlacesPending {
  readonly #pending = new Set<number>();
  /** The lowest pending place, or Infinity. */
  #lowest = Infinity;
  /** Who waits, by place, lowest first. */
  readonly #waiters: { place: number; resolve: () => void }[] = [];

  get size(): number {
    return this.#pending.size;
  }

  has(place: number): boolean {
    return this.#pending.has(place);
  }

  /** Whether a place before `place` is pending. */
  anyBefore(place: number): boolean {
    return this.#lowest < place;
  }

  add(place: number): void {
    this.#pending.add(place);
    if (place < this.#lowest) this.#lowest = place;
  }

  /** `place` is pending no more (no effect if it was not). */
  delete(place: number): void {
    if (!this.#pending.delete(place) || place !== this.#lowest) return;
    let lowest = Infinity;
    for (const other of this.#pending) if (other < lowest) lowest = other;
    this.#lowest = lowest;
    while (this.#waiters.length > 0 && this.#waiters[0].place <= lowest) this.#waiters.shift()!.resolve();
  }

  /** None pending, and every waiter let go. */
  clear(): void {
    this.#pending.clear();
    this.#lowest = Infinity;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
  }

  /** Resolves once no place before `place` is pending (or the places are cleared). */
  before(place: number): Promise<void> {
    if (!this.anyBefore(place)) return Promise.resolve();
    return new Promise((resolve) => {
      let at = this.#waiters.length;
      while (at > 0 && this.#waiters[at - 1].place > place) at--;
      this.#waiters.splice(at, 0, { place, resolve });
    });
  }
}
