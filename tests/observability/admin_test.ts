import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { Admin, type AdminOptions, handle } from "../../src/observability/admin.ts";
import { Backend } from "../../src/balancing/backend.ts";
import { Logger } from "../../src/observability/log.ts";
import {
  Metrics,
  type MetricsSource,
  type StatsSnapshot,
} from "../../src/observability/metrics.ts";
import type { Frontend } from "../../src/connection/frontend.ts";
import { startLb } from "../../support/lb_process.ts";
import {
  adminPort,
  LOOPBACK,
  readExactly,
  startEchoServer,
  type TcpServer,
  waitUntil,
  withTimeout,
  writeAll,
} from "../_helpers.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function options(overrides: Partial<AdminOptions> = {}, lines: string[] = []): AdminOptions {
  const backend = new Backend({
    hostname: "127.0.0.1",
    port: 8101,
    weight: 1,
    backup: false,
    maxConn: 0,
  });
  const frontend = {
    name: "main",
    addr: "127.0.0.1:1",
    pool: { balance: "roundrobin", backends: [backend] },
    sessions: new Set(),
    total: 0,
    bytesIn: 0,
    bytesOut: 0,
  } as unknown as Frontend;
  const lb: MetricsSource = { frontends: [frontend], started: Date.now() };
  return {
    lb,
    metrics: new Metrics(),
    logger: new Logger((line) => void lines.push(line)),
    ...overrides,
  };
}

function post(path: string, headers: Record<string, string> = {}): Request {
  return new Request(`http://127.0.0.1:9090${path}`, { method: "POST", headers });
}

async function stats(port: number): Promise<StatsSnapshot> {
  const response = await fetch(`http://${LOOPBACK}:${port}/stats`);
  assertEquals(response.status, 200);
  assertEquals(response.headers.get("content-type"), "application/json");
  return await response.json();
}

async function oneEcho(port: number): Promise<void> {
  using conn = await Deno.connect({ hostname: LOOPBACK, port });
  await writeAll(conn, new Uint8Array([1, 2, 3]));
  assertEquals(await withTimeout(readExactly(conn, 3), 10_000, "echo"), new Uint8Array([1, 2, 3]));
  await conn.closeWrite();
  assertEquals(await withTimeout(conn.read(new Uint8Array(1)), 10_000, "EOF"), null);
}

Deno.test("handle answers 405 with Allow for a wrong method and 404 for an unknown path", async () => {
  const opts = options();
  const cases: [string, string, number, string | null][] = [
    ["POST", "/metrics", 405, "GET, HEAD"],
    ["DELETE", "/stats", 405, "GET, HEAD"],
    ["PUT", "/", 405, "GET, HEAD"],
    ["GET", "/reload", 405, "POST"],
    ["GET", "/backends/127.0.0.1%3A8101/drain", 405, "POST"],
    ["GET", "/nope", 404, null],
    ["POST", "/backends/127.0.0.1%3A8101/explode", 404, null],
    ["POST", "/backends/10.0.0.9%3A80/drain", 404, null],
    ["POST", "/backends/%E0%A4%A/drain", 404, null],
  ];
  for (const [method, path, status, allow] of cases) {
    const response = await handle(new Request(`http://127.0.0.1${path}`, { method }), opts);
    assertEquals(response.status, status, `${method} ${path}`);
    assertEquals(response.headers.get("allow"), allow, `${method} ${path}`);
    await response.body?.cancel();
  }
});

Deno.test("handle POST /reload calls the hook: 200, 400 with its message, 501 without one", async () => {
  let calls = 0;
  const ok = await handle(
    post("/reload"),
    options({ reload: () => Promise.resolve({ ok: true, message: `applied ${++calls}` }) }),
  );
  assertEquals([ok.status, calls], [200, 1]);
  assertEquals((await ok.json()).reloaded, true);

  const bad = await handle(
    post("/reload"),
    options({
      reload: () =>
        Promise.resolve({ ok: false, message: "frontends[0].backends[2].port must be 1-65535" }),
    }),
  );
  assertEquals(bad.status, 400);
  assertEquals(await bad.json(), {
    reloaded: false,
    error: "frontends[0].backends[2].port must be 1-65535",
  });

  const none = await handle(post("/reload"), options());
  assertEquals(none.status, 501);
  assertMatch((await none.json()).error, /reload/);
});

Deno.test("handle refuses actions a browser sends from another site", async () => {
  const opts = options();
  const backend = opts.lb.frontends[0]!.pool.backends[0]!;
  const evil = await handle(
    post("/backends/127.0.0.1%3A8101/drain", { origin: "http://evil.example" }),
    opts,
  );
  assertEquals(evil.status, 403);
  await evil.body?.cancel();
  assertEquals(backend.drained, false);
  const same = await handle(
    post("/backends/127.0.0.1%3A8101/drain", {
      origin: "http://127.0.0.1:9090",
      host: "127.0.0.1:9090",
    }),
    opts,
  );
  assertEquals(same.status, 200);
  await same.body?.cancel();
  assertEquals(backend.drained, true);
});

Deno.test("Admin.start logs its address and closes on shutdown", async () => {
  const lines: string[] = [];
  let port: number;
  {
    await using admin = Admin.start({ hostname: LOOPBACK, port: 0 }, options({}, lines));
    port = Number(admin.addr.split(":")[1]);
    admin.announce();
    assertMatch(lines.join("\n"), new RegExp(`admin: listening on 127\\.0\\.0\\.1:${port}$`));
    const response = await fetch(`http://${admin.addr}/`);
    assertEquals(response.status, 200);
    assertMatch(response.headers.get("content-type") ?? "", /^text\/html/);
    assertMatch(await response.text(), /<title>lb stats<\/title>/);
  }
  const refused = await Deno.connect({ hostname: LOOPBACK, port }).then(
    (conn) => (conn.close(), false),
    () => true,
  );
  assert(refused, "admin still accepting after shutdown");
});

Deno.test("POST /backends/{id}/drain stops new connections to it; enable restores them", async () => {
  await using a = startEchoServer();
  await using b = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "-p",
    String(b.port),
    "--admin",
    "0",
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  const idA = `127.0.0.1:${a.port}`;
  const action = (id: string, verb: string) =>
    fetch(`http://${LOOPBACK}:${admin}/backends/${encodeURIComponent(id)}/${verb}`, {
      method: "POST",
    });
  const spread = async (n: number, servers: TcpServer[]) => {
    const before = servers.map((s) => s.accepted);
    for (let i = 0; i < n; i++) await oneEcho(lb.port);
    return servers.map((s, i) => s.accepted - before[i]!);
  };

  assertEquals(await spread(4, [a, b]), [2, 2]);

  const drained = await action(idA, "drain");
  assertEquals(drained.status, 200);
  assertEquals(await drained.json(), { id: idA, drained: true, frontends: ["main"] });
  assertEquals(await spread(6, [a, b]), [0, 6]);
  const snap = await stats(admin);
  const [sa, sb] = snap.frontends[0]!.backends;
  assertEquals([sa?.id, sa?.state, sa?.drained], [idA, "DRAIN", true]);
  assertEquals(sb?.state, "UP");
  assertEquals(sa!.total + sb!.total, 10);
  await lb.waitFor(new RegExp(`admin: backend ${idA.replaceAll(".", "\\.")} drained`));

  const enabled = await action(idA, "enable");
  assertEquals(enabled.status, 200);
  await enabled.body?.cancel();
  const after = await spread(6, [a, b]);
  assert(after[0]! >= 2, `after enable: ${after}`);
  assertEquals((await stats(admin)).frontends[0]!.backends[0]!.state, "UP");

  const unknown = await action("127.0.0.1:1", "drain");
  assertEquals(unknown.status, 404);
  await unknown.body?.cancel();
});

Deno.test("GET /stats describes frontends and backends as JSON", async () => {
  await using a = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    `${a.port},weight=4`,
    "--admin",
    "127.0.0.1:0",
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  await oneEcho(lb.port);
  await oneEcho(lb.port);
  // The client sees EOF a moment before lb has finished its bookkeeping.
  await waitUntil(async () => (await stats(admin)).frontends[0]!.active === 0, "0 active");
  const snap = await stats(admin);
  assert(snap.uptimeSeconds >= 0 && snap.rssBytes > 0);
  assert(Number.isFinite(Date.parse(snap.startedAt)));
  assertEquals(snap.frontends.length, 1);
  const fe = snap.frontends[0]!;
  assertEquals([fe.name, fe.addr, fe.balance], ["main", `127.0.0.1:${lb.port}`, "roundrobin"]);
  assertEquals([fe.total, fe.active, fe.bytesIn, fe.bytesOut], [2, 0, 6, 6]);
  assertEquals(fe.ended, {
    eof: 2,
    reset: 0,
    timeout: 0,
    "no-backend": 0,
    drained: 0,
    killed: 0,
    refused: 0,
  });
  const be = fe.backends[0]!;
  assertEquals(
    [be.id, be.state, be.weight, be.backup, be.total, be.active, be.bytesIn, be.bytesOut],
    [`127.0.0.1:${a.port}`, "UP", 4, false, 2, 0, 6, 6],
  );
});

Deno.test("lb --admin listens on loopback by default and stops with lb", async () => {
  await using a = startEchoServer();
  const lb = await startLb(["-f", "127.0.0.1:0", "-p", String(a.port), "--admin", "0"]);
  await using _ = lb;
  const line = await lb.waitFor(/admin: listening on /);
  assertMatch(line, /admin: listening on 127\.0\.0\.1:\d+$/);
  const admin = await adminPort(lb);
  const response = await fetch(`http://${LOOPBACK}:${admin}/metrics`);
  assertEquals(response.status, 200);
  await response.body?.cancel();
  assertEquals((await lb.stop()).code, 0);
  const refused = await Deno.connect({ hostname: LOOPBACK, port: admin }).then(
    (conn) => (conn.close(), false),
    () => true,
  );
  assert(refused);
});

Deno.test("lb --admin on a port in use exits 1 naming the admin address", async () => {
  await using a = startEchoServer();
  using taken = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = taken.addr.port;
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      MAIN,
      "-f",
      "127.0.0.1:0",
      "-p",
      String(a.port),
      "--admin",
      `${port}`,
    ],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(stderr);
  assertEquals(code, 1, text);
  assertMatch(text, new RegExp(`^lb: cannot listen on admin 127\\.0\\.0\\.1:${port}: .*\n$`));
  // Nothing announced before the failure: every listener opens before any "listening on".
  assert(!/listening on/.test(text), text);
});
