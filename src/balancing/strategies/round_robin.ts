import type { Backend } from "../backend.ts";
import type { Strategy } from "./strategy.ts";

/**
 * nginx's smooth weighted round robin: each pick adds every candidate's weight
 * to its running score, takes the highest (the first in pool order on a tie)
 * and takes the total weight off the winner. Weights 5,1,1 give
 * `a a b a c a a`: the heavy backend's share is spread out, never a burst.
 * Equal weights are plain rotation in pool order.
 *
 * @example
 * ```ts
 * const rr = new RoundRobin();
 * const backend = rr.pick(pool.backends);
 * ```
 */
export class RoundRobin implements Strategy {
  /** Running score per backend; a weak map so removed backends go away. */
  #current = new WeakMap<Backend, number>();

  pick(candidates: readonly Backend[]): Backend {
    let best = candidates[0]!;
    let bestScore = -Infinity;
    let total = 0;
    for (const backend of candidates) {
      const score = (this.#current.get(backend) ?? 0) + backend.weight;
      this.#current.set(backend, score);
      total += backend.weight;
      if (score > bestScore) {
        best = backend;
        bestScore = score;
      }
    }
    this.#current.set(best, bestScore - total);
    return best;
  }
}
