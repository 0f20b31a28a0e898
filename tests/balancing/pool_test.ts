import { setActive, setHealthy } from "./_state.ts";
import { deepEqual, equal } from "node:assert/strict";
import type { BackendConfig } from "../../src/config/config.ts";
import { Pool } from "../../src/balancing/pool.ts";

function spec(port: number, options: Partial<BackendConfig> = {}): BackendConfig {
  return { hostname: "127.0.0.1", port, weight: 1, backup: false, maxConn: 0, ...options };
}

function ports(pool: Pool, n: number): (number | undefined)[] {
  return Array.from({ length: n }, () => pool.pick("10.0.0.1")?.addr.port);
}

Deno.test("Pool.pick uses backups only when every normal backend is unavailable", () => {
  const pool = new Pool("roundrobin", [
    spec(8101),
    spec(8102),
    spec(8201, { backup: true }),
    spec(8202, { backup: true }),
  ]);
  const [a, b] = pool.backends;
  deepEqual(ports(pool, 4), [8101, 8102, 8101, 8102]);
  setHealthy(a!, false);
  deepEqual(ports(pool, 3), [8102, 8102, 8102]);
  b!.drain();
  const backups = ports(pool, 4); // in turn, from wherever the turn stands
  deepEqual([...backups].sort(), [8201, 8201, 8202, 8202]);
  deepEqual(backups.slice(2), backups.slice(0, 2));
  setHealthy(a!, true);
  deepEqual(ports(pool, 2), [8101, 8101]);
});

Deno.test("Pool.pick skips a backend at its maxconn and takes it again below", () => {
  const pool = new Pool("roundrobin", [spec(8101, { maxConn: 2 }), spec(8102)]);
  const [a] = pool.backends;
  setActive(a!, 2);
  deepEqual(ports(pool, 4), [8102, 8102, 8102, 8102]);
  setActive(a!, 1);
  equal(ports(pool, 4).includes(8101), true);
});

Deno.test("Pool.pick goes to a backup when every normal backend is full", () => {
  const pool = new Pool("leastconn", [spec(8101, { maxConn: 1 }), spec(8201, { backup: true })]);
  setActive(pool.backends[0]!, 1);
  deepEqual(ports(pool, 2), [8201, 8201]);
});

Deno.test("Pool.pick skips backends already tried, then the backups, then gives up", () => {
  const pool = new Pool("roundrobin", [spec(8101), spec(8102), spec(8201, { backup: true })]);
  const tried = new Set(pool.backends.slice(0, 1));
  equal(pool.pick("10.0.0.1", tried)?.addr.port, 8102);
  tried.add(pool.backends[1]!);
  equal(pool.pick("10.0.0.1", tried)?.addr.port, 8201);
  tried.add(pool.backends[2]!);
  equal(pool.pick("10.0.0.1", tried), undefined);
});

Deno.test("Pool.pick returns undefined when every backend is down", () => {
  const pool = new Pool("source", [spec(8101), spec(8201, { backup: true })]);
  for (const b of pool.backends) setHealthy(b, false);
  equal(pool.pick("10.0.0.1"), undefined);
  setHealthy(pool.backends[1]!, true);
  equal(pool.pick("10.0.0.1")?.addr.port, 8201);
});
