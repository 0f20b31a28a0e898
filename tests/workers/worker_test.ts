import assert from "node:assert/strict";
import { defaultConfig } from "../../src/config/config.ts";
import { workerConfig } from "../../src/workers/messages.ts";
import { QUIET, twoWorkers } from "./_two_workers.ts";
import { startLb } from "../../support/lb_process.ts";
import { LB_FLAGS } from "../../support/compile.ts";
import { makeCerts, opensslAvailable } from "../_tls.ts";
import type { StatsSnapshot } from "../../src/observability/metrics.ts";
import {
  adminPort,
  fetchStats,
  freePorts,
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
  const [tlsPort, plainPort] = freePorts(2) as [number, number];
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

/** Copies `from` to `to` until EOF, then half-closes `to`; errors end it quietly. */
async function copy(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  try {
    for (let n; (n = await from.read(buf)) !== null;) await writeAll(to, buf.subarray(0, n));
    await to.closeWrite();
  } catch { /* reset: the other side closes both */ }
}

Deno.test({
  name:
    "--workers 2: passive health counts every thread's successes: a backend whose every other connect fails stays up",
  ignore: !opensslAvailable(),
  async fn() {
    await using certs = await makeCerts();
    const leaf = await certs.leaf("backend", ["backend.example.com"]);
    const tls = Deno.listenTls({
      hostname: LOOPBACK,
      port: 0,
      cert: await Deno.readTextFile(leaf.cert),
      key: await Deno.readTextFile(leaf.key),
    });
    const tasks: Promise<void>[] = [];
    const echoing = (async () => {
      for await (const conn of tls) {
        tasks.push((async () => {
          try {
            await writeAll(conn, await readAll(conn));
          } catch {
            /* a failed handshake */
          } finally {
            conn.close();
          }
        })());
      }
    })();
    // In front of it, every other connection is closed before its handshake: a failed connect.
    const front = Deno.listen({ hostname: LOOPBACK, port: 0 });
    let accepted = 0;
    const forwarding = (async () => {
      for await (const conn of front) {
        if (accepted++ % 2 === 0) {
          conn.close();
          continue;
        }
        tasks.push((async () => {
          const upstream = await Deno.connect({ hostname: LOOPBACK, port: tls.addr.port });
          await Promise.all([copy(conn, upstream), copy(upstream, conn)]);
          conn.close();
          upstream.close();
        })());
      }
    })();
    try {
      await using lb = await twoWorkers(
        [`${front.addr.port},tls-name=backend.example.com`],
        "--tls-ca",
        certs.ca,
        "--health-interval",
        "30s",
        "--fall",
        "2", // one thread never sees two in a row here
        "--retries",
        "0",
        "--log",
        "off",
        "--admin",
        `${LOOPBACK}:0`,
      );
      const admin = await adminPort(lb);
      let served = 0;
      for (let i = 0; i < 60; i++) {
        const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
        try {
          await writeAll(conn, encoder.encode(`c${i}`));
          await conn.closeWrite();
          if (decoder.decode(await readAll(conn)) === `c${i}`) served++;
        } catch {
          /* a failed connect: closed */
        } finally {
          conn.close();
        }
      }
      const stats = await fetchStats(admin);
      assert.ok(stats.threads.every((t) => t.total > 0), JSON.stringify(stats.threads));
      assert.ok(served >= 25, `served ${served} of 60`);
      assert.equal(stats.frontends[0]!.backends[0]!.state, "UP", lb.stderr.join("\n"));
      assert.ok(!lb.stderr.some((line) => / is down /.test(line)), lb.stderr.join("\n"));
    } finally {
      front.close();
      tls.close();
      await Promise.all([forwarding, echoing]);
      await Promise.all(tasks);
    }
  },
});

Deno.test("--workers 2: a port another lb holds (sharing it too) is refused at start, as with one thread", async () => {
  await using echo = startEchoServer();
  await using first = await twoWorkers([`${LOOPBACK}:${echo.port}`], ...QUIET);
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const second = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...LB_FLAGS,
      main,
      "-f",
      `${LOOPBACK}:${first.port}`,
      "-p",
      `${LOOPBACK}:${echo.port}`,
      "--workers",
      "2",
      ...QUIET,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // One that started would serve (half the connections) until killed.
  const timer = setTimeout(() => second.kill("SIGKILL"), 10_000);
  const { code, stderr } = await second.output();
  clearTimeout(timer);
  const lines = decoder.decode(stderr).trim().split("\n");
  assert.equal(code, 1, lines.join("\n"));
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(
    lines[0]!,
    new RegExp(`^lb: cannot listen on ${LOOPBACK}:${first.port}: .*in use`, "i"),
  );
});
