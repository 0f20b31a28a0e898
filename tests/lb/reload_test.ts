/**
 * Hot reload: in process (Lb.reload, planPool) and end to end through
 * main.ts with a temp config file and SIGHUP.
 * @module
 */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import type { Config } from "../../src/config/config.ts";
import { parseConfigText } from "../../src/config/file.ts";
import { parseFlags } from "../../src/config/flags.ts";
import { Lb, ReloadStats } from "../../src/lb/lb.ts";
import { Logger } from "../../src/observability/log.ts";
import { Metrics, type StatsSnapshot } from "../../src/observability/metrics.ts";
import { planPool, reload, reloadFromFlags } from "../../src/lb/reload.ts";
import { Pool } from "../../src/balancing/pool.ts";
import { type LbProcess, startLb } from "../../support/lb_process.ts";
import {
  adminPort,
  closeQuietly,
  fetchStats,
  freePort,
  LOOPBACK,
  readAll,
  startTcpServer,
  type TcpServer,
  waitForStats,
  waitUntil,
  withTimeout,
  writeAll,
} from "../_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A backend that answers every chunk it reads with its name. */
function namedBackend(name: string): TcpServer {
  return startTcpServer(async (conn) => {
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      await writeAll(conn, encoder.encode(name));
    }
    await conn.closeWrite();
  });
}

/** One short connection: sends a byte, half-closes, returns what came back. */
async function request(port: number): Promise<string> {
  using conn = await Deno.connect({ hostname: LOOPBACK, port });
  await writeAll(conn, encoder.encode("?"));
  await conn.closeWrite();
  return decoder.decode(await readAll(conn));
}

/** A connection kept open: each `ping` sends a byte and reads the answer. */
async function longLived(port: number) {
  const conn = await Deno.connect({ hostname: LOOPBACK, port });
  const buf = new Uint8Array(64);
  return {
    async ping(): Promise<string> {
      await writeAll(conn, encoder.encode("."));
      const n = await withTimeout(conn.read(buf), 10_000, "long-lived answer");
      if (n === null) throw new Error("long-lived connection closed");
      return decoder.decode(buf.subarray(0, n));
    },
    [Symbol.dispose]: () => closeQuietly(conn),
  };
}

/** A config file in a temp directory; dispose to remove it. */
async function tempConfig(config: unknown) {
  const path = await Deno.makeTempFile({ prefix: "lb-reload-", suffix: ".json" });
  const file = {
    path,
    write: (value: unknown) =>
      Deno.writeTextFile(path, typeof value === "string" ? value : JSON.stringify(value, null, 2)),
    async [Symbol.asyncDispose]() {
      await Deno.remove(path).catch(() => {});
    },
  };
  await file.write(config);
  return file;
}

function frontend(name: string, listen: string, ...ports: number[]) {
  return { name, listen, backends: ports.map((port) => ({ port })) };
}

/** An lb started with `args` and `--admin` on a free port, with that port. */
async function startWithAdmin(args: string[]): Promise<LbProcess & { admin: number }> {
  const lb = await startLb([...args, "--admin", `${LOOPBACK}:0`]);
  return Object.assign(lb, { admin: await adminPort(lb) });
}

/**
 * Sends SIGHUP and waits until `/stats` counts the n-th reload; returns its
 * outcome (`ok`, and the message the `reload:` log line carries too).
 */
async function hup(
  lb: LbProcess & { admin: number },
  n: number,
): Promise<NonNullable<StatsSnapshot["reloads"]["last"]>> {
  lb.child.kill("SIGHUP");
  const stats = await waitForStats(
    lb.admin,
    `reload #${n}`,
    ({ reloads }) => reloads.applied + reloads.rejected >= n,
    15_000,
  ).catch((error) => {
    throw new Error(`${error.message}\n${lb.stderr.join("\n")}`);
  });
  return stats.reloads.last!;
}

function reloadLines(lb: LbProcess): string[] {
  return lb.stderr.filter((line) => / reload: /.test(line));
}

/** Runs `request` on `port()` from `workers` loops until stopped or bounded out. */
function clientLoop(port: () => number, workers = 3, max = 3000, maxMs = 60_000) {
  const results: { name: string; afterMark: boolean }[] = [];
  const failures: string[] = [];
  let stopped = false;
  let mark = false;
  const deadline = Date.now() + maxMs;
  const loops = Array.from({ length: workers }, async () => {
    while (!stopped && results.length + failures.length < max && Date.now() < deadline) {
      const afterMark = mark;
      try {
        const name = await request(port());
        if (name === "") failures.push("empty answer");
        else results.push({ name: name[0]!, afterMark });
      } catch (error) {
        failures.push(String(error));
      }
    }
  });
  return {
    results,
    failures,
    /** Requests started from now on are flagged `afterMark`. */
    mark: () => void (mark = true),
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

const BASE = { health: { interval: 0 }, log: "off" };

/** The usual starting config: frontend `web` on a free port, sending to `backendPort`. */
function webConfig(backendPort: number) {
  return tempConfig({ ...BASE, frontends: [frontend("web", `${LOOPBACK}:0`, backendPort)] });
}

Deno.test("reload under a continuous client loop: zero failed connections, old connection keeps flowing", async () => {
  await using a = namedBackend("A");
  await using b = namedBackend("B");
  await using file = await webConfig(a.port);
  await using lb = await startWithAdmin(["--config", file.path]);
  using old = await longLived(lb.port);
  assertEquals(await old.ping(), "A");

  const loop = clientLoop(() => lb.port);
  try {
    await waitUntil(() => loop.results.length >= 20, "traffic before the reload");
    // Swap A for B: a backend removed and one added.
    await file.write({ ...BASE, frontends: [frontend("web", `${LOOPBACK}:0`, b.port)] });
    const first = await hup(lb, 1);
    ok(
      first.ok && /^applied .*web \+127\.0\.0\.1:\d+, web -127\.0\.0\.1:\d+/.test(first.message),
      first.message,
    );
    loop.mark();
    await waitUntil(
      () => loop.results.filter((r) => r.afterMark).length >= 20,
      "traffic after the reload",
    );
    // Back to A and B, B weighted: another reload during the loop.
    await file.write({
      ...BASE,
      frontends: [{
        name: "web",
        listen: `${LOOPBACK}:0`,
        backends: [{ port: a.port }, { port: b.port, weight: 3 }],
      }],
    });
    const second = await hup(lb, 2);
    ok(second.ok && /weight 1->3/.test(second.message), second.message);
    const atSecond = loop.results.length;
    await waitUntil(() => loop.results.length >= atSecond + 20, "traffic after the second reload");
  } finally {
    await loop.stop();
  }
  assertEquals(loop.failures, [], `failed connections: ${loop.failures.slice(0, 3)}`);
  ok(loop.results.length >= 40, `only ${loop.results.length} requests`);
  ok(loop.results.some((r) => !r.afterMark && r.name === "A"));
  // After the first reload was applied, no new connection went to A until it was added back.
  const afterFirst = loop.results.filter((r) => r.afterMark);
  ok(afterFirst.slice(0, 20).every((r) => r.name === "B"), JSON.stringify(afterFirst.slice(0, 20)));
  // The long-lived connection to the removed backend still flows, to the same backend.
  assertEquals(await old.ping(), "A");
  assertEquals(await old.ping(), "A");
});

Deno.test("reload that is invalid keeps the old config and logs one line", async () => {
  await using a = namedBackend("A");
  await using file = await webConfig(a.port);
  await using lb = await startWithAdmin(["--config", file.path]);

  await file.write(`{ "frontends": [ { "name": "web", "listen": "${LOOPBACK}:0", `);
  const first = await hup(lb, 1);
  ok(
    !first.ok && /^rejected, old config kept: .*not valid JSON/.test(first.message),
    first.message,
  );

  await file.write({
    ...BASE,
    frontends: [{ name: "web", listen: `${LOOPBACK}:0`, backends: [{ port: 70000 }] }],
  });
  const second = await hup(lb, 2);
  ok(
    !second.ok &&
      /^rejected, old config kept: .*frontends\[0\]\.backends\[0\]\.port must be 1-65535: got 70000/
        .test(second.message),
    second.message,
  );

  for (let i = 0; i < 5; i++) assertEquals(await request(lb.port), "A");
  assertEquals((await fetchStats(lb.admin)).reloads.applied, 0);
  // Once lb has exited its whole log is in: one `reload:` line per reload, saying
  // what /stats says, and nothing else until the stop (lb's own lines).
  assertEquals((await lb.stop()).code, 0);
  const lines = reloadLines(lb);
  assertEquals(lines.map((l) => l.split(" reload: ")[1]), [first.message, second.message]);
  const after = lb.stderr.slice(lb.stderr.indexOf(lines[1]!) + 1);
  assertEquals(after.filter((l) => !/^\S+ (worker\d+ )?lb: /.test(l)), [], after.join("\n"));
});

Deno.test("reload whose new listener cannot open changes nothing (never half-applied)", async () => {
  await using a = namedBackend("A");
  await using b = namedBackend("B");
  await using file = await webConfig(a.port);
  await using lb = await startWithAdmin(["--config", file.path]);
  using taken = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const takenPort = (taken.addr as Deno.NetAddr).port;

  // web's backend changes and a new frontend `api` cannot listen: neither may apply.
  await file.write({
    ...BASE,
    frontends: [
      frontend("web", `${LOOPBACK}:0`, b.port),
      frontend("api", `${LOOPBACK}:${takenPort}`, b.port),
    ],
  });
  const outcome = await hup(lb, 1);
  ok(
    !outcome.ok &&
      new RegExp(
        `^rejected, old config kept: frontend api cannot listen on 127\\.0\\.0\\.1:${takenPort}`,
      ).test(outcome.message),
    outcome.message,
  );
  for (let i = 0; i < 5; i++) assertEquals(await request(lb.port), "A");
  assertEquals(b.accepted, 0);
});

Deno.test("reload moves a listener: the new port opens before the old one closes", async () => {
  await using a = namedBackend("A");
  await using file = await webConfig(a.port);
  await using lb = await startWithAdmin(["--config", file.path]);
  using old = await longLived(lb.port);
  assertEquals(await old.ping(), "A");

  const loop = clientLoop(() => lb.port, 2);
  let moved = 0;
  try {
    await waitUntil(() => loop.results.length >= 10, "traffic before the move");
    const port = freePort();
    await file.write({ ...BASE, frontends: [frontend("web", `${LOOPBACK}:${port}`, a.port)] });
    const outcome = await hup(lb, 1);
    ok(
      outcome.ok &&
        new RegExp(`web moved 127\\.0\\.0\\.1:${lb.port}->127\\.0\\.0\\.1:${port}`)
          .test(outcome.message),
      outcome.message,
    );
    const web = (await fetchStats(lb.admin)).frontends.find((f) => f.name === "web");
    assertEquals(web?.addr, `127.0.0.1:${port}`);
    assertEquals(await request(port), "A");
    moved = port;
  } finally {
    await loop.stop();
  }
  // The client loop kept using the old port: once it closes, connecting there
  // is refused, or reset when the handshake completed in the old listener's
  // backlog just before the close (the kernel's doing, as with any port
  // change). Never an empty answer: a proxied connection is never cut.
  ok(
    loop.failures.every((f) => /ConnectionRefused|ConnectionReset/.test(f)),
    loop.failures.slice(0, 3).join("\n"),
  );
  await rejects(() => request(lb.port), /refused/i);
  assertEquals(await request(moved), "A");
  assertEquals(await old.ping(), "A");
});

Deno.test("reload adds and removes frontends; a removed one drains", async () => {
  await using a = namedBackend("A");
  await using b = namedBackend("B");
  await using file = await webConfig(a.port);
  await using lb = await startWithAdmin(["--config", file.path]);
  using old = await longLived(lb.port);
  assertEquals(await old.ping(), "A");

  await file.write({
    ...BASE,
    frontends: [frontend("web", `${LOOPBACK}:0`, a.port), frontend("api", `${LOOPBACK}:0`, b.port)],
  });
  const added = await hup(lb, 1);
  ok(added.ok && /\+frontend api/.test(added.message), added.message);
  const api = (await fetchStats(lb.admin)).frontends.find((f) => f.name === "api")!;
  const apiPort = Number(/^127\.0\.0\.1:(\d+)$/.exec(api.addr)![1]);
  assertEquals(await request(apiPort), "B");
  assertEquals(await request(lb.port), "A");

  await file.write({ ...BASE, frontends: [frontend("api", `${LOOPBACK}:0`, b.port)] });
  const removed = await hup(lb, 2);
  ok(
    removed.ok && /-frontend web \(1 connection\(s\) draining\)/.test(removed.message),
    removed.message,
  );
  await rejects(() => request(lb.port), /refused/i);
  assertEquals(await request(apiPort), "B");
  assertEquals(await old.ping(), "A");
});

Deno.test("reload without a config file re-applies the flags and changes nothing", async () => {
  await using a = namedBackend("A");
  await using lb = await startWithAdmin([
    "-f",
    `${LOOPBACK}:0`,
    "-p",
    String(a.port),
    "--log",
    "off",
  ]);
  const outcome = await hup(lb, 1);
  ok(outcome.ok && /^applied flags: no changes$/.test(outcome.message), outcome.message);
  assertEquals(await request(lb.port), "A");
});

// In process: what the end-to-end tests cannot see.

function configOf(text: string): Config {
  return parseConfigText(text, "test");
}

Deno.test("Lb.reload keeps Backend objects with the same id, drains removed ones", async () => {
  await using a = namedBackend("A");
  await using b = namedBackend("B");
  const lines: string[] = [];
  const lb = Lb.start(
    configOf(`{"health": {"interval": 0}, "frontends": [
      {"name": "web", "listen": "${LOOPBACK}:0", "backends": [{"port": ${a.port}}, {"port": ${b.port}}]}]}`),
    new Logger((line) => lines.push(line)),
  );
  try {
    const web = lb.frontends[0]!;
    const [keptA, removedB] = web.pool.backends as [
      typeof web.pool.backends[0],
      typeof web.pool.backends[0],
    ];
    assertEquals(await request(Number(web.addr.split(":")[1])), "A");
    assertEquals(keptA.total, 1);
    const summary = await reload(
      lb,
      configOf(`{"health": {"interval": 0}, "maxConns": 7, "frontends": [
      {"name": "web", "listen": "${LOOPBACK}:0", "backends": [{"port": ${a.port}, "weight": 5}]}]}`),
    );
    assertEquals(summary, `web 127.0.0.1:${a.port} weight 1->5, web -127.0.0.1:${b.port}`);
    assertEquals(web.pool.backends.length, 1);
    ok(web.pool.backends[0] === keptA, "the same Backend object is kept");
    assertEquals(keptA.weight, 5);
    assertEquals(keptA.total, 1, "counters survive the reload");
    assertEquals(keptA.drained, false);
    assertEquals(removedB.drained, true);
    assertEquals(lb.gate.limit, 7);
    assertEquals(lb.config.maxConns, 7);
    assertEquals(lb.frontends[0], web, "same frontend, same listener");
  } finally {
    await lb.shutdown(0);
  }
});

Deno.test("Lb.reload keeps restart-only fields and refuses after shutdown", async () => {
  await using a = namedBackend("A");
  const config = configOf(`{"health": {"interval": 0}, "workers": 1, "frontends": [
    {"name": "web", "listen": "${LOOPBACK}:0", "backends": [{"port": ${a.port}}]}]}`);
  const lb = Lb.start(config, new Logger(() => {}));
  const next = structuredClone(config);
  next.workers = 4;
  next.drainTimeout = 1234;
  assertEquals(await reload(lb, next), "workers kept (need a restart)");
  assertEquals(lb.config.workers, 1);
  assertEquals(lb.config.drainTimeout, 1234);
  await lb.shutdown(0);
  await rejects(() => reload(lb, next), /shutting down/);
});

Deno.test("ReloadStats counts each result and keeps the latest outcome", () => {
  const reloads = new ReloadStats();
  assertEquals([reloads.applied, reloads.rejected, reloads.last], [0, 0, null]);
  reloads.record({ ok: true, message: "applied flags: no changes" }, Date.UTC(2026, 0, 1));
  reloads.record({ ok: false, message: "rejected, old config kept: a" }, Date.UTC(2026, 0, 2));
  reloads.record({ ok: false, message: "rejected, old config kept: b" }, Date.UTC(2026, 0, 3));
  assertEquals([reloads.applied, reloads.rejected], [1, 2]);
  assertEquals(reloads.last, {
    ok: false,
    message: "rejected, old config kept: b",
    time: "2026-01-03T00:00:00.000Z",
  });
});

Deno.test("reloadFromFlags records each outcome in lb.reloads, which /stats and /metrics read", async () => {
  await using a = namedBackend("A");
  await using file = await webConfig(a.port);
  const lines: string[] = [];
  const lb = Lb.start(
    configOf(await Deno.readTextFile(file.path)),
    new Logger((line) => lines.push(line)),
  );
  try {
    const flags = parseFlags(["--config", file.path]);
    const applied = await reloadFromFlags(lb, flags);
    await file.write("{");
    const rejected = await reloadFromFlags(lb, flags);
    assertEquals([applied.ok, rejected.ok], [true, false]);
    assertEquals([lb.reloads.applied, lb.reloads.rejected], [1, 1]);
    assertEquals([lb.reloads.last?.ok, lb.reloads.last?.message], [false, rejected.message]);
    assertEquals(lines.filter((l) => / reload: /.test(l)).length, 2, "one log line per reload");
    const metrics = new Metrics();
    assertEquals(metrics.snapshot(lb).reloads, {
      applied: 1,
      rejected: 1,
      last: { ok: false, message: rejected.message, time: lb.reloads.last!.time },
    });
    const text = metrics.prometheus(lb);
    ok(text.includes('\nlb_reloads_total{result="applied"} 1\n'), text);
    ok(text.includes('\nlb_reloads_total{result="rejected"} 1\n'), text);
  } finally {
    await lb.shutdown(0);
  }
});

Deno.test("planPool changes nothing until apply", () => {
  const old = new Pool("roundrobin", [
    { hostname: "127.0.0.1", port: 1, weight: 1, backup: false, maxConn: 0 },
    { hostname: "127.0.0.1", port: 2, weight: 1, backup: false, maxConn: 0 },
  ]);
  const [one, two] = old.backends as [typeof old.backends[0], typeof old.backends[0]];
  const plan = planPool(old, {
    name: "web",
    listen: { hostname: "127.0.0.1", port: 0 },
    balance: "roundrobin",
    backends: [
      { hostname: "127.0.0.1", port: 1, weight: 2, backup: true, maxConn: 9 },
      { hostname: "127.0.0.1", port: 3, weight: 1, backup: false, maxConn: 0 },
    ],
  });
  assertEquals(plan.changes, [
    "127.0.0.1:1 weight 1->2",
    "127.0.0.1:1 backup false->true",
    "127.0.0.1:1 maxconn 0->9",
    "+127.0.0.1:3",
    "-127.0.0.1:2",
  ]);
  assertEquals([one.weight, one.backup, one.maxConn, two.drained], [1, false, 0, false]);
  ok(plan.pool.strategy === old.strategy, "strategy state kept when the name is unchanged");
  plan.apply();
  assertEquals([one.weight, one.backup, one.maxConn, two.drained], [2, true, 9, true]);
  ok(plan.pool.backends[0] === one);
  assertEquals(plan.pool.backends.map((b) => b.id), ["127.0.0.1:1", "127.0.0.1:3"]);
});

Deno.test("Lb.reload turns active health checks on and off", async () => {
  await using a = namedBackend("A");
  const config = configOf(`{"health": {"interval": 0}, "frontends": [
    {"name": "web", "listen": "${LOOPBACK}:0", "backends": [{"port": ${a.port}}]}]}`);
  const lb = Lb.start(structuredClone(config), new Logger(() => {}));
  try {
    assertEquals(lb.checker.running, false);
    const on = structuredClone(config);
    on.health = { interval: 50, timeout: 1000, rise: 1, fall: 1 };
    await reload(lb, on);
    assertEquals(lb.checker.running, true);
    const backend = lb.frontends[0]!.pool.backends[0]!;
    await waitUntil(() => backend.health.lastCheckMs >= 0, "a health check after the reload");
    assertEquals(lb.config.health.interval, 50);
    await reload(lb, config);
    assertEquals(lb.checker.running, false);
  } finally {
    await lb.shutdown(0);
  }
});

Deno.test("Lb.reload that turns health checks off brings down backends back (nothing else could)", async () => {
  const dead = freePort();
  await using a = namedBackend("A");
  const config = configOf(`{"health": {"interval": 50, "timeout": 1000, "rise": 1, "fall": 1},
    "frontends": [{"name": "web", "listen": "${LOOPBACK}:0",
      "backends": [{"port": ${a.port}}, {"port": ${dead}}]}]}`);
  const lb = Lb.start(structuredClone(config), new Logger(() => {}));
  try {
    const down = lb.frontends[0]!.pool.backends[1]!;
    await waitUntil(() => !down.healthy, "the dead backend to go down");
    const off = structuredClone(config);
    off.health.interval = 0;
    await reload(lb, off);
    assertEquals(lb.checker.running, false);
    ok(down.healthy, "with checks off a down backend must be usable again");
    ok(down.available);
  } finally {
    await lb.shutdown(0);
  }
});
