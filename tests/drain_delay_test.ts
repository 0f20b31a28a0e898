/**
 * `--drain-delay`, end to end through main.ts: from the first SIGTERM
 * `/ready` answers 503 while lb still accepts and serves new connections for
 * the delay (so that an orchestrator stops sending first), then lb stops
 * accepting and drains as without it.
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { startLb } from "../support/lb_process.ts";
import {
  adminPort,
  fetchStats,
  LOOPBACK,
  readAll,
  startEchoServer,
  waitUntil,
  withTimeout,
  writeAll,
} from "./_helpers.ts";

const DELAY_MS = 4000;

async function ready(admin: number): Promise<[number, string]> {
  const response = await fetch(`http://${LOOPBACK}:${admin}/ready`);
  return [response.status, await response.text()];
}

Deno.test("--drain-delay: /ready says 503 from SIGTERM on while new connections are still served, then lb drains and exits 0", async () => {
  await using backend = startEchoServer();
  await using lb = await startLb([
    "-f",
    `${LOOPBACK}:0`,
    "--admin",
    `${LOOPBACK}:0`,
    "--health-interval",
    "0",
    "--log",
    "off",
    "-p",
    String(backend.port),
    "--drain-delay",
    `${DELAY_MS}ms`,
  ]);
  const admin = await adminPort(lb);
  assertEquals(await ready(admin), [200, "ready\n"]);
  const sent = Date.now();
  lb.child.kill("SIGTERM");
  await waitUntil(async () => (await ready(admin))[0] === 503, "/ready to answer 503");
  assertEquals(await ready(admin), [503, "draining: SIGTERM received\n"]);

  // Still accepting: a connection made now is served to its end.
  using conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  await writeAll(conn, new TextEncoder().encode("after SIGTERM"));
  await conn.closeWrite();
  const echoed = await withTimeout(readAll(conn), 10_000, "the echo");
  assertEquals(new TextDecoder().decode(echoed), "after SIGTERM");
  const stats = await fetchStats(admin);
  assertEquals(stats.draining, false, "not draining yet: the listener is open");
  ok(Date.now() - sent < DELAY_MS, "the connection was made within the delay");

  const status = await withTimeout(lb.status, 20_000, "lb to exit");
  assertEquals(status.code, 0);
  ok(Date.now() - sent >= DELAY_MS, `exited ${Date.now() - sent}ms after SIGTERM`);
  const delayed = lb.stderr.findIndex((l) =>
    l.includes(`SIGTERM: /ready answers 503, still accepting for ${DELAY_MS}ms`)
  );
  const stopped = lb.stderr.findIndex((l) => /SIGTERM: stopped accepting/.test(l));
  ok(delayed >= 0 && stopped > delayed, lb.stderr.join("\n"));
});
