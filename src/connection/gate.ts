/**
 * Counts open connections against a limit shared by every frontend. Accept
 * loops `wait()` before accepting, so that past the limit clients stay in the
 * kernel's backlog (backpressure) instead of being accepted and dropped.
 */
export class Gate {
  /** Most at once; 0 is no limit. */
  limit: number;
  #open = 0;
  #waiters: (() => void)[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Connections open now. */
  get open(): number {
    return this.#open;
  }

  /** Resolves when one more connection may be accepted. */
  wait(): Promise<void> | undefined {
    if (this.limit === 0 || this.#open < this.limit) return undefined;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Counts a connection in. */
  enter(): void {
    this.#open++;
  }

  /**
   * Counts a connection out and wakes every waiting accept loop; each re-checks
   * the limit. Waking only one could wake a loop that waits again while the
   * freed slot belongs to another frontend's loop, left asleep.
   */
  leave(): void {
    this.#open--;
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /**
   * Wakes every waiting accept loop without a connection leaving: each
   * re-checks whether it should still accept (the limit changed on reload,
   * or the loop stops or moves).
   */
  wakeAll(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
