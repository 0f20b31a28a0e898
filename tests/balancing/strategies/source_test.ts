import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { Backend } from "../../../src/balancing/backend.ts";
import { SourceHash } from "../../../src/balancing/strategies/source.ts";

function backends(...weights: number[]): Backend[] {
  return weights.map((weight, i) =>
    new Backend({ hostname: "127.0.0.1", port: 8101 + i, weight, backup: false, maxConn: 0 })
  );
}

const CLIENTS = Array.from(
  { length: 6000 },
  (_, i) =>
    i % 5 === 0
      ? `2001:db8::${i.toString(16)}`
      : `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
);

Deno.test("SourceHash sends a client to the same backend every time", () => {
  const pool = backends(1, 1, 1);
  const a = new SourceHash();
  const b = new SourceHash();
  for (const client of CLIENTS.slice(0, 200)) {
    const first = a.pick(pool, client);
    for (let i = 0; i < 3; i++) equal(a.pick(pool, client), first);
    // Another balancer (or a restart) maps it the same way.
    equal(b.pick(pool, client), first);
  }
});

Deno.test("SourceHash spreads clients evenly within tolerance", () => {
  const pool = backends(1, 1, 1, 1);
  const sh = new SourceHash();
  const counts = [0, 0, 0, 0];
  for (const client of CLIENTS) counts[pool.indexOf(sh.pick(pool, client))]!++;
  for (const c of counts) assert(c > 1300 && c < 1700, String(counts));
});

Deno.test("SourceHash gives clients in proportion to weight", () => {
  const pool = backends(3, 1);
  const sh = new SourceHash();
  let heavy = 0;
  for (const client of CLIENTS) if (sh.pick(pool, client) === pool[0]) heavy++;
  const share = heavy / CLIENTS.length;
  assert(share > 0.71 && share < 0.79, String(share));
});

Deno.test("SourceHash moves only the removed backend's clients", () => {
  const pool = backends(1, 1, 1, 1, 1);
  const sh = new SourceHash();
  const before = CLIENTS.map((c) => sh.pick(pool, c));
  const gone = pool[2]!;
  const rest = pool.filter((b) => b !== gone);
  let moved = 0;
  CLIENTS.forEach((client, i) => {
    const after = sh.pick(rest, client);
    if (before[i] === gone) {
      moved++;
      assert(after !== gone);
    } else {
      equal(after, before[i], `client ${client} moved though its backend stayed`);
    }
  });
  // About a fifth of the clients were on the removed backend.
  assert(moved > 1000 && moved < 1400, String(moved));
  // Its clients spread over the others rather than piling onto one.
  const counts = rest.map((b) =>
    CLIENTS.filter((c, i) => before[i] === gone && sh.pick(rest, c) === b).length
  );
  for (const c of counts) assert(c > moved / 4 * 0.7, String(counts));
});

Deno.test("SourceHash gives the clients back when the backend returns", () => {
  const pool = backends(1, 1, 1);
  const sh = new SourceHash();
  const before = CLIENTS.slice(0, 500).map((c) => sh.pick(pool, c));
  sh.pick([pool[0]!, pool[1]!], "10.0.0.1");
  deepEqual(CLIENTS.slice(0, 500).map((c) => sh.pick(pool, c)), before);
});
