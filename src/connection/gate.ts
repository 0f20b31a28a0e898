import { Cell } from "../common/shared_counters.ts";

/** Longest an accept loop waits at a full gate before it looks again (a missed wake-up costs this). */
const RECHECK_MS = 250;

/**
 * Counts open connections against `--max-conns`, shared by every frontend
 * and, through a shared {@link Cell}, by every thread (`--workers`). Accept
 * loops `wait()` before accepting, so that past the limit clients stay in
 * the kernel's backlog (backpressure) instead of being accepted and dropped;
 * a connection is counted in with `tryEnter`, one atomic step, so the limit
 * holds exactly even when several loops accept at once.
 */
export class Gate {
  /** Most at once; 0 is no limit. */
  limit: number;
  readonly #cell: Cell;
  #waiters: (() => void)[] = [];

  /** @param cell The count, shared with other threads. @default one for this thread alone */
  constructor(limit: number, cell: Cell = Cell.local()) {
    this.limit = limit;
    this.#cell = cell;
  }

  /** Connections open now, over every thread. */
  get open(): number {
    return this.#cell.value;
  }

  /**
   * Resolves when one more connection may be accepted, or may be: the caller
   * checks again. Undefined when it may be now.
   */
  wait(): Promise<void> | undefined {
    const seen = this.#cell.value;
    if (this.limit === 0 || seen < this.limit) return undefined;
    return new Promise((resolve) => {
      // Another thread's connection ending changes the count, not this thread's
      // waiters: wake on the shared count's change, and look again after
      // RECHECK_MS in any case (a timer surely wakes an idle event loop).
      const changed = this.#cell.changed(seen, RECHECK_MS);
      if (!changed) return void this.#waiters.push(resolve);
      const wake = () => {
        clearTimeout(timer);
        const at = this.#waiters.indexOf(wake);
        if (at >= 0) this.#waiters.splice(at, 1);
        resolve();
      };
      const timer = setTimeout(wake, RECHECK_MS);
      this.#waiters.push(wake);
      void changed.then(wake);
    });
  }

  /** Counts a connection in unless the gate is full; whether it did. */
  tryEnter(): boolean {
    return this.#cell.tryAdd(this.limit);
  }

  /**
   * Counts a connection out and wakes every waiting accept loop; each re-checks
   * the limit. Waking only one could wake a loop that waits again while the
   * freed slot belongs to another frontend's loop, left asleep.
   */
  leave(): void {
    this.#cell.sub();
    this.wakeAll();
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
