/**
 * End to end through main.ts: health checks taking a killed backend out and
 * back, per-backend maxconn, --idle-timeout, --max-conns backpressure, and
 * every backend down then one back.
 * @module
 */
import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { type LbProcess, startLb } from "../support/lb_process.ts";
import {
  adminPort,
  backendStats,
  closeQuietly,
  delay,
  fetchStats,
  LOOPBACK,
  waitForStats,
  waitUntil,
  withTimeout,
  writeAll,
} from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A backend that greets each connection with `NAME\n` at once, then echoes.
 * It can be killed (listener and connections closed) and revived on the
 * same port, and counts what it saw.
 */
class NamedBackend implements AsyncDisposable {
  readonly name: string;
  port = 0;
  /** Connections accepted (client connections and health checks). */
  accepted = 0;
  /** Connections on which the client sent bytes: real clients, not checks. */
  served = 0;
  /** `Date.now()` of each served connection's first bytes. */
  servedAt: number[] = [];
  /** Connections open now, and the most at once. */
  open = 0;
  maxOpen = 0;
  #listener: Deno.TcpListener | undefined;
  #accepting: Promise<void> = Promise.resolve();
  #conns = new Set<Deno.TcpConn>();
  #handlers = new Set<Promise<void>>();

  constructor(name: string) {
    this.name = name;
    this.revive();
  }

  /** Listens again, on the same port after the first time. */
  revive(): void {
    const listener = Deno.listen({ hostname: LOOPBACK, port: this.port });
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#accepting = (async () => {
      for (;;) {
        let conn: Deno.TcpConn;
        try {
          conn = await listener.accept();
        } catch {
          return; // closed
        }
        const done: Promise<void> = this.#handle(conn).finally(() => this.#handlers.delete(done));
        this.#handlers.add(done);
      }
    })();
  }

  /** Stops listening and closes every connection: connects are refused from now. */
  async kill(): Promise<void> {
    if (this.#listener) closeQuietly(this.#listener);
    this.#listener = undefined;
    await this.#accepting;
    for (const conn of this.#conns) closeQuietly(conn);
    await Promise.all(this.#handlers);
  }

  async #handle(conn: Deno.TcpConn): Promise<void> {
    this.accepted++;
    this.open++;
    this.maxOpen = Math.max(this.maxOpen, this.open);
    this.#conns.add(conn);
    try {
      await writeAll(conn, encoder.encode(`${this.name}\n`));
      const buf = new Uint8Array(4096);
      let first = true;
      for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
        if (first) {
          first = false;
          this.served++;
          this.servedAt.push(Date.now());
        }
        await writeAll(conn, buf.subarray(0, n));
      }
    } catch {
      // A health check that hung up, or killed: nothing to do.
    } finally {
      this.open--;
      this.#conns.delete(conn);
      closeQuietly(conn);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/** Reads up to the first newline; null on EOF or error before one. */
async function readLine(conn: Deno.Conn): Promise<string | null> {
  let text = "";
  const buf = new Uint8Array(256);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return null;
      text += decoder.decode(buf.subarray(0, n));
      const end = text.indexOf("\n");
      if (end >= 0) return text.slice(0, end);
    }
  } catch {
    return null;
  }
}

/** Reads and drops bytes until EOF or an error. */
async function untilClosed(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(256);
  try {
    while (await conn.read(buf) !== null) { /* drop */ }
  } catch {
    // Reset: closed too.
  }
}

/** One short client through lb: sends a line, returns the backend's name, or null when closed. */
async function hello(port: number): Promise<string | null> {
  using conn = await Deno.connect({ hostname: LOOPBACK, port });
  try {
    await writeAll(conn, encoder.encode("hi\n"));
  } catch {
    return null;
  }
  return await withTimeout(readLine(conn), 10_000, "a greeting through lb");
}

/** A client that stays open: connected, greeted, and its backend's name. */
async function openClient(port: number): Promise<{ conn: Deno.TcpConn; name: string | null }> {
  const conn = await Deno.connect({ hostname: LOOPBACK, port });
  await writeAll(conn, encoder.encode("hi\n"));
  return { conn, name: await withTimeout(readLine(conn), 10_000, "a greeting through lb") };
}

/** The ISO time at the start of an lb log line, as ms. */
function logTime(line: string): number {
  return Date.parse(line.split(" ")[0]!);
}

/** The one stderr line matching `pattern`, once lb has exited (its whole log is in). */
function logLine(lb: LbProcess, pattern: RegExp): string {
  const lines = lb.stderr.filter((l) => pattern.test(l));
  equal(lines.length, 1, `${pattern}:\n${lb.stderr.join("\n")}`);
  return lines[0]!;
}

/** Waits until `/stats` shows `backend` in `state` (UP, DOWN or DRAIN). */
function waitForState(admin: number, backend: NamedBackend, state: string): Promise<unknown> {
  const id = `${LOOPBACK}:${backend.port}`;
  return waitForStats(admin, `${id} ${state}`, (s) => backendStats(s, id).state === state);
}

/** lb in front of `backends`, with the admin endpoint (`/stats`) on a free port. */
const lbArgs = (...backends: NamedBackend[]) => [
  "-f",
  `${LOOPBACK}:0`,
  "--log",
  "off",
  "--admin",
  `${LOOPBACK}:0`,
  ...backends.flatMap((b) => ["-p", `${LOOPBACK}:${b.port}`]),
];

Deno.test("lb takes a backend killed under traffic out after `fall` and back only after `rise` checks", async () => {
  await using a = new NamedBackend("a");
  await using b = new NamedBackend("b");
  await using lb = await startLb([
    ...lbArgs(a, b),
    "--health-interval",
    "300ms",
    "--health-timeout",
    "1s",
    "--fall",
    "2",
    "--rise",
    "3",
  ]);
  const admin = await adminPort(lb);
  const results: (string | null)[] = [];
  let stop = false;
  const killWindow = [-1, -1];
  let servedBefore = 0;
  let revived = 0;
  const traffic = (async () => {
    const deadline = Date.now() + 40_000;
    for (let i = 0; i < 2000 && !stop && Date.now() < deadline; i++) {
      results.push(await hello(lb.port));
      await delay(10);
    }
  })();
  try {
    await waitUntil(() => a.served >= 5 && b.served >= 5, "traffic on both backends");
    // Requests on a while it dies (the loop is sequential: the one in flight, and any
    // that reached its socket before the kernel closed it) may fail.
    killWindow[0] = results.length;
    await a.kill();
    killWindow[1] = results.length;
    await waitForState(admin, a, "DOWN");
    const atDown = results.length;
    await waitUntil(() => results.length >= atDown + 20, "traffic while a is down");

    const probesBefore = a.accepted;
    servedBefore = a.served;
    revived = Date.now();
    a.revive();
    await waitForState(admin, a, "UP");
    assert(a.accepted - probesBefore >= 3, "up before three good checks");
    await waitUntil(() => a.served >= servedBefore + 5, "traffic back on a");
  } finally {
    stop = true;
    await traffic;
  }
  // The log line of each change carries its time: assert on them once lb has exited.
  equal((await lb.stop()).code, 0);
  const down = logLine(lb, new RegExp(`backend ${LOOPBACK}:${a.port} is down`));
  assert(/2 failures in a row/.test(down), down);
  const up = logLine(lb, new RegExp(`backend ${LOOPBACK}:${a.port} is up`));
  // rise=3 checks 300ms apart: at least ~600ms listening before lb trusts it again.
  assert(logTime(up) - revived >= 400, `${logTime(up) - revived}ms`);
  // While it listened but was still down, no client was sent to it.
  const early = a.servedAt.slice(servedBefore).filter((t) => t < logTime(up));
  deepEqual(early, [], "clients reached a before it was up");
  // Retries hid the dead backend: every client was served, but for those whose
  // connection a already held while it was being killed (no balancer can save them).
  const [from, to] = killWindow as [number, number];
  const failed = results.flatMap((r, i) => r === null ? [i] : []);
  assert(failed.every((i) => i >= from && i <= to), `failed: ${failed}, kill window ${from}-${to}`);
  assert(results.length > 60, String(results.length));
  equal(lb.stderr.filter((l) => /is down/.test(l)).length, 1, lb.stderr.join("\n"));
  equal(lb.stderr.filter((l) => /is up/.test(l)).length, 1, lb.stderr.join("\n"));
});

Deno.test("lb with no traffic takes a killed backend down only after `fall` failed checks", async () => {
  await using a = new NamedBackend("a");
  await using b = new NamedBackend("b");
  await using lb = await startLb([
    ...lbArgs(a, b),
    "--health-interval",
    "300ms",
    "--fall",
    "3",
  ]);
  const admin = await adminPort(lb);
  await waitUntil(() => a.accepted >= 2, "two checks of a");
  const killed = Date.now();
  await a.kill();
  await waitForState(admin, a, "DOWN");
  equal(await hello(lb.port), "b");
  equal((await lb.stop()).code, 0);
  const down = logLine(lb, new RegExp(`backend ${LOOPBACK}:${a.port} is down`));
  assert(/3 failures in a row, last: check: /.test(down), down);
  // The third failed check comes two intervals after the first one at the earliest.
  assert(logTime(down) - killed >= 500, `down ${logTime(down) - killed}ms after the kill`);
  equal(lb.stderr.filter((l) => /is (down|up)/.test(l)).length, 1, lb.stderr.join("\n"));
});

Deno.test("lb never opens more than a backend's maxconn, even for a burst", async () => {
  await using a = new NamedBackend("a");
  await using b = new NamedBackend("b");
  await using lb = await startLb([
    "-f",
    `${LOOPBACK}:0`,
    "--log",
    "off",
    "--health-interval",
    "0",
    "-p",
    `${LOOPBACK}:${a.port},maxconn=2`,
    "-p",
    `${LOOPBACK}:${b.port}`,
  ]);
  const clients = await Promise.all(Array.from({ length: 10 }, () => openClient(lb.port)));
  try {
    equal(clients.filter((c) => c.name === null).length, 0);
    equal(clients.filter((c) => c.name === "a").length, 2);
    equal(clients.filter((c) => c.name === "b").length, 8);
    equal(a.maxOpen, 2);
    // Once one of a's connections ends, a takes new ones again.
    closeQuietly(clients.find((c) => c.name === "a")!.conn);
    await waitUntil(() => a.open === 1, "a's connection closed");
    const names = [];
    for (let i = 0; i < 4; i++) names.push(await hello(lb.port));
    assert(names.includes("a"), String(names));
    equal(a.maxOpen, 2);
  } finally {
    for (const c of clients) closeQuietly(c.conn);
  }
});

Deno.test("lb --idle-timeout closes an idle connection but not a busy one", async () => {
  await using a = new NamedBackend("a");
  await using lb = await startLb([
    ...lbArgs(a),
    "--health-interval",
    "0",
    "--idle-timeout",
    "500ms",
  ]);
  const idle = await openClient(lb.port);
  // The busy client sends nothing before the greeting, so every later read is an echo.
  const busy = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  try {
    const opened = Date.now();
    const idleEnd = untilClosed(idle.conn).then(() => Date.now());
    // The busy client sends a byte every 100ms for 2s and gets each echoed.
    let echoed = 0;
    const buf = new Uint8Array(16);
    equal(await withTimeout(readLine(busy), 5000, "greeting"), "a");
    for (let i = 0; i < 20; i++) {
      await writeAll(busy, encoder.encode("x"));
      const n = await withTimeout(busy.read(buf), 5000, "echo from the busy connection");
      if (n === null) break;
      echoed += n;
      await delay(100);
    }
    equal(echoed, 20, "the busy connection was cut");
    const closedAfter = (await withTimeout(idleEnd, 10_000, "idle connection closed")) - opened;
    assert(closedAfter >= 400, `idle connection closed after ${closedAfter}ms`);
    assert(closedAfter < 5000, `idle connection still open after ${closedAfter}ms`);
  } finally {
    closeQuietly(idle.conn);
    closeQuietly(busy);
  }
});

Deno.test("lb --max-conns leaves extra clients in the backlog, then serves them", async () => {
  await using a = new NamedBackend("a");
  await using lb = await startLb([...lbArgs(a), "--health-interval", "0", "--max-conns", "2"]);
  const admin = await adminPort(lb);
  const first = await openClient(lb.port);
  const second = await openClient(lb.port);
  // The kernel completes the handshake; lb does not accept it yet.
  const third = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  try {
    equal(first.name, "a");
    equal(second.name, "a");
    const greeting = readLine(third);
    const early = await Promise.race([greeting, delay(1000).then(() => "none yet")]);
    equal(early, "none yet", "the third client got bytes past --max-conns");
    equal(a.accepted, 2);
    closeQuietly(first.conn);
    equal(await withTimeout(greeting, 10_000, "third client served"), "a");
    equal(a.accepted, 3);
    // Not accepted-then-dropped: it was never refused for want of a backend.
    equal((await fetchStats(admin)).frontends[0]!.ended["no-backend"], 0);
    await writeAll(third, encoder.encode("ping\n"));
  } finally {
    closeQuietly(second.conn);
    closeQuietly(third);
  }
});

Deno.test("lb closes clients at once while every backend is down and resumes when one is back", async () => {
  await using a = new NamedBackend("a");
  await using b = new NamedBackend("b");
  await using lb = await startLb([
    ...lbArgs(a, b),
    "--health-interval",
    "200ms",
    "--fall",
    "1",
    "--rise",
    "1",
  ]);
  const admin = await adminPort(lb);
  equal(await hello(lb.port), "a");
  await a.kill();
  await b.kill();
  await waitForState(admin, a, "DOWN");
  await waitForState(admin, b, "DOWN");
  const started = Date.now();
  equal(await hello(lb.port), null);
  assert(Date.now() - started < 3000, "the client was left hanging");
  await waitForStats(admin, "a no-backend ending", (s) => s.frontends[0]!.ended["no-backend"] >= 1);
  b.revive();
  await waitForState(admin, b, "UP");
  equal(await hello(lb.port), "b");
  equal(await hello(lb.port), "b");
});
