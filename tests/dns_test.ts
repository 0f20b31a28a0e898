/**
 * Backends given by name, end to end through main.ts with a real DNS server
 * (dnsmasq, tests/discovery/_dnsmasq.ts) and real backends on 127.0.0.2-4:
 * a name's addresses all serve; a changed answer adds (after a health check)
 * and drains addresses while traffic runs, keeping unchanged backends as they
 * were; a server that stops answering keeps the last set; SRV priorities
 * become backups; `--check` fails on a name that does not resolve.
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { startLb } from "../support/lb_process.ts";
import type { StatsSnapshot } from "../src/observability/metrics.ts";
import {
  adminPort,
  closeQuietly,
  fetchStats,
  LOOPBACK,
  readExactly,
  waitForStats,
  waitUntil,
  withTimeout,
  writeAll,
} from "./_helpers.ts";
import { DNSMASQ_MISSING, startDnsmasq } from "./discovery/_dnsmasq.ts";

const ignore = DNSMASQ_MISSING !== undefined;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** lb on a free port, checking every 100 ms, an admin endpoint, names looked up every 100 ms. */
function lbArgs(resolver: { hostname: string; port: number }, ...more: string[]): string[] {
  return [
    "-f",
    `${LOOPBACK}:0`,
    "--admin",
    `${LOOPBACK}:0`,
    "--log",
    "off",
    "--health-interval",
    "100ms",
    "--resolve-interval",
    "100ms",
    "--resolver",
    `${resolver.hostname}:${resolver.port}`,
    ...more,
  ];
}

/** Connects through lb and returns the line the backend greets with (its address). */
async function whoAnswers(port: number): Promise<string> {
  using conn = await Deno.connect({ hostname: LOOPBACK, port });
  return await withTimeout(readLine(conn), 10_000, "the backend's greeting");
}

/** Sends `text` on `conn` and reads its echo. */
async function echo(conn: Deno.Conn, text: string): Promise<string> {
  await writeAll(conn, encoder.encode(text));
  return decoder.decode(await withTimeout(readExactly(conn, text.length), 10_000, "echo"));
}

function ids(stats: StatsSnapshot): string[] {
  return stats.frontends[0]!.backends.map((b) => b.id).sort();
}

function backend(stats: StatsSnapshot, id: string) {
  return stats.frontends[0]!.backends.find((b) => b.id === id);
}

Deno.test({
  name: "lb follows a name: both addresses serve, a changed answer joins and drains while " +
    "traffic runs (0 failed), the kept address keeps its counters",
  ignore,
  async fn() {
    await using servers = greetingServers(["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    const port = servers.port;
    await using dns = await startDnsmasq({ hosts: "127.0.0.2 web.test\n127.0.0.3 web.test\n" });
    await using lb = await startLb(lbArgs(dns.resolver, "-p", `web.test:${port}`));
    const admin = await adminPort(lb);
    const a = `web.test:${port}/127.0.0.2`;
    const b = `web.test:${port}/127.0.0.3`;
    const c = `web.test:${port}/127.0.0.4`;

    const stats = await fetchStats(admin);
    assertEquals(ids(stats), [a, b]);
    assertEquals(stats.discovery.map((d) => [d.name, d.result, d.endpoints]), [
      [`web.test:${port}`, "ok", [`127.0.0.2:${port}`, `127.0.0.3:${port}`]],
    ]);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await whoAnswers(lb.port));
    assertEquals([...seen].sort(), ["127.0.0.2", "127.0.0.3"]);

    // An open connection to the address about to go away.
    let held: Deno.TcpConn | undefined;
    for (let i = 0; i < 4 && held === undefined; i++) {
      const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
      if (await readLine(conn) === "127.0.0.2") held = conn;
      else conn.close();
    }
    ok(held, "a connection to 127.0.0.2");
    using _held = held;
    // Every connection so far has been answered, so each is counted: a snapshot to go on from.
    const keptTotal = backend(await fetchStats(admin), b)!.total;
    ok(keptTotal >= 1, `${keptTotal} connection(s) to ${b}`);

    // Traffic all along the change: every connection must be answered.
    const answers: string[] = [];
    let failures = 0;
    let stopTraffic = false;
    const traffic = (async () => {
      while (!stopTraffic) {
        await whoAnswers(lb.port).then((who) => answers.push(who), () => failures++);
      }
    })();
    await dns.setHosts("127.0.0.3 web.test\n127.0.0.4 web.test\n");
    await waitForStats(
      admin,
      "127.0.0.4 in and up, 127.0.0.2 gone",
      (s) => ids(s).join() === [b, c].join() && backend(s, c)!.state === "UP",
    );
    await waitUntil(() => answers.includes("127.0.0.4"), "a connection to 127.0.0.4");
    stopTraffic = true;
    await traffic;
    assertEquals(failures, 0, `${failures} of ${answers.length + failures} connections failed`);
    const removedAt = answers.lastIndexOf("127.0.0.2");
    ok(removedAt < answers.indexOf("127.0.0.4"), "no new connection to 127.0.0.2 once it left");

    // The removed address drains: its open connection still flows both ways.
    assertEquals(await echo(held, "still here"), "still here");
    // The kept address is the same backend: its counters went on from where they were.
    const stats2 = await fetchStats(admin);
    const toKept = answers.filter((who) => who === "127.0.0.3").length;
    assertEquals(backend(stats2, b)!.total, keptTotal + toKept);
    ok(
      lb.stderr.some((l) => l.includes(`discovery: main: +${c}`) && l.includes(`-${a}`)),
      lb.stderr.join("\n"),
    );
    const metrics = await (await fetch(`http://${LOOPBACK}:${admin}/metrics`)).text();
    ok(
      new RegExp(`lb_dns_lookups_total\\{name="web.test:${port}",result="ok"\\} [1-9]`).test(
        metrics,
      ),
      metrics,
    );
    ok(metrics.includes(`lb_dns_endpoints{name="web.test:${port}"} 2`), metrics);
  },
});

Deno.test({
  name: "lb keeps a name's last good set when its DNS server stops answering: one log line, " +
    "/stats shows the error",
  ignore,
  async fn() {
    await using servers = greetingServers(["127.0.0.2", "127.0.0.3"]);
    await using dns = await startDnsmasq({ hosts: "127.0.0.2 web.test\n127.0.0.3 web.test\n" });
    await using lb = await startLb(lbArgs(dns.resolver, "-p", `web.test:${servers.port}`));
    const admin = await adminPort(lb);
    await dns.kill();
    const failedLookups = (s: StatsSnapshot) =>
      s.discovery[0]!.lookups.timeout! + s.discovery[0]!.lookups.unreachable!;
    const stats = await waitForStats(
      admin,
      "two failed lookups in a row",
      (s) => failedLookups(s) >= 2,
      20_000,
    );
    const [name] = stats.discovery;
    assertEquals([name!.result, name!.endpoints.length], ["failed", 2]);
    ok(
      /^(timeout|unreachable): web\.test A(AAA)? via 127\.0\.0\.1:\d+/.test(name!.error!),
      name!.error!,
    );
    assertEquals(ids(stats).length, 2);
    const failed = lb.stderr.filter((l) => /discovery: web\.test:\d+: lookup failed/.test(l));
    assertEquals(failed.length, 1, lb.stderr.join("\n"));
    ok(/keeping the last 2 address\(es\): (timeout|unreachable)/.test(failed[0]!), failed[0]);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await whoAnswers(lb.port));
    assertEquals([...seen].sort(), ["127.0.0.2", "127.0.0.3"]);

    await dns.restart();
    await waitForStats(admin, "a good lookup again", (s) => s.discovery[0]!.result === "ok");
    await lb.waitFor(/discovery: web\.test:\d+: lookups answer again/);
  },
});

Deno.test({
  name: "lb takes SRV targets, ports and weights: the lowest priority serves, higher ones " +
    "are backups",
  ignore,
  async fn() {
    await using normal = greetingServers(["127.0.0.2"]);
    await using spare = greetingServers(["127.0.0.3"]);
    await using dns = await startDnsmasq({
      hosts: "127.0.0.2 a.test\n127.0.0.3 b.test\n",
      args: [
        `--srv-host=_echo._tcp.svc.test,a.test,${normal.port},10,7`,
        `--srv-host=_echo._tcp.svc.test,b.test,${spare.port},20,3`,
      ],
    });
    await using lb = await startLb(lbArgs(dns.resolver, "-p", "srv:_echo._tcp.svc.test,maxconn=9"));
    const admin = await adminPort(lb);
    const first = `srv:_echo._tcp.svc.test/127.0.0.2:${normal.port}`;
    const second = `srv:_echo._tcp.svc.test/127.0.0.3:${spare.port}`;
    const stats = await fetchStats(admin);
    assertEquals(
      stats.frontends[0]!.backends.map((b) => [b.id, b.weight, b.backup, b.maxConn]),
      [[first, 7, false, 9], [second, 3, true, 9]],
    );
    for (let i = 0; i < 3; i++) assertEquals(await whoAnswers(lb.port), "127.0.0.2");
    const drained = await fetch(
      `http://${LOOPBACK}:${admin}/backends/${encodeURIComponent(first)}/drain`,
      { method: "POST" },
    );
    assertEquals(drained.status, 200, await drained.text());
    assertEquals(await whoAnswers(lb.port), "127.0.0.3", "the backup takes over");
  },
});

Deno.test({
  name: "lb starts with a name that does not resolve yet: /ready 503 until it does, then it serves",
  ignore,
  async fn() {
    await using servers = greetingServers(["127.0.0.2"]);
    await using dns = await startDnsmasq();
    await using lb = await startLb(lbArgs(dns.resolver, "-p", `late.test:${servers.port}`));
    const admin = await adminPort(lb);
    const ready = await fetch(`http://${LOOPBACK}:${admin}/ready`);
    assertEquals([ready.status, await ready.text()], [503, "frontend main has no backend up\n"]);
    ok(
      lb.stderr.some((l) => /discovery: late\.test:\d+: lookup failed, no address yet/.test(l)),
      lb.stderr.join("\n"),
    );
    await dns.setHosts("127.0.0.2 late.test\n");
    await waitForStats(
      admin,
      "late.test up",
      (s) => s.frontends[0]!.backends.some((b) => b.state === "UP"),
    );
    const readyNow = await fetch(`http://${LOOPBACK}:${admin}/ready`);
    assertEquals([readyNow.status, await readyNow.text()], [200, "ready\n"]);
    assertEquals(await whoAnswers(lb.port), "127.0.0.2");
  },
});

Deno.test({
  name: "lb reload (SIGHUP) re-plans names: a new name is followed, a removed one stops",
  ignore,
  async fn() {
    await using servers = greetingServers(["127.0.0.2", "127.0.0.3"]);
    const port = servers.port;
    await using dns = await startDnsmasq({ hosts: "127.0.0.2 one.test\n127.0.0.3 two.test\n" });
    const path = await Deno.makeTempFile({ prefix: "lb-dns-", suffix: ".json" });
    const write = (backends: string[]) =>
      Deno.writeTextFile(
        path,
        JSON.stringify({ frontends: [{ listen: `${LOOPBACK}:0`, backends }] }),
      );
    try {
      await write([`one.test:${port},weight=2`]);
      await using lb = await startLb([...lbArgs(dns.resolver), "--config", path]);
      const admin = await adminPort(lb);
      assertEquals(ids(await fetchStats(admin)), [`one.test:${port}/127.0.0.2`]);
      await write([`one.test:${port},weight=5`, `two.test:${port}`]);
      lb.child.kill("SIGHUP");
      const stats = await waitForStats(
        admin,
        "two.test in, one.test re-weighted",
        (s) => s.reloads.applied === 1 && s.frontends[0]!.backends.length === 2,
      );
      assertEquals(
        stats.frontends[0]!.backends.map((b) => [b.id, b.weight]),
        [[`one.test:${port}/127.0.0.2`, 5], [`two.test:${port}/127.0.0.3`, 1]],
      );
      assertEquals(stats.discovery.map((d) => d.name), [`one.test:${port}`, `two.test:${port}`]);
      await write([`two.test:${port}`]);
      lb.child.kill("SIGHUP");
      const last = await waitForStats(admin, "one.test gone", (s) => s.reloads.applied === 2);
      assertEquals(ids(last), [`two.test:${port}/127.0.0.3`]);
      assertEquals(last.discovery.map((d) => d.name), [`two.test:${port}`]);
    } finally {
      await Deno.remove(path);
    }
  },
});

Deno.test({
  name: "lb --check resolves every name: one that does not resolve exits 2 with one line",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: "127.0.0.2 web.test\n" });
    const resolver = `${dns.resolver.hostname}:${dns.resolver.port}`;
    const check = async (...args: string[]) => {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-net",
          "--allow-read",
          MAIN,
          "--check",
          "--resolver",
          resolver,
          ...args,
        ],
        stdin: "null",
      }).output();
      return { code, out: decoder.decode(stdout), err: decoder.decode(stderr) };
    };
    const bad = await check("-p", "web.test:80", "-p", "nope.test:80");
    assertEquals(bad.code, 2, bad.out + bad.err);
    const lines = bad.err.trimEnd().split("\n");
    assertEquals(lines.length, 1, bad.err);
    ok(/^lb: backend nope\.test:80 does not resolve: nxdomain: /.test(lines[0]!), bad.err);
    const good = await check("-p", "web.test:80", "-p", "127.0.0.1:81");
    assertEquals(good.code, 0, good.out + good.err);
    ok(
      good.out.includes("(1 frontend(s), 2 backend(s), 1 name(s) resolved to 1 address(es))"),
      good.out,
    );
  },
});

/** Servers on one port of several loopback addresses, each greeting with its address. */
interface GreetingServers extends AsyncDisposable {
  readonly port: number;
}

/**
 * Starts a server on each of `hosts`, all on the same port (a name's
 * addresses share the entry's port): each greets a connection with its
 * address and a newline, then echoes.
 */
function greetingServers(hosts: string[]): GreetingServers {
  for (let attempt = 0;; attempt++) {
    const listeners: Deno.TcpListener[] = [];
    try {
      const first = Deno.listen({ hostname: hosts[0]!, port: 0 });
      listeners.push(first);
      const port = (first.addr as Deno.NetAddr).port;
      for (const hostname of hosts.slice(1)) listeners.push(Deno.listen({ hostname, port }));
      return _serve(listeners, port);
    } catch (error) {
      for (const listener of listeners) closeQuietly(listener);
      if (!(error instanceof Deno.errors.AddrInUse) || attempt >= 20) throw error;
    }
  }
}

function _serve(listeners: Deno.TcpListener[], port: number): GreetingServers {
  const conns = new Set<Deno.TcpConn>();
  const handlers = new Set<Promise<void>>();
  const loops = listeners.map(async (listener) => {
    const greeting = encoder.encode(`${(listener.addr as Deno.NetAddr).hostname}\n`);
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      conns.add(conn);
      const done: Promise<void> = _greetAndEcho(conn, greeting).finally(() => {
        conns.delete(conn);
        closeQuietly(conn);
        handlers.delete(done);
      });
      handlers.add(done);
    }
  });
  return {
    port,
    async [Symbol.asyncDispose]() {
      for (const listener of listeners) closeQuietly(listener);
      await Promise.all(loops);
      for (const conn of conns) closeQuietly(conn);
      await Promise.all(handlers);
    },
  };
}

/** Reads one line (without its newline), a byte at a time so that nothing after it is taken. */
async function readLine(conn: Deno.Conn): Promise<string> {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  for (;;) {
    const n = await conn.read(one);
    if (n === null) {
      throw new Error(`EOF after ${JSON.stringify(decoder.decode(new Uint8Array(bytes)))}`);
    }
    if (one[0] === 0x0a) return decoder.decode(new Uint8Array(bytes));
    bytes.push(one[0]!);
  }
}

async function _greetAndEcho(conn: Deno.TcpConn, greeting: Uint8Array): Promise<void> {
  try {
    await writeAll(conn, greeting);
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      await writeAll(conn, buf.subarray(0, n));
    }
  } catch {
    // The client went away.
  }
}
