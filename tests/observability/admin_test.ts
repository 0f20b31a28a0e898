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
  delay,
  LOOPBACK,
  metricValue,
  readAll,
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

Deno.test("Admin with others adds the other threads' tallies on /metrics and /stats", async () => {
  const worker = options();
  worker.lb.frontends[0]!.total = 5;
  const lines: string[] = [];
  const opts = options({
    others: () => Promise.resolve([worker.metrics.tally(worker.lb)]),
  }, lines);
  opts.lb.frontends[0]!.total = 2;
  await using admin = Admin.start({ hostname: LOOPBACK, port: 0 }, opts);
  const port = Number(admin.addr.split(":")[1]);
  assertEquals(await metricValue(port, "lb_frontend_connections_total", 'frontend="main"'), 7);
  assertEquals((await stats(port)).frontends[0]!.total, 7);
  assertEquals(lines, []);
});

Deno.test("Admin answers from this thread alone, logging once, when the others' tallies cannot be had", async () => {
  const lines: string[] = [];
  let asked = 0;
  const opts = options({
    others: () => Promise.reject(new Error(`worker 2 did not answer (${++asked})`)),
  }, lines);
  opts.lb.frontends[0]!.total = 2;
  await using admin = Admin.start({ hostname: LOOPBACK, port: 0 }, opts);
  const port = Number(admin.addr.split(":")[1]);
  assertEquals(await metricValue(port, "lb_frontend_connections_total", 'frontend="main"'), 2);
  assertEquals((await stats(port)).frontends[0]!.total, 2);
  assertEquals(asked, 2);
  assertEquals(lines.length, 1, lines.join("\n"));
  assertMatch(
    lines[0]!,
    /admin: .*cannot collect the other threads'.*worker 2 did not answer \(1\)$/,
  );
});

Deno.test("Admin calls onBackendAction after a drain or enable applied here, and for nothing else", async () => {
  const calls: unknown[][] = [];
  const opts = options({
    onBackendAction: (id, action, frontends) => {
      calls.push([id, action, frontends, backend.drained]);
    },
  });
  const backend = opts.lb.frontends[0]!.pool.backends[0]!;
  await using admin = Admin.start({ hostname: LOOPBACK, port: 0 }, opts);
  const action = async (path: string) => {
    const response = await fetch(`http://${admin.addr}${path}`, { method: "POST" });
    await response.body?.cancel();
    return response.status;
  };
  assertEquals(await action("/backends/127.0.0.1%3A8101/drain"), 200);
  assertEquals(calls, [["127.0.0.1:8101", "drain", ["main"], true]]);
  assertEquals(await action("/backends/127.0.0.1%3A8101/enable?frontend=main"), 200);
  assertEquals(calls.at(-1), ["127.0.0.1:8101", "enable", ["main"], false]);
  for (
    const path of ["/backends/127.0.0.1%3A9/drain", "/backends/127.0.0.1%3A8101/drain?frontend=x"]
  ) {
    assertEquals(await action(path), 404, path);
  }
  assertEquals(calls.length, 2);
});

Deno.test("Admin answers a drain only once onBackendAction's promise settles", async () => {
  let release = () => {};
  const opts = options({
    onBackendAction: () => new Promise<void>((resolve) => release = resolve),
  });
  await using admin = Admin.start({ hostname: LOOPBACK, port: 0 }, opts);
  let answered = false;
  const response = fetch(`http://${admin.addr}/backends/127.0.0.1%3A8101/drain`, {
    method: "POST",
  }).then((r) => (answered = true, r));
  await delay(100);
  assertEquals(answered, false, "answered before the other threads were told");
  release();
  const done = await response;
  assertEquals(done.status, 200);
  await done.body?.cancel();
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
    // One accept loop: the exact round-robin split below is one loop's.
    "--workers",
    "1",
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

/** A temporary directory with a token file; removed on dispose. */
async function tokenFile(content: string): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "lb-admin-" });
  const path = `${dir}/admin.token`;
  await Deno.writeTextFile(path, content);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** Sends a raw request to the admin port; resolves with the status code and the body. */
async function raw(
  port: number,
  head: string,
  hostname = LOOPBACK,
): Promise<{ status: number; body: string }> {
  using conn = await Deno.connect({ hostname, port });
  await writeAll(conn, new TextEncoder().encode(head));
  const answer = new TextDecoder().decode(await withTimeout(readAll(conn), 10_000, head));
  const [top = "", body = ""] = answer.split("\r\n\r\n");
  return { status: Number(top.split(" ")[1]), body };
}

/** lb's one stderr line and exit status for `args` (it is expected not to start). */
async function refusedStart(args: string[]): Promise<{ code: number; text: string }> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", MAIN, ...args],
    stdin: "null",
    stdout: "null",
  }).output();
  return { code, text: new TextDecoder().decode(stderr) };
}

Deno.test("lb --admin-token-file: 401 without the token, with a wrong one or a same-length one, 200 with it", async () => {
  await using a = startEchoServer();
  await using token = await tokenFile("\n  correct-horse-battery-staple \n");
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "--admin",
    "0",
    "--admin-token-file",
    token.path,
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  const url = (path: string) => `http://${LOOPBACK}:${admin}${path}`;
  const bearer = (value: string) => ({ authorization: `Bearer ${value}` });
  const refusals: [string, Record<string, string>][] = [
    ["no token", {}],
    ["a wrong token", bearer("wrong")],
    ["a token of the right length, wrong bytes", bearer("correct-horse-battery-stapLe")],
    ["the token with one byte more", bearer("correct-horse-battery-staple!")],
    ["the token in another scheme", { authorization: "Basic correct-horse-battery-staple" }],
  ];
  for (const path of ["/stats", "/metrics"]) {
    for (const [what, headers] of refusals) {
      const response = await fetch(url(path), { headers });
      assertEquals(response.status, 401, `${path} with ${what}`);
      assertEquals(response.headers.get("www-authenticate"), 'Bearer realm="lb admin"');
      assertMatch((await response.json()).error, /Authorization: Bearer/);
    }
    const ok = await fetch(url(path), { headers: bearer("correct-horse-battery-staple") });
    assertEquals(ok.status, 200, path);
    await ok.body?.cancel();
  }
  // An action without the token changes nothing; with it, it applies.
  const id = encodeURIComponent(`127.0.0.1:${a.port}`);
  const refused = await fetch(url(`/backends/${id}/drain`), { method: "POST" });
  assertEquals(refused.status, 401);
  await refused.body?.cancel();
  const snapshot = async () =>
    await (await fetch(url("/stats"), { headers: bearer("correct-horse-battery-staple") })).json();
  assertEquals((await snapshot()).frontends[0].backends[0].drained, false);
  const drained = await fetch(url(`/backends/${id}/drain`), {
    method: "POST",
    headers: bearer("correct-horse-battery-staple"),
  });
  assertEquals(drained.status, 200);
  await drained.body?.cancel();
  assertEquals((await snapshot()).frontends[0].backends[0].drained, true);
  // The probes and the page (which holds no data) stay open.
  for (const [path, body] of [["/healthz", "ok\n"], ["/ready", null]] as const) {
    const response = await fetch(url(path));
    const text = await response.text();
    if (body !== null) assertEquals([response.status, text], [200, body], path);
  }
  const page = await fetch(url("/"));
  assertEquals(page.status, 200);
  assertMatch(await page.text(), /<title>lb stats<\/title>/);
  await lb.waitFor(/admin: refused 127\.0\.0\.1:\d+: GET \/stats without the admin token/);
});

Deno.test("lb admin refuses a Host that does not name it (DNS rebinding), on every route", async () => {
  await using a = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "--admin",
    "127.0.0.1:0",
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  const evil = `evil.example:${admin}`;
  const rebound = [
    `GET /stats HTTP/1.1\r\nHost: ${evil}\r\n\r\n`,
    `GET /healthz HTTP/1.1\r\nHost: ${evil}\r\n\r\n`,
    `GET / HTTP/1.1\r\nHost: ${evil}\r\n\r\n`,
    `POST /reload HTTP/1.1\r\nHost: ${evil}\r\nOrigin: http://${evil}\r\nContent-Length: 0\r\n\r\n`,
    `POST /backends/127.0.0.1%3A${a.port}/drain HTTP/1.1\r\nHost: ${evil}\r\n` +
    `Origin: http://${evil}\r\n\r\n`,
    `GET /stats HTTP/1.1\r\nHost: 127.0.0.2:${admin}\r\n\r\n`,
    `GET /stats HTTP/1.1\r\nHost: 127.0.0.1:${admin + 1}\r\n\r\n`,
    `GET /stats HTTP/1.0\r\n\r\n`,
  ];
  for (const head of rebound) {
    const { status, body } = await raw(admin, head);
    assertEquals(status, 421, head);
    assertMatch(body, /Host header does not name this admin endpoint/);
  }
  const stats = await fetch(`http://${LOOPBACK}:${admin}/stats`);
  assertEquals((await stats.json()).frontends[0].backends[0].drained, false);
  for (const host of [`127.0.0.1:${admin}`, `localhost:${admin}`, `LOCALHOST:${admin}`]) {
    assertEquals((await raw(admin, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`)).status, 200);
  }
  assert(!lb.stderr.some((line) => /reload/.test(line)), "no reload ran");
  await lb.waitFor(/admin: refused 127\.0\.0\.1:\d+: Host "evil\.example:\d+" does not name/);
});

Deno.test("lb refuses a non-loopback --admin without a token file: exit 2, one line", async () => {
  await using a = startEchoServer();
  const base = ["-f", "127.0.0.1:0", "-p", String(a.port)];
  for (const admin of ["0.0.0.0:0", "[::]:0", "10.0.0.5:0", "lb.example:0"]) {
    const { code, text } = await refusedStart([...base, "--admin", admin]);
    assertEquals(code, 2, text);
    assertMatch(
      text,
      /^lb: --admin \S+ is not a loopback address: .* give --admin-token-file PATH \(or --admin-insecure to allow it without one\)( \(lb --help for usage\))?\n$/,
    );
  }
  await using empty = await tokenFile(" \n");
  const cases: [string[], RegExp][] = [
    [["--admin-token-file", empty.path], /^lb: \S+: admin token file is empty/],
    [["--admin-token-file", `${empty.path}.missing`], /: cannot read admin token file: no such/],
  ];
  for (const [args, pattern] of cases) {
    const { code, text } = await refusedStart([...base, "--admin", "0.0.0.0:0", ...args]);
    assertEquals(code, 2, text);
    assertMatch(text, pattern);
    assertEquals(text.split("\n").length, 2, text);
  }
});

Deno.test("lb --admin-insecure on a non-loopback address starts with one warning line", async () => {
  await using a = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "--admin",
    "0.0.0.0:0",
    "--admin-insecure",
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  await lb.waitFor(/admin: warning/);
  // The next lines (requests, stop) come after it: a second warning would be there by now.
  const response = await fetch(`http://${LOOPBACK}:${admin}/stats`);
  assertEquals(response.status, 200);
  await response.body?.cancel();
  assertEquals((await lb.stop()).code, 0);
  const warnings = lb.stderr.filter((line) => /warning/.test(line));
  assertEquals(warnings.length, 1, lb.stderr.join("\n"));
  assertMatch(
    warnings[0]!,
    /admin: warning: 0\.0\.0\.0:\d+ is not loopback and has no --admin-token-file \(--admin-insecure\)/,
  );
});

Deno.test("lb admin /ready answers 503 with the reason when no backend is up and while draining", async () => {
  await using a = startEchoServer();
  const lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "--admin",
    "0",
    "--log",
    "off",
  ]);
  await using _lb = lb;
  const admin = await adminPort(lb);
  const ready = async () => {
    const response = await fetch(`http://${LOOPBACK}:${admin}/ready`);
    return [response.status, await response.text()] as const;
  };
  assertEquals(await ready(), [200, "ready\n"]);
  const action = async (verb: string) => {
    const id = encodeURIComponent(`127.0.0.1:${a.port}`);
    const response = await fetch(`http://${LOOPBACK}:${admin}/backends/${id}/${verb}`, {
      method: "POST",
    });
    assertEquals(response.status, 200);
    await response.body?.cancel();
  };
  await action("drain");
  assertEquals(await ready(), [503, "frontend main has no backend up\n"]);
  await action("enable");
  assertEquals(await ready(), [200, "ready\n"]);
  // Hold one connection so that the drain lasts, then stop.
  using held = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  await writeAll(held, new Uint8Array([1]));
  await readExactly(held, 1);
  lb.child.kill("SIGTERM");
  await lb.waitFor(/SIGTERM: stopped accepting/);
  assertEquals(await ready(), [503, "draining: SIGTERM received\n"]);
  const health = await fetch(`http://${LOOPBACK}:${admin}/healthz`);
  assertEquals([health.status, await health.text()], [200, "ok\n"]);
  held.close();
  assertEquals((await lb.status).code, 0);
});

Deno.test("lb admin answers others during 1 MiB of headers, a slow-loris client and 100 idle ones", async () => {
  await using a = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "--admin",
    "0",
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  const encoder = new TextEncoder();
  const healthz = async () =>
    (await raw(admin, `GET /healthz HTTP/1.1\r\nHost: localhost:${admin}\r\n\r\n`)).status;

  // 1 MiB of headers: answered 431 while another client is answered.
  using big = await Deno.connect({ hostname: LOOPBACK, port: admin });
  const bigAnswer = readAll(big);
  const bigWrite = writeAll(
    big,
    encoder.encode(`GET /stats HTTP/1.1\r\n${`X-Big: ${"a".repeat(1016)}\r\n`.repeat(1024)}\r\n`),
  ).catch(() => {}); // lb may close before all of it is sent
  assertEquals(await healthz(), 200);
  const answer = new TextDecoder().decode(await withTimeout(bigAnswer, 10_000, "the 431"));
  assertMatch(answer, /^HTTP\/1\.1 431 /);
  await bigWrite;

  // A slow-loris client sending one header byte at a time: others are answered meanwhile.
  using loris = await Deno.connect({ hostname: LOOPBACK, port: admin });
  await writeAll(loris, encoder.encode(`GET /stats HTTP/1.1\r\nHost: localhost:${admin}\r\n`));
  for (let i = 0; i < 5; i++) {
    await writeAll(loris, encoder.encode("X"));
    assertEquals(await healthz(), 200);
  }
  // 100 more that stop mid-request: beyond 64 open admin connections the oldest waiting
  // ones (the slow-loris first) are closed, and others are still answered.
  const idle: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      const conn = await Deno.connect({ hostname: LOOPBACK, port: admin });
      idle.push(conn);
      await writeAll(conn, encoder.encode("GET /stats HTTP/1.1\r\nHo"));
    }
    assertEquals(await healthz(), 200);
    for (const conn of [loris, idle[0]!]) {
      // Closed: EOF, or a reset where lb had not read all the client sent.
      const end = conn.read(new Uint8Array(1)).catch((error) => error.name);
      assert([null, "ConnectionReset"].includes(await withTimeout(end, 10_000, "closed")));
    }
  } finally {
    for (const conn of idle) conn.close();
  }
});
