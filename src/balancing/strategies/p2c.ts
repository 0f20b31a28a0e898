import type { Backend } from "../backend.ts";
import type { Strategy } from "./strategy.ts";

/**
 * Random with the power of two choices: draws two different candidates at
 * random and takes the one with the lower `active / weight`. Nearly as even
 * as least connections, without every balancer herding onto the same idle
 * backend, and it keeps away from a loaded one.
 */
export class PowerOfTwo implements Strategy {
  #random: () => number;

  /** @param random Source of numbers in [0, 1); injectable for tests. @default Math.random */
  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(candidates: readonly Backend[]): Backend {
    const n = candidates.length;
    if (n === 1) return candidates[0]!;
    const i = Math.floor(this.#random() * n) % n;
    // A second index among the other n-1, so the two draws always differ.
    const j = (i + 1 + (Math.floor(this.#random() * (n - 1)) % (n - 1))) % n;
    const a = candidates[i]!;
    const b = candidates[j]!;
    if (a.active * b.weight === b.active * a.weight) return this.#random() < 0.5 ? a : b;
    return a.active * b.weight < b.active * a.weight ? a : b;
  }
}
