/**
 * `--workers 2` is one load balancer, seen from outside over real sockets:
 * limits hold exactly across threads, counts are global, the admin shows
 * the sum, and reloads and drains reach every thread.
 * @module
 */
import assert from "node:assert/strict";
import { type LbProcess, startLb } from "../../support/lb_process.ts";
import type { StatsSnapshot } from "../../src/observability/metrics.ts";
import { QUIET, twoWorkers } from "./_two_workers.ts";
import {
  adminPort,
  closeQuietly,
  fetchStats,
  freePorts,
  LOOPBACK,
  metricValue,
  readAll,
  readExactly,
  startEchoServer,
  waitForStats,
  waitUntil,
  writeAll,
} from "../_helpers.ts";

const encoder = new TextEncoder();

/** Opens `n` clients at once, each sending one byte: they stay open until closed. */
function openClients(port: number, n: number): Promise<Deno.TcpConn[]> {
  return Promise.all(Array.from({ length: n }, async () => {
    const conn = await Deno.connect({ hostname: LOOPBACK, port });
    await writeAll(conn, encoder.encode("x"));
    return conn;
  }));
}

/** One short exchange through lb: sends `text`, reads the echo to its end. */
async function exchange(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: LOOPBACK, port });
  try {
    await writeAll(conn, encoder.encode(text));
    await conn.closeWrite();
    return new TextDecoder().decode(await readAll(conn));
  } finally {
    conn.close();
  }
}

const ADMIN = ["--admin", `${LOOPBACK}:0`];

/** After the stop signal: one more byte each way through `conn`, then its end, both ways. */
async function finishAfterStop(conn: Deno.TcpConn): Promise<void> {
  await writeAll(conn, encoder.encode("y"));
  assert.equal(new TextDecoder().decode(await readExactly(conn, 1)), "y");
  await conn.closeWrite();
  await readAll(conn);
  conn.close();
}

/** lb exited 0, its worker thread having stopped too. */
async function assertStoppedCleanly(lb: LbProcess): Promise<void> {
  assert.equal((await lb.status).code, 0, lb.stderr.join("\n"));
  assert.ok(lb.stderr.some((line) => /worker1 lb: stopped/.test(line)), lb.stderr.join("\n"));
}

Deno.test("--workers 2 --max-conns 10 holds exactly 10 open across both threads", async () => {
  await using echo = startEchoServer();
  await using lb = await twoWorkers(
    [`${LOOPBACK}:${echo.port}`],
    ...QUIET,
    "--max-conns",
    "10",
    ...ADMIN,
  );
  const admin = await adminPort(lb);
  const clients = await openClients(lb.port, 30);
  // A client is served once its byte comes back through a backend.
  const served = new Set<Deno.TcpConn>();
  for (const client of clients) {
    readExactly(client, 1).then(() => served.add(client), () => {});
  }
  try {
    await waitUntil(() => echo.accepted === 10 && served.size === 10, "10 connections through");
    // Twenty more clients are connected and waiting: lb never lets an 11th through.
    for (let i = 0; i < 5; i++) {
      assert.equal(await metricValue(admin, "lb_frontend_connections_active"), 10);
      assert.equal(echo.accepted, 10);
    }
    const first = [...served];
    for (const client of first) client.close();
    await waitUntil(() => echo.accepted === 20 && served.size === 20, "10 more once 10 closed");
    for (let i = 0; i < 5; i++) {
      assert.equal(await metricValue(admin, "lb_frontend_connections_active"), 10);
      assert.equal(echo.accepted, 20);
    }
  } finally {
    for (const client of clients) closeQuietly(client);
  }
});

Deno.test("--workers 2: a backend's maxconn=3 holds across threads, the rest go elsewhere", async () => {
  await using small = startEchoServer();
  await using big = startEchoServer();
  await using lb = await twoWorkers(
    [`${LOOPBACK}:${small.port},maxconn=3`, `${LOOPBACK}:${big.port}`],
    ...QUIET,
  );
  const clients = await openClients(lb.port, 20);
  try {
    await waitUntil(() => small.accepted + big.accepted === 20, "20 connections through");
    assert.equal(small.accepted, 3);
    assert.equal(big.accepted, 17);
  } finally {
    for (const client of clients) closeQuietly(client);
  }
});

Deno.test("--workers 2 leastconn compares global counts; drain and enable reach every thread", async () => {
  await using a = startEchoServer();
  await using b = startEchoServer();
  await using lb = await twoWorkers(
    [`${LOOPBACK}:${a.port}`, `${LOOPBACK}:${b.port}`],
    ...QUIET,
    "--balance",
    "leastconn",
    ...ADMIN,
  );
  const admin = await adminPort(lb);
  const idB = `${LOOPBACK}:${b.port}`;
  const post = async (path: string) => {
    const response = await fetch(`http://${LOOPBACK}:${admin}${path}`, { method: "POST" });
    await response.body?.cancel();
    assert.equal(response.status, 200, path);
  };
  await post(`/backends/${idB}/drain`);
  // Drained in every thread once the answer came: 10 clients, all to A.
  const first = await openClients(lb.port, 10);
  const second: Deno.TcpConn[] = [];
  try {
    await waitUntil(() => a.accepted === 10, "10 connections to A");
    assert.equal(b.accepted, 0);
    await post(`/backends/${idB}/enable`);
    // B has 0 open against A's 10, in every thread's view: the next 10 all go to B.
    for (let i = 0; i < 10; i++) {
      const [client] = await openClients(lb.port, 1);
      second.push(client!);
      await waitUntil(() => a.accepted + b.accepted === 11 + i, "the connection through");
    }
    assert.equal(b.accepted, 10);
    assert.equal(a.accepted, 10);
  } finally {
    for (const client of [...first, ...second]) closeQuietly(client);
  }
});

Deno.test("--workers 2: /metrics and /stats total the requests of every thread", async () => {
  await using echo = startEchoServer();
  await using lb = await twoWorkers([`${LOOPBACK}:${echo.port}`], ...QUIET, ...ADMIN);
  const admin = await adminPort(lb);
  const replies = await Promise.all(
    Array.from({ length: 50 }, (_, i) => exchange(lb.port, `req ${i}`)),
  );
  assert.deepEqual(replies, Array.from({ length: 50 }, (_, i) => `req ${i}`));
  const stats = await waitForStats(
    admin,
    "every connection ended",
    (s) => s.frontends[0]!.ended.eof + s.frontends[0]!.ended.reset === 50,
  );
  assert.equal(stats.frontends[0]!.total, 50);
  assert.equal(stats.frontends[0]!.backends[0]!.total, 50);
  assert.equal(stats.frontends[0]!.bytesIn, replies.join("").length);
  // Both threads took part: the per-thread breakdown adds up to the same 50.
  assert.deepEqual(stats.threads.map((t) => t.thread), [0, 1]);
  assert.equal(stats.threads.reduce((n, t) => n + t.total, 0), 50);
  assert.ok(stats.threads.every((t) => t.total > 0), JSON.stringify(stats.threads));
  assert.equal(await metricValue(admin, "lb_frontend_connections_total"), 50);
  const perThread = await Promise.all(
    [0, 1].map((t) => metricValue(admin, "lb_thread_connections_total", `{thread="${t}"}`)),
  );
  assert.equal(perThread[0]! + perThread[1]!, 50);
  assert.equal(await metricValue(admin, "lb_backend_connections_total"), 50);
  // A counter never goes backwards between scrapes.
  const again = await fetchStats(admin);
  assert.ok(again.frontends[0]!.total >= 50);
});

Deno.test("--workers 2: SIGHUP reloads every thread; SIGTERM lets open connections finish in each", async () => {
  await using a = startEchoServer();
  await using b = startEchoServer();
  const dir = await Deno.makeTempDir();
  const file = `${dir}/lb.json`;
  const write = (port: number) =>
    Deno.writeTextFile(
      file,
      JSON.stringify({
        workers: 2,
        health: { interval: 0 },
        log: "off",
        frontends: [{ name: "web", listen: `${LOOPBACK}:0`, backends: [`${LOOPBACK}:${port}`] }],
      }),
    );
  await write(a.port);
  await using lb = await startLb(["--config", file, ...ADMIN]);
  const admin = await adminPort(lb);
  try {
    await write(b.port);
    lb.child.kill("SIGHUP");
    await waitForStats(admin, "the reload", (s) => s.reloads.applied === 1);
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => exchange(lb.port, `after ${i}`)),
    );
    assert.equal(replies.length, 20);
    assert.equal(a.accepted, 0, "no thread kept the old backend");
    assert.equal(b.accepted, 20);
    // Open connections in flight (spread over both threads) finish after SIGTERM.
    const open = await openClients(lb.port, 8);
    await waitUntil(() => b.accepted === 28, "8 open connections");
    for (const conn of open) await readExactly(conn, 1);
    lb.child.kill("SIGTERM");
    await lb.waitFor(/stopped accepting/);
    for (const conn of open) await finishAfterStop(conn);
    await assertStoppedCleanly(lb);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Thread `thread`'s open connections in `/stats`. */
function threadActive(stats: { threads: { thread: number; active: number }[] }, thread: number) {
  return stats.threads.find((t) => t.thread === thread)?.active ?? 0;
}

Deno.test("--workers 2: SIGTERM gives a worker's connections the whole --drain-timeout", async () => {
  await using echo = startEchoServer();
  // The longest timeout there is: the main thread's wait for its workers (delay, timeout and a
  // margin) is then past what a timer holds, and must not fire at once.
  await using lb = await twoWorkers(
    [`${LOOPBACK}:${echo.port}`],
    ...QUIET,
    ...ADMIN,
    "--drain-timeout",
    "2147483s",
  );
  const admin = await adminPort(lb);
  // A client the worker thread serves, while the main thread serves none.
  let held: Deno.TcpConn | undefined;
  for (let tries = 0; !held && tries < 50; tries++) {
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    await writeAll(conn, encoder.encode("x"));
    await readExactly(conn, 1);
    if (threadActive(await fetchStats(admin), 0) === 0) held = conn;
    else {
      conn.close();
      await waitForStats(admin, "the main thread's client gone", (s) => threadActive(s, 0) === 0);
    }
  }
  assert.ok(held, "no client landed on the worker thread in 50 tries");
  lb.child.kill("SIGTERM");
  // The main thread, with nothing to drain, used to end its workers 5 s later.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    lb.status.then(() => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 6000)),
  ]);
  clearTimeout(timer);
  assert.equal(exited, false, `lb exited while a worker drained:\n${lb.stderr.join("\n")}`);
  await finishAfterStop(held);
  await assertStoppedCleanly(lb);
});

Deno.test("--workers 2: a reload that removes a frontend takes nothing off each thread's accepted connections", async () => {
  await using echo = startEchoServer();
  const dir = await Deno.makeTempDir();
  const file = `${dir}/lb.json`;
  const write = (names: string[]) =>
    Deno.writeTextFile(
      file,
      JSON.stringify({
        workers: 2,
        health: { interval: 0 },
        log: "off",
        frontends: names.map((name, i) => ({
          name,
          listen: `${LOOPBACK}:${ports[i]}`,
          backends: [`${LOOPBACK}:${echo.port}`],
        })),
      }),
    );
  const ports = freePorts(2);
  await write(["web", "api"]);
  try {
    await using lb = await startLb(["--config", file, ...ADMIN], { frontends: 2 });
    const admin = await adminPort(lb);
    for (const port of ports) {
      await Promise.all(Array.from({ length: 12 }, (_, i) => exchange(port, `x${i}`)));
    }
    const threads = (s: StatsSnapshot) => s.threads.map((t) => t.total);
    const before = threads(
      await waitForStats(
        admin,
        "24 accepted",
        (s) => s.threads.reduce((n, t) => n + t.total, 0) === 24,
      ),
    );
    await write(["web"]);
    lb.child.kill("SIGHUP");
    const after = threads(await waitForStats(admin, "the reload", (s) => s.reloads.applied === 1));
    assert.deepEqual(after, before, "per-thread accepted counts after the reload");
    const metrics = await Promise.all(
      [0, 1].map((t) => metricValue(admin, "lb_thread_connections_total", `{thread="${t}"}`)),
    );
    assert.deepEqual(metrics, before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
