import type { Backend } from "../backend.ts";
import type { Strategy } from "./strategy.ts";

/** Plain round robin: each new connection goes to the next candidate in turn. */
export class RoundRobin implements Strategy {
  #next = 0;

  pick(candidates: readonly Backend[]): Backend {
    const backend = candidates[this.#next % candidates.length]!;
    this.#next = (this.#next + 1) % 1_000_000_007;
    return backend;
  }
}
