import { setActive } from "../_state.ts";
import { deepEqual, equal } from "node:assert/strict";
import { Backend } from "../../../src/balancing/backend.ts";
import { LeastConn } from "../../../src/balancing/strategies/leastconn.ts";

function backends(...weights: number[]): Backend[] {
  return weights.map((weight, i) =>
    new Backend({ hostname: "127.0.0.1", port: 8101 + i, weight, backup: false, maxConn: 0 })
  );
}

Deno.test("LeastConn breaks ties in turn when every backend is idle", () => {
  const pool = backends(1, 1, 1);
  const lc = new LeastConn();
  const picked = Array.from({ length: 6 }, () => pool.indexOf(lc.pick(pool)));
  deepEqual(picked, [0, 1, 2, 0, 1, 2]);
});

Deno.test("LeastConn sends new connections to the backend with the fewest open", () => {
  const pool = backends(1, 1, 1);
  setActive(pool[0]!, 5);
  setActive(pool[1]!, 2);
  setActive(pool[2]!, 3);
  equal(new LeastConn().pick(pool), pool[1]);
});

Deno.test("LeastConn evens out long-lived connections among short ones", () => {
  const pool = backends(1, 1, 1);
  const lc = new LeastConn();
  // 30 long-lived connections open one by one, each staying open; every third
  // pick also opens and closes a short one.
  for (let i = 0; i < 30; i++) {
    lc.pick(pool).picked();
    if (i % 3 === 0) lc.pick(pool); // short: picked, closed at once
  }
  deepEqual(pool.map((b) => b.active), [10, 10, 10]);
  // A backend whose long connections all end gets the next ones.
  setActive(pool[1]!, 0);
  const next = Array.from({ length: 10 }, () => {
    const b = lc.pick(pool);
    b.picked();
    return pool.indexOf(b);
  });
  deepEqual(next, Array(10).fill(1));
});

Deno.test("LeastConn is weight-aware: weight 3 holds three times the connections", () => {
  const pool = backends(3, 1);
  const lc = new LeastConn();
  for (let i = 0; i < 40; i++) lc.pick(pool).picked();
  deepEqual(pool.map((b) => b.active), [30, 10]);
});
