import type { Backend } from "../backend.ts";
import { Cell } from "../../common/shared_counters.ts";
import type { Strategy } from "./strategy.ts";

/**
 * nginx's smooth weighted round robin: each pick adds every candidate's weight
 * to its running score, takes the highest (the first in pool order on a tie)
 * and takes the total weight off the winner. Weights 5,1,1 give
 * `a a b a c a a`: the heavy backend's share is spread out, never a burst.
 * Equal weights are plain rotation in pool order.
 *
 * The order repeats every sum-of-weights picks, so it is computed once per
 * set of candidates and a turn counter walks it. With `--workers` the turn
 * is shared ({@link RoundRobin.share}): every thread walks the same order,
 * and the rotation holds across threads as with one.
 *
 * @example
 * ```ts
 * const rr = new RoundRobin();
 * const backend = rr.pick(pool.backends);
 * ```
 */
export class RoundRobin implements Strategy {
  #turn = Cell.local();
  /** The candidates the order was computed for, and the order (indexes into them). */
  #for: Backend[] = [];
  #weights: number[] = [];
  #order: Uint32Array = new Uint32Array(0);

  /** Takes turns from `cell`, shared with the other threads' strategy for the same pool. */
  share(cell: Cell): void {
    this.#turn = cell;
  }

  pick(candidates: readonly Backend[]): Backend {
    if (!this.#same(candidates)) this.#compute(candidates);
    const turn = this.#turn.next() % this.#order.length;
    return candidates[this.#order[turn < 0 ? turn + this.#order.length : turn]!]!;
  }

  #same(candidates: readonly Backend[]): boolean {
    if (candidates.length !== this.#for.length) return false;
    for (let i = 0; i < candidates.length; i++) {
      if (candidates[i] !== this.#for[i] || candidates[i]!.weight !== this.#weights[i]) {
        return false;
      }
    }
    return true;
  }

  /**
   * The order for `candidates`: computed (one period, weights divided by
   * their greatest common divisor) or taken from the few sets seen lately,
   * since a backend at its `maxconn` comes and goes from the candidates.
   */
  #compute(candidates: readonly Backend[]): void {
    this.#for = [...candidates];
    this.#weights = candidates.map((b) => b.weight);
    const key = candidates.map((b, i) => `${b.id}*${this.#weights[i]}`).join(" ");
    let order = this.#orders.get(key);
    if (order) {
      this.#orders.delete(key); // most recent last
    } else {
      order = smoothOrder(this.#weights);
      if (this.#orders.size >= RECENT_SETS) this.#orders.delete(this.#orders.keys().next().value!);
    }
    this.#orders.set(key, order);
    this.#order = order;
  }

  readonly #orders = new Map<string, Uint32Array>();
}

/** Candidate sets whose order {@link RoundRobin} keeps. */
const RECENT_SETS = 16;

/** One period of the smooth weighted round robin over `weights`: indexes into them. */
export function smoothOrder(weights: readonly number[]): Uint32Array {
  const divisor = weights.reduce((a, b) => _gcd(a, b), 0) || 1;
  const reduced = weights.map((w) => w / divisor);
  const total = reduced.reduce((sum, w) => sum + w, 0);
  const scores = new Array<number>(reduced.length).fill(0);
  const order = new Uint32Array(total);
  for (let turn = 0; turn < total; turn++) {
    let best = 0;
    for (let i = 0; i < reduced.length; i++) {
      scores[i]! += reduced[i]!;
      if (scores[i]! > scores[best]!) best = i;
    }
    scores[best]! -= total;
    order[turn] = best;
  }
  return order;
}

function _gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
