/**
 * Time and timers behind one small interface, so that code which waits
 * (health checks) can be driven by a fake clock in tests.
 * @module
 */

/** A timer handle from {@link Clock.setTimeout}: opaque, only passed back to `clearTimeout`. */
export type TimerId = unknown;

/** Where time comes from and how to wait for it. */
export interface Clock {
  /** Milliseconds from an arbitrary origin; only differences matter. */
  now(): number;
  /** Calls `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timer; a fired or unknown id is ignored. */
  clearTimeout(id: TimerId): void;
}

/** The real clock: `performance.now()` and the runtime's timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};
