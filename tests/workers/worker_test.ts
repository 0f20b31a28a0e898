import assert from "node:assert/strict";
import { defaultConfig } from "../../src/config/config.ts";
import { workerConfig } from "../../src/workers/messages.ts";
import { QUIET, twoWorkers } from "./_two_workers.ts";
import { startLb } from "../../support/lb_process.ts";
import type { StatsSnapshot } from "../../src/observability/metrics.ts";
import {
  adminPort,
  fetchStats,
  freePort,
  LOOPBACK,
  readAll,
  readExactly,
  startEchoServer,
  waitForStats,
  waitUntil,
  writeAll,
} from "../_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function configWith(workers: number, admin: boolean) {
  const config = defaultConfig();
  config.workers = workers;
  if (admin) config.admin = { hostname: LOOPBACK, port: 0 };
  config.frontends = [
    { name: "a", listen: { hostname: LOOPBACK, port: 0 }, balance: "roundrobin", backends: [] },
    { name: "b", listen: { hostname: LOOPBACK, port: 9000 }, balance: "roundrobin", backends: [] },
  ];
  return config;
}

Deno.test("workerConfig puts port-0 frontends on the main thread's ports, by name, on a copy", () => {
  const config = configWith(2, false);
  const copy = workerConfig(config, new Map([["a", 4321], ["b", 1]]));
  assert.equal(copy.frontends[0]!.listen.port, 4321);
  assert.equal(copy.frontends[1]!.listen.port, 9000); // an explicit port is kept
  assert.equal(config.frontends[0]!.listen.port, 0); // the original is untouched
});

Deno.test("--workers 2 proxies every connection with two accept loops and stops cleanly on SIGTERM", async () => {
  await using backend = startEchoServer();
  await using lb = await twoWorkers([`${LOOPBACK}:${backend.port}`], ...QUIET);
  // Both accept loops listen now: startLb returned on a `listening on` line, and
  // worker1 is ready before its own line or the main thread's (Workers.start waits).
  const replies = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    try {
      await writeAll(conn, encoder.encode(`hello ${i}`));
      await conn.closeWrite();
      return decoder.decode(await readAll(conn));
    } finally {
      conn.close();
    }
  }));
  assert.deepEqual(replies, Array.from({ length: 40 }, (_, i) => `hello ${i}`));
  const status = await lb.stop("SIGTERM");
  assert.equal(status.code, 0);
  assert.ok(lb.stderr.some((line) => /worker1 lb: stopped/.test(line)), lb.stderr.join("\n"));
});

Deno.test("--workers 2 writes one access log: whole JSON lines from every loop, one per connection", async () => {
  await using backend = startEchoServer();
  await using lb = await twoWorkers(
    [`${LOOPBACK}:${backend.port}`],
    "--health-interval",
    "0",
    "--log",
    "json",
  );
  const count = 200;
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    try {
      await writeAll(conn, encoder.encode(`hello ${i}`));
      await conn.closeWrite();
      await readAll(conn);
    } finally {
      conn.close();
    }
  }));
  assert.equal((await lb.stop("SIGTERM")).code, 0);
  const entries = lb.stdout.filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
  assert.equal(entries.length, count, "one whole line per connection, none split or lost");
  assert.ok(entries.every((e) => e.end === "eof" && e.bytesIn === e.bytesOut));
});

Deno.test("--workers 2 checks health once: a killed backend is logged down once and avoided by every loop", async () => {
  await using a = startEchoServer();
  const b = startEchoServer();
  await using lb = await twoWorkers(
    [`${LOOPBACK}:${a.port}`, `${LOOPBACK}:${b.port}`],
    "--health-interval",
    "100ms",
    "--fall",
    "1",
    "--retries",
    "0", // a loop that still sent clients to the dead backend would fail them
    "--log",
    "off",
  );
  await b[Symbol.asyncDispose]();
  const echo = async (i: number) => {
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    try {
      await writeAll(conn, encoder.encode(`x${i}`));
      await conn.closeWrite();
      return decoder.decode(await readAll(conn)) === `x${i}`;
    } catch {
      return false;
    } finally {
      conn.close();
    }
  };
  // The state, seen through every loop: 40 connections in a row, all served.
  await waitUntil(async () => {
    const served = await Promise.all(Array.from({ length: 40 }, (_, i) => echo(i)));
    return served.every((ok) => ok);
  }, "every loop to avoid the dead backend");
  assert.equal((await lb.stop("SIGTERM")).code, 0);
  const downs = lb.stderr.filter((line) => / health: backend .* is down/.test(line));
  assert.equal(downs.length, 1, `logged once, by the main thread:\n${downs.join("\n")}`);
  assert.ok(!/worker1/.test(downs[0]!), downs[0]);
});

Deno.test("--workers 2: health is per frontend: a backend down over TLS in one stays up in the clear in another", async () => {
  await using echo = startEchoServer();
  const [tlsPort, plainPort] = [freePort(), freePort()];
  const dir = await Deno.makeTempDir();
  const file = `${dir}/lb.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      workers: 2,
      log: "off",
      retries: 0,
      health: { interval: "60s", fall: 1, rise: 1 },
      frontends: [
        // The same address: reached over TLS (the echo server speaks none: each handshake fails) ...
        {
          name: "tls",
          listen: `${LOOPBACK}:${tlsPort}`,
          backends: [`${LOOPBACK}:${echo.port},tls`],
        },
        // ... and in the clear, which works.
        {
          name: "plain",
          listen: `${LOOPBACK}:${plainPort}`,
          backends: [`${LOOPBACK}:${echo.port}`],
        },
      ],
    }),
  );
  try {
    await using lb = await startLb(["--config", file, "--admin", `${LOOPBACK}:0`], {
      frontends: 2,
    });
    const admin = await adminPort(lb);
    const state = (stats: StatsSnapshot, frontend: string) =>
      stats.frontends.find((f) => f.name === frontend)!.backends[0]!.state;
    // Clients of "tls" until its backend is down (a failed handshake in any thread counts).
    for (let tries = 0; tries < 20; tries++) {
      const conn = await Deno.connect({ hostname: LOOPBACK, port: tlsPort });
      await readAll(conn).catch(() => {}); // closed: the handshake failed
      conn.close();
      if (state(await fetchStats(admin), "tls") === "DOWN") break;
    }
    await waitForStats(admin, "the TLS frontend's backend down", (s) => state(s, "tls") === "DOWN");
    assert.equal(state(await fetchStats(admin), "plain"), "UP");
    // Every thread still serves "plain": with --retries 0 a thread that had marked it down would fail some.
    const served = await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const conn = await Deno.connect({ hostname: LOOPBACK, port: plainPort });
      try {
        await writeAll(conn, encoder.encode(`p${i}`));
        await conn.closeWrite();
        return decoder.decode(await readAll(conn)) === `p${i}`;
      } finally {
        conn.close();
      }
    }));
    assert.equal(served.filter(Boolean).length, 30, lb.stderr.join("\n"));
    const threads = (await fetchStats(admin)).threads;
    assert.ok(threads.every((t) => t.total > 0), `both threads served: ${JSON.stringify(threads)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--workers 2: a second SIGTERM writes one `killed` line for each connection open in any thread", async () => {
  await using echo = startEchoServer();
  await using lb = await twoWorkers(
    [`${LOOPBACK}:${echo.port}`],
    "--health-interval",
    "0",
    "--log",
    "json",
    "--admin",
    `${LOOPBACK}:0`,
    "--drain-timeout",
    "30s",
  );
  const admin = await adminPort(lb);
  const open = await Promise.all(Array.from({ length: 20 }, async () => {
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    await writeAll(conn, encoder.encode("x"));
    await readExactly(conn, 1);
    return conn;
  }));
  try {
    const stats = await fetchStats(admin);
    assert.ok(stats.threads.every((t) => t.active > 0), JSON.stringify(stats.threads));
    lb.child.kill("SIGTERM");
    await waitUntil(async () => {
      const response = await fetch(`http://${LOOPBACK}:${admin}/ready`);
      await response.body?.cancel();
      return response.status === 503; // draining: the second signal now exits
    }, "/ready answering 503");
    lb.child.kill("SIGTERM");
    assert.equal((await lb.status).code, 1);
    const entries = lb.stdout.filter((line) => line.trim() !== "").map((line) => JSON.parse(line));
    assert.equal(entries.filter((e) => e.end === "killed").length, 20, lb.stdout.join("\n"));
  } finally {
    for (const conn of open) conn.close();
  }
});
