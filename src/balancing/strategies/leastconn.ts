import type { Backend } from "../backend.ts";
import type { Strategy } from "./strategy.ts";

/**
 * Least connections, weight-aware: the candidate with the lowest
 * `active / weight` wins (weight 2 takes twice the connections of weight 1).
 * Ties are broken in turn: the scan starts one place further each pick, so
 * idle backends share short connections evenly instead of the first one
 * taking them all.
 */
export class LeastConn implements Strategy {
  #turn = 0;

  pick(candidates: readonly Backend[]): Backend {
    const n = candidates.length;
    const start = this.#turn % n;
    this.#turn = (this.#turn + 1) % 1_000_000_007;
    let best = candidates[start]!;
    for (let i = 1; i < n; i++) {
      const backend = candidates[(start + i) % n]!;
      // a/wa < b/wb without division: a*wb < b*wa.
      if (backend.active * best.weight < best.active * backend.weight) best = backend;
    }
    return best;
  }
}
