/**
 * Puts a `Backend` into a state for a test, through the same methods lb uses
 * (the state has one owner each: counters on `Backend`, health on `BackendHealth`).
 * @module
 */
import type { Backend } from "../../src/balancing/backend.ts";

/** Makes `backend.active` equal `n` (picks, or cancelled connects). */
export function setActive(backend: Backend, n: number): void {
  while (backend.active < n) backend.picked();
  while (backend.active > n) backend.connectFailed(false);
}

/** Takes `backend` down (one failure with fall 1) or brings it up (one success with rise 1). */
export function setHealthy(backend: Backend, up: boolean): void {
  if (up) backend.health.succeeded(1);
  else backend.health.failed(1, true, "test");
}
