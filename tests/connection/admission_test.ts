/**
 * The front door end to end: allow/deny lists and per-source limits, with
 * clients on different loopback addresses; refused clients never reach a
 * backend and are counted by reason.
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { startLb } from "../../support/lb_process.ts";
import {
  adminPort,
  exchangeFrom,
  LOOPBACK,
  metricValue,
  readAll,
  readExactly,
  startEchoServer,
  waitUntil,
  writeAll,
} from "../_helpers.ts";

const encoder = new TextEncoder();

async function stats(admin: number) {
  return await (await fetch(`http://${LOOPBACK}:${admin}/stats`)).json();
}

function refused(admin: number, reason: string): Promise<number> {
  return metricValue(admin, "lb_frontend_refused_total", `reason="${reason}"`);
}

/** Sends one byte from 127.0.0.1 (or ::1) and says whether it came back (false: refused). */
async function echoes(port: number, hostname = LOOPBACK): Promise<boolean> {
  const conn = await Deno.connect({ hostname, port });
  try {
    await writeAll(conn, encoder.encode("x"));
    await conn.closeWrite();
    return (await readAll(conn)).length === 1;
  } catch {
    return false; // reset by the close
  } finally {
    conn.close();
  }
}

Deno.test("--allow and --deny: deny wins, with an allow list everyone else is refused, before any dial", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([
    "-f",
    "0", // all interfaces, so that ::1 can connect too
    "-p",
    String(echo.port),
    "--allow",
    "127.0.0.0/8",
    "--deny",
    "127.0.0.3",
    "--admin",
    "127.0.0.1:0",
    "--health-interval",
    "0",
  ]);
  const admin = await adminPort(lb);
  assertEquals(await exchangeFrom("127.0.0.2", lb.port, "hi"), "hi");
  assertEquals(echo.accepted, 1);
  assertEquals(await exchangeFrom("127.0.0.3", lb.port, "hi"), "", "denied");
  ok(!await echoes(lb.port, "::1"), "::1 is not in the allow list");
  await waitUntil(async () => await refused(admin, "not-allowed") === 1, "not-allowed counted");
  assertEquals(await refused(admin, "denied"), 1);
  assertEquals(echo.accepted, 1, "refused clients never reached the backend");
});

Deno.test("--max-conns-per-source caps one client's open connections; another client is never refused", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(echo.port),
    "--max-conns-per-source",
    "3",
    "--admin",
    "127.0.0.1:0",
    "--health-interval",
    "0",
  ]);
  const admin = await adminPort(lb);
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
      held.push(conn);
      await writeAll(conn, encoder.encode("x"));
      await readExactly(conn, 1); // proxied: it holds a slot
    }
    for (let i = 0; i < 5; i++) ok(!await echoes(lb.port), `connection ${4 + i} refused`);
    assertEquals(await exchangeFrom("127.0.0.2", lb.port, "ok"), "ok", "another client");
    assertEquals(await refused(admin, "too-many-open"), 5);
    // 127.0.0.1 holds its entry; 127.0.0.2's may already be dropped (nothing open, no rate).
    ok([1, 2].includes((await stats(admin)).sources.size));
  } finally {
    for (const conn of held) conn.close();
  }
  // The slots free when the connections end.
  await waitUntil(async () => await echoes(lb.port), "a new connection once the three closed");
});

Deno.test("--conn-rate-per-source refuses a client past N new connections per window; another is let in", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(echo.port),
    "--conn-rate-per-source",
    "4/1h",
    "--admin",
    "127.0.0.1:0",
    "--health-interval",
    "0",
  ]);
  const admin = await adminPort(lb);
  for (let i = 0; i < 4; i++) ok(await echoes(lb.port), `connection ${i + 1} within the rate`);
  for (let i = 0; i < 3; i++) ok(!await echoes(lb.port), "past the rate");
  assertEquals(await exchangeFrom("127.0.0.2", lb.port, "ok"), "ok");
  assertEquals(await refused(admin, "too-fast"), 3);
  assertEquals(echo.accepted, 5);
});

Deno.test("allow and deny reload with the config file", async () => {
  await using echo = startEchoServer();
  const path = await Deno.makeTempFile({ prefix: "lb-admission-", suffix: ".json" });
  const write = (deny: string[]) =>
    Deno.writeTextFile(
      path,
      JSON.stringify({
        frontends: [{ listen: "127.0.0.1:0", backends: [{ port: echo.port }], deny }],
        health: { interval: 0 },
      }),
    );
  try {
    await write([]);
    await using lb = await startLb(["--config", path, "--admin", "127.0.0.1:0"]);
    const admin = await adminPort(lb);
    ok(await echoes(lb.port));
    await write(["127.0.0.1/32"]);
    const reload = await fetch(`http://${LOOPBACK}:${admin}/reload`, { method: "POST" });
    assertEquals(reload.status, 200, await reload.text());
    ok(!await echoes(lb.port), "denied after the reload");
    assertEquals(await refused(admin, "denied"), 1);
  } finally {
    await Deno.remove(path);
  }
});
