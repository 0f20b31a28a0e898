import { deepEqual, equal, ok as assert } from "node:assert/strict";
import type { HostPort } from "../../src/common/address.ts";
import { Backend } from "../../src/balancing/backend.ts";
import type { Clock, TimerId } from "../../src/common/clock.ts";
import type { HealthConfig } from "../../src/config/config.ts";
import { Health, HealthChecker, type Probe, tcpProbe } from "../../src/balancing/health.ts";
import { Logger } from "../../src/observability/log.ts";

/** A clock that moves only when told; timers fire in order as it passes them. */
class FakeClock implements Clock {
  #now = 0;
  #next = 1;
  #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, fn });
    return id;
  }

  clearTimeout(id: TimerId): void {
    this.#timers.delete(id as number);
  }

  /** Timers not yet fired or cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing due timers and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await settle();
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= target && (!due || entry[1].at < due[1].at)) due = entry;
      }
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].fn();
    }
    this.#now = target;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

type State = "up" | "down" | "hang";

/** A probe whose answer per port the test sets; counts calls. */
function fakeProbe(states: Map<number, State>) {
  const calls: number[] = [];
  const probe: Probe = (addr: HostPort, signal: AbortSignal) => {
    calls.push(addr.port);
    const state = states.get(addr.port) ?? "up";
    if (state === "up") return Promise.resolve();
    if (state === "down") return Promise.reject(new Error("Connection refused"));
    return new Promise((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  };
  return { probe, calls };
}

function backend(port: number): Backend {
  return new Backend({ hostname: "127.0.0.1", port, weight: 1, backup: false, maxConn: 0 });
}

function setup(config: Partial<HealthConfig> = {}, ports = [8101, 8102]) {
  const lines: string[] = [];
  const full: HealthConfig = { interval: 1000, timeout: 500, rise: 2, fall: 3, ...config };
  const health = new Health(full, new Logger((line) => lines.push(line)));
  const clock = new FakeClock();
  const states = new Map<number, State>();
  const { probe, calls } = fakeProbe(states);
  let backends = ports.map(backend);
  const checker = new HealthChecker(() => backends, health, { clock, probe });
  return {
    lines,
    health,
    clock,
    states,
    calls,
    checker,
    get backends() {
      return backends;
    },
    swap(next: Backend[]) {
      backends = next;
    },
  };
}

Deno.test("HealthChecker checks every backend at start, then once per interval", async () => {
  const t = setup();
  t.checker.start();
  await t.clock.advance(0);
  deepEqual(t.calls, [8101, 8102]);
  await t.clock.advance(999);
  equal(t.calls.length, 2);
  await t.clock.advance(1);
  equal(t.calls.length, 4);
  await t.clock.advance(3000);
  equal(t.calls.length, 10);
  await t.checker.stop();
});

Deno.test("HealthChecker takes a backend down after exactly `fall` failed checks, logged once", async () => {
  const t = setup({ fall: 3 });
  t.states.set(8101, "down");
  t.checker.start();
  await t.clock.advance(0);
  await t.clock.advance(1000);
  equal(t.backends[0]!.healthy, true, "down after 2 failures with fall 3");
  equal(t.backends[0]!.health.failStreak, 2);
  await t.clock.advance(1000);
  equal(t.backends[0]!.healthy, false);
  equal(t.backends[1]!.healthy, true);
  await t.clock.advance(5000);
  const down = t.lines.filter((l) => /health: backend 127\.0\.0\.1:8101 is down/.test(l));
  equal(down.length, 1, t.lines.join("\n"));
  assert(/3 failures in a row, last: check: Connection refused/.test(down[0]!), down[0]);
  equal(t.lines.length, 1, t.lines.join("\n"));
  await t.checker.stop();
});

Deno.test("HealthChecker brings a backend back after exactly `rise` good checks, logged once", async () => {
  const t = setup({ fall: 1, rise: 2 });
  t.states.set(8101, "down");
  t.checker.start();
  await t.clock.advance(0);
  equal(t.backends[0]!.healthy, false);
  t.states.set(8101, "up");
  await t.clock.advance(1000);
  equal(t.backends[0]!.healthy, false, "up after 1 success with rise 2");
  await t.clock.advance(1000);
  equal(t.backends[0]!.healthy, true);
  await t.clock.advance(5000);
  deepEqual(
    t.lines.map((l) => l.replace(/^\S+ /, "").replace(/ \(.*$/, "")),
    ["health: backend 127.0.0.1:8101 is down", "health: backend 127.0.0.1:8101 is up"],
  );
  await t.checker.stop();
});

Deno.test("HealthChecker fails a check that outlasts the timeout and records its duration", async () => {
  const t = setup({ interval: 1000, timeout: 300, fall: 1 });
  t.states.set(8101, "hang");
  t.checker.start();
  await t.clock.advance(0);
  equal(t.backends[1]!.health.lastCheckMs, 0);
  await t.clock.advance(299);
  equal(t.backends[0]!.health.failStreak, 0);
  equal(t.backends[0]!.health.lastCheckMs, -1);
  await t.clock.advance(1);
  equal(t.backends[0]!.healthy, false);
  equal(t.backends[0]!.health.lastCheckMs, 300);
  assert(t.lines.some((l) => /8101 is down .*timed out after 300ms/.test(l)), t.lines.join("\n"));
  await t.checker.stop();
});

Deno.test("HealthChecker does not start a second check of a backend while one is running", async () => {
  const t = setup({ interval: 100, timeout: 1000 });
  t.states.set(8101, "hang");
  t.checker.start();
  await t.clock.advance(950);
  equal(t.calls.filter((p) => p === 8101).length, 1);
  equal(t.calls.filter((p) => p === 8102).length, 10);
  await t.clock.advance(100); // the hung check timed out at 1000; checked again at 1000
  equal(t.calls.filter((p) => p === 8101).length, 2);
  await t.checker.stop();
});

Deno.test("HealthChecker follows the backends function when the pool is swapped", async () => {
  const t = setup();
  t.checker.start();
  await t.clock.advance(0);
  t.swap([backend(9001)]);
  await t.clock.advance(1000);
  deepEqual(t.calls, [8101, 8102, 9001]);
  await t.checker.stop();
});

Deno.test("HealthChecker.stop clears every timer and aborts checks in flight without reporting", async () => {
  const t = setup({ fall: 1 });
  t.states.set(8101, "hang");
  t.checker.start();
  await t.clock.advance(10);
  assert(t.clock.pending > 0);
  await t.checker.stop();
  equal(t.clock.pending, 0);
  equal(t.checker.running, false);
  equal(t.backends[0]!.healthy, true);
  equal(t.backends[0]!.health.failStreak, 0);
  await t.clock.advance(10_000);
  equal(t.calls.length, 2);
});

Deno.test("HealthChecker with interval 0 never checks", async () => {
  const t = setup({ interval: 0 });
  t.checker.start();
  await t.clock.advance(10_000);
  equal(t.calls.length, 0);
  equal(t.checker.running, false);
  equal(t.clock.pending, 0);
  await t.checker.stop();
});

Deno.test("Health.report takes a backend down on the `fall`-th failed connect at once", () => {
  const lines: string[] = [];
  const health = new Health(
    { interval: 2000, timeout: 1000, rise: 2, fall: 2 },
    new Logger((l) => lines.push(l)),
  );
  const b = backend(8101);
  health.report(b, false, "Connection refused");
  equal(b.healthy, true);
  health.report(b, true);
  health.report(b, false, "Connection refused");
  equal(b.healthy, true, "a success in between resets the streak");
  health.report(b, false, "Connection refused");
  equal(b.healthy, false);
  equal(lines.length, 1);
});

Deno.test("Health.report never takes a backend down when active checks are off", () => {
  const lines: string[] = [];
  const health = new Health(
    { interval: 0, timeout: 1000, rise: 2, fall: 1 },
    new Logger((l) => lines.push(l)),
  );
  const b = backend(8101);
  for (let i = 0; i < 5; i++) health.report(b, false, "Connection refused");
  equal(b.healthy, true);
  equal(b.health.failStreak, 5);
  equal(lines.length, 0);
});

/** A listener that accepts and closes every connection until closed. */
function acceptor(port = 0) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const done = (async () => {
    try {
      for await (const conn of listener) conn.close();
    } catch {
      // Closed.
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await done;
    },
  };
}

async function until(what: string, cond: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("tcpProbe resolves for a listening port and rejects for a closed one", async () => {
  const server = acceptor();
  const addr = { hostname: "127.0.0.1", port: server.port };
  await tcpProbe(addr, new AbortController().signal);
  await server.close();
  let failed = false;
  await tcpProbe(addr, new AbortController().signal).catch(() => failed = true);
  equal(failed, true);
});

Deno.test("HealthChecker marks a real listener down when it closes and up when it reopens", async () => {
  let server = acceptor();
  const port = server.port;
  const lines: string[] = [];
  const config: HealthConfig = { interval: 50, timeout: 1000, rise: 2, fall: 2 };
  const health = new Health(config, new Logger((l) => lines.push(l)));
  const b = backend(port);
  const checker = new HealthChecker(() => [b], health);
  checker.start();
  try {
    await until("first check", () => b.health.lastCheckMs >= 0);
    equal(b.healthy, true);
    await server.close();
    await until("down", () => !b.healthy);
    assert(b.health.failStreak >= 2);
    server = acceptor(port);
    await until("up", () => b.healthy);
    equal(lines.filter((l) => /is down/.test(l)).length, 1, lines.join("\n"));
    equal(lines.filter((l) => /is up/.test(l)).length, 1, lines.join("\n"));
  } finally {
    await checker.stop();
    await server.close();
  }
});
