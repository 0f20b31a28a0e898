/**
 * The registry, and every strategy end to end through main.ts (`--balance`).
 * @module
 */
import { deepEqual, equal, ok as assert, throws } from "node:assert/strict";
import { createStrategy, STRATEGY_NAMES } from "../../../src/balancing/strategies/mod.ts";
import { type LbProcess, startLb } from "../../../support/lb_process.ts";
import {
  adminPort,
  closeQuietly,
  LOOPBACK,
  startTcpServer,
  type TcpServer,
  waitForStats,
  waitUntil,
  withTimeout,
} from "../../_helpers.ts";

const decoder = new TextDecoder();

Deno.test("STRATEGY_NAMES lists every strategy and createStrategy makes each", () => {
  deepEqual([...STRATEGY_NAMES].sort(), ["leastconn", "p2c", "random", "roundrobin", "source"]);
  for (const name of STRATEGY_NAMES) {
    equal(typeof createStrategy(name).pick, "function");
  }
  throws(() => createStrategy("weighted"), RangeError);
});

/** A backend that sends its index on connect and keeps the connection until the client closes. */
function namedServer(index: number): TcpServer {
  return startTcpServer(async (conn) => {
    await conn.write(new TextEncoder().encode(String(index)));
    const buf = new Uint8Array(64);
    while (await conn.read(buf) !== null) { /* wait for the client to close */ }
  });
}

/** Opens a client through lb and returns it with the index of the backend that answered. */
async function open(port: number): Promise<{ conn: Deno.TcpConn; index: number }> {
  const conn = await Deno.connect({ hostname: LOOPBACK, port });
  const buf = new Uint8Array(8);
  const n = await withTimeout(conn.read(buf), 10_000, "a backend's greeting");
  if (n === null) throw new Error("lb closed the client");
  return { conn, index: Number(decoder.decode(buf.subarray(0, n))) };
}

async function withLb(
  backends: string[],
  args: string[],
  body: (port: number, servers: TcpServer[], lb: LbProcess) => Promise<void>,
): Promise<void> {
  const servers = backends.map((_, i) => namedServer(i));
  try {
    await using lb = await startLb([
      "-f",
      `${LOOPBACK}:0`,
      "--log",
      "off",
      "--health-interval",
      "0",
      ...servers.flatMap((s, i) => ["-p", `${LOOPBACK}:${s.port}${backends[i]}`]),
      ...args,
    ]);
    await body(lb.port, servers, lb);
  } finally {
    for (const server of servers) await server[Symbol.asyncDispose]();
  }
}

Deno.test("--balance roundrobin gives weights 3,1 exactly their share, smoothly", async () => {
  await withLb([",weight=3", ""], [], async (port) => {
    const seq: number[] = [];
    for (let i = 0; i < 16; i++) {
      const c = await open(port);
      seq.push(c.index);
      closeQuietly(c.conn);
    }
    deepEqual(seq, [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0]);
  });
});

Deno.test("--balance leastconn spreads long-lived connections evenly", async () => {
  const args = ["--balance", "leastconn", "--admin", `${LOOPBACK}:0`];
  await withLb(["", "", ""], args, async (port, servers, lb) => {
    const admin = await adminPort(lb);
    const clients = [];
    try {
      // One at a time, each staying open: every backend ends with 4.
      for (let i = 0; i < 12; i++) clients.push(await open(port));
      const counts = [0, 0, 0];
      for (const c of clients) counts[c.index]!++;
      deepEqual(counts, [4, 4, 4]);
      // Closing two on backend 1 sends the next two there.
      const onOne = clients.filter((c) => c.index === 1).slice(0, 2);
      for (const c of onOne) closeQuietly(c.conn);
      await waitUntil(() => servers[1]!.open === 2, "backend 1 down to 2 connections");
      // lb counts them closed once it has seen the backend's FIN too.
      await waitForStats(
        admin,
        "lb counting 2 connections on backend 1",
        (s) => s.frontends[0]!.backends[1]!.active === 2,
      );
      for (let i = 0; i < 2; i++) {
        const c = await open(port);
        clients.push(c);
        equal(c.index, 1);
      }
    } finally {
      for (const c of clients) closeQuietly(c.conn);
    }
  });
});

Deno.test("--balance p2c spreads long-lived connections within a few of even", async () => {
  await withLb(["", "", ""], ["--balance", "p2c"], async (port) => {
    const clients = [];
    try {
      for (let i = 0; i < 30; i++) clients.push(await open(port));
      const counts = [0, 0, 0];
      for (const c of clients) counts[c.index]!++;
      assert(Math.max(...counts) - Math.min(...counts) <= 3, String(counts));
    } finally {
      for (const c of clients) closeQuietly(c.conn);
    }
  });
});

Deno.test("--balance source keeps a client on one backend", async () => {
  await withLb(["", "", ""], ["--balance", "source"], async (port) => {
    const seen = new Set<number>();
    for (let i = 0; i < 10; i++) {
      const c = await open(port);
      seen.add(c.index);
      closeQuietly(c.conn);
    }
    equal(seen.size, 1);
  });
});
