import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { Backend } from "../../../src/balancing/backend.ts";
import { RoundRobin } from "../../../src/balancing/strategies/round_robin.ts";

function backends(...weights: number[]): Backend[] {
  return weights.map((weight, i) =>
    new Backend({ hostname: "127.0.0.1", port: 8101 + i, weight, backup: false, maxConn: 0 })
  );
}

function sequence(rr: RoundRobin, pool: Backend[], n: number): string {
  const names = "abcdefghij";
  let out = "";
  for (let i = 0; i < n; i++) out += names[pool.indexOf(rr.pick(pool))];
  return out;
}

Deno.test("RoundRobin rotates in pool order when weights are equal", () => {
  const pool = backends(1, 1, 1);
  equal(sequence(new RoundRobin(), pool, 9), "abcabcabc");
});

Deno.test("RoundRobin spreads weights 5,1,1 smoothly as nginx does (no bursts)", () => {
  const pool = backends(5, 1, 1);
  equal(sequence(new RoundRobin(), pool, 14), "aabacaa" + "aabacaa");
});

Deno.test("RoundRobin gives each backend its weight's share over a cycle", () => {
  const pool = backends(3, 2, 1);
  const rr = new RoundRobin();
  const counts = [0, 0, 0];
  for (let i = 0; i < 600; i++) counts[pool.indexOf(rr.pick(pool))]!++;
  deepEqual(counts, [300, 200, 100]);
  // Never more than ceil(weight share) picks of "a" in a row.
  const seq = sequence(rr, pool, 60);
  equal(/aaa/.test(seq), false, seq);
});

Deno.test("RoundRobin skips a backend missing from the candidates and resumes it", () => {
  const pool = backends(1, 1, 1);
  const rr = new RoundRobin();
  const without = [pool[0]!, pool[2]!];
  const picked = Array.from({ length: 4 }, () => pool.indexOf(rr.pick(without)));
  deepEqual(picked, [0, 2, 0, 2]);
  const counts = [0, 0, 0];
  for (let i = 0; i < 30; i++) counts[pool.indexOf(rr.pick(pool))]!++;
  assert(counts.every((c) => c >= 9 && c <= 11), String(counts));
});
