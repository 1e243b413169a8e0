/**
 * Many timeouts of one and the same delay on one timer. Entries fall due in the order they were added,
 * so only the first one needs a timer; adding and removing an entry cost a map operation each, where
 * `setTimeout` and `clearTimeout` cost about 10 µs per pair on the per-message path.
 *
 * @module
 */

/** Calls `onDue(entry)` `delayMs` after each {@link add}, unless the entry was {@link delete}d first. */
export class DelayQueue<T> {
  readonly #delayMs: number;
  readonly #onDue: (entry: T) => void;
  /** Entry → when it falls due (`performance.now()` ms: a clock that never goes back), in the order
   * added, which is the order due. */
  readonly #due = new Map<T, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(delayMs: number, onDue: (entry: T) => void) {
    this.#delayMs = delayMs;
    this.#onDue = onDue;
  }

  /** Number of entries waiting. */
  get size(): number {
    return this.#due.size;
  }

  /** Starts the delay of `entry` (again, if it was waiting). */
  add(entry: T): void {
    this.#due.delete(entry);
    this.#due.set(entry, performance.now() + this.#delayMs);
    if (this.#timer === undefined) this.#arm(this.#delayMs);
  }

  /** Forgets `entry`; its `onDue` will not be called. */
  delete(entry: T): void {
    this.#due.delete(entry);
    // The timer stays armed: when it fires it finds the next entry, or none and stops.
  }

  /** Forgets every entry and stops the timer. */
  clear(): void {
    this.#due.clear();
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(() => this.#fire(), delayMs);
  }

  #fire(): void {
    const now = performance.now();
    for (const [entry, due] of this.#due) {
      if (due > now) break;
      this.#due.delete(entry);
      this.#onDue(entry);
    }
    // `onDue` may have cleared the queue and added to it, arming a timer of its own: one is kept.
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const due of this.#due.values()) {
      this.#arm(due - now);
      break;
    }
  }
}
