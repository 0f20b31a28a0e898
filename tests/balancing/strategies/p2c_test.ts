import { setActive } from "../_state.ts";
import { equal, ok as assert } from "node:assert/strict";
import { Backend } from "../../../src/balancing/backend.ts";
import { PowerOfTwo } from "../../../src/balancing/strategies/p2c.ts";
import { createStrategy, STRATEGY_NAMES } from "../../../src/balancing/strategies/mod.ts";

function backends(...weights: number[]): Backend[] {
  return weights.map((weight, i) =>
    new Backend({ hostname: "127.0.0.1", port: 8101 + i, weight, backup: false, maxConn: 0 })
  );
}

/** A small seeded generator (mulberry32) so runs repeat. */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("PowerOfTwo is registered as both random and p2c", () => {
  assert(STRATEGY_NAMES.includes("random") && STRATEGY_NAMES.includes("p2c"));
  assert(createStrategy("random") instanceof PowerOfTwo);
  assert(createStrategy("p2c") instanceof PowerOfTwo);
});

Deno.test("PowerOfTwo spreads idle picks evenly within tolerance", () => {
  const pool = backends(1, 1, 1, 1);
  const p2c = new PowerOfTwo(seeded(1));
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 8000; i++) counts[pool.indexOf(p2c.pick(pool))]!++;
  for (const c of counts) assert(c > 1700 && c < 2300, String(counts));
});

Deno.test("PowerOfTwo never picks the most loaded backend when it has a choice", () => {
  const pool = backends(1, 1, 1);
  setActive(pool[0]!, 50);
  const p2c = new PowerOfTwo(seeded(2));
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[pool.indexOf(p2c.pick(pool))]!++;
  equal(counts[0], 0);
  assert(counts[1]! > 1200 && counts[2]! > 1200, String(counts));
});

Deno.test("PowerOfTwo keeps long-lived connections balanced", () => {
  const pool = backends(1, 1, 1, 1, 1);
  const p2c = new PowerOfTwo(seeded(3));
  for (let i = 0; i < 500; i++) p2c.pick(pool).picked();
  const spread = Math.max(...pool.map((b) => b.active)) - Math.min(...pool.map((b) => b.active));
  // Pure random would spread by ~20 here; two choices keeps it to a few.
  assert(spread <= 4, pool.map((b) => b.active).join(","));
});

Deno.test("PowerOfTwo weighs load by weight", () => {
  const pool = backends(3, 1);
  const p2c = new PowerOfTwo(seeded(4));
  for (let i = 0; i < 400; i++) p2c.pick(pool).picked();
  assert(Math.abs(pool[0]!.active - 300) <= 4, pool.map((b) => b.active).join(","));
});

Deno.test("PowerOfTwo returns the only candidate", () => {
  const pool = backends(1);
  equal(new PowerOfTwo(() => 0.999).pick(pool), pool[0]);
});
