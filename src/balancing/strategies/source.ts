import type { Backend } from "../backend.ts";
import type { Strategy } from "./strategy.ts";

/**
 * Source hashing: a client address always maps to the same backend while the
 * candidates stay the same. Weighted rendezvous (highest random weight)
 * hashing: every candidate gets a score from `hash(client, backend)` scaled by
 * its weight, and the highest wins. When a backend leaves, only the clients it
 * had move (each to its runner-up); the others keep theirs.
 */
export class SourceHash implements Strategy {
  /** Hash of each backend's id, computed once. */
  #ids = new WeakMap<Backend, number>();

  pick(candidates: readonly Backend[], clientHost: string): Backend {
    const client = _fnv1a(clientHost);
    let best = candidates[0]!;
    let bestScore = -Infinity;
    for (const backend of candidates) {
      let id = this.#ids.get(backend);
      if (id === undefined) {
        id = _fnv1a(backend.id);
        this.#ids.set(backend, id);
      }
      // A uniform number in (0, 1) per (client, backend) pair, then the
      // weighted-rendezvous score -w/ln(u): P(win) is proportional to w.
      const u = (_mix(client, id) + 0.5) / 4294967296;
      const score = -backend.weight / Math.log(u);
      if (score > bestScore) {
        best = backend;
        bestScore = score;
      }
    }
    return best;
  }
}

/** 32-bit FNV-1a of a string's UTF-16 code units. */
export function _fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Mixes two 32-bit hashes into one, well spread (murmur3's finaliser, twice). */
export function _mix(a: number, b: number): number {
  return _fmix32(_fmix32(a ^ Math.imul(b, 0x9e3779b1)) + b);
}

function _fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
