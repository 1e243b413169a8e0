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
    if (place !== this.#mark) {
      this.#done.add(place);
      return;
    }
    // The next in order, as most are: no set to touch unless some after it are done already.
    do {
      this.#mark++;
      if (this.#waiters.size !== 0) this.#wake(this.#mark);
    } while (this.#done.size !== 0 && this.#done.delete(this.#mark));
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

/**
 * Pending places, in any order; waits until none before a place is pending. The lowest is kept on a heap
 * whose entries no longer pending are dropped as they come to its top, so that places leaving in order
 * cost O(log n) each (found by review: a scan for the next lowest made an outage's thousands quadratic).
 */
export class PlacesPending {
  readonly #pending = new Set<number>();
  /** A min-heap of places, some of them perhaps no longer pending. */
  readonly #heap: number[] = [];
  /** Who waits, by place, lowest first, from `#first` on. */
  #waiters: { place: number; resolve: () => void }[] = [];
  #first = 0;

  get size(): number {
    return this.#pending.size;
  }

  has(place: number): boolean {
    return this.#pending.has(place);
  }

  /** Whether a place before `place` is pending. */
  anyBefore(place: number): boolean {
    return this.#lowest() < place;
  }

  add(place: number): void {
    if (this.#pending.has(place)) return;
    this.#pending.add(place);
    this.#push(place);
  }

  /** `place` is pending no more (no effect if it was not). */
  delete(place: number): void {
    if (!this.#pending.delete(place)) return;
    const lowest = this.#lowest();
    while (this.#first < this.#waiters.length && this.#waiters[this.#first].place <= lowest) {
      this.#waiters[this.#first++].resolve();
    }
    if (this.#first > 64 && this.#first * 2 > this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#first);
      this.#first = 0;
    }
  }

  /** None pending, and every waiter let go. */
  clear(): void {
    this.#pending.clear();
    this.#heap.length = 0;
    const waiters = this.#waiters.slice(this.#first);
    this.#waiters = [];
    this.#first = 0;
    for (const waiter of waiters) waiter.resolve();
  }

  /** Resolves once no place before `place` is pending (or the places are cleared). */
  before(place: number): Promise<void> {
    if (!this.anyBefore(place)) return Promise.resolve();
    return new Promise((resolve) => {
      let at = this.#waiters.length;
      while (at > this.#first && this.#waiters[at - 1].place > place) at--;
      this.#waiters.splice(at, 0, { place, resolve });
    });
  }

  /** The lowest pending place, or Infinity. */
  #lowest(): number {
    const heap = this.#heap;
    while (heap.length > 0 && !this.#pending.has(heap[0])) this.#pop();
    return heap.length > 0 ? heap[0] : Infinity;
  }

  #push(place: number): void {
    const heap = this.#heap;
    let at = heap.push(place) - 1;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (heap[parent] <= place) break;
      heap[at] = heap[parent];
      at = parent;
    }
    heap[at] = place;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let at = 0;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= heap.length) break;
      if (child + 1 < heap.length && heap[child + 1] < heap[child]) child++;
      if (heap[child] >= last) break;
      heap[at] = heap[child];
      at = child;
    }
    heap[at] = last;
  }
}
