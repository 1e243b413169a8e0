/**
 * `--max-sessions`: how many client sessions may be open at once, all servers and transports together.
 *
 * @module
 */

/** A counter of open sessions with a ceiling; a ceiling of 0 means no limit. */
export class SessionLimit {
  readonly max: number;
  #open = 0;

  constructor(max: number) {
    this.max = max;
  }

  /** Sessions open now. */
  get open(): number {
    return this.#open;
  }

  /** Whether the limit is reached: a new session would be refused. */
  get full(): boolean {
    return this.max > 0 && this.#open >= this.max;
  }

  /** Counts a new session; false (and nothing counted) when the limit is reached. */
  tryOpen(): boolean {
    if (this.full) return false;
    this.#open++;
    return true;
  }

  /** A session counted by {@link tryOpen} ended. */
  close(): void {
    this.#open = Math.max(0, this.#open - 1);
  }

  /** The 503 answer for a session over the limit. */
  refusal(): Response {
    const message = `Service Unavailable: ${this.max} sessions are open, the most --max-sessions allows`;
    return new Response(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message }, id: null }), {
      status: 503,
      headers: { "Content-Type": "application/json", "Retry-After": "5" },
    });
  }
}
