import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import type { Clock, TimerId } from "../../src/common/clock.ts";
import {
  type DiscoveredEndpoint,
  Discovery,
  type DiscoveryEntry,
  DiscoveryError,
  type DiscoveryOptions,
  resolveName,
} from "../../src/discovery/mod.ts";
import { freePort, LOOPBACK, waitUntil } from "../_helpers.ts";
import { type Dnsmasq, DNSMASQ_MISSING, startDnsmasq } from "./_dnsmasq.ts";

const ignore = DNSMASQ_MISSING !== undefined;

const WEB: DiscoveryEntry = { id: "web.test:80", kind: "host", name: "web.test", port: 80 };
const WEB_HOSTS = "10.0.0.1 web.test\n10.0.0.2 web.test\nfd00::1 web.test\n";
const WEB_SET: DiscoveredEndpoint[] = [
  { hostname: "10.0.0.1", port: 80 },
  { hostname: "10.0.0.2", port: 80 },
  { hostname: "fd00::1", port: 80 },
];

/** A clock whose timers run only when the test says so. */
class FakeClock implements Clock {
  #timers = new Map<number, () => void>();
  #next = 0;
  /** The delay of every timer set so far. */
  readonly delays: number[] = [];

  now(): number {
    return 0;
  }
  setTimeout(fn: () => void, ms: number): TimerId {
    this.#timers.set(++this.#next, fn);
    this.delays.push(ms);
    return this.#next;
  }
  clearTimeout(id: TimerId): void {
    this.#timers.delete(id as number);
  }
  get pending(): number {
    return this.#timers.size;
  }
  /** Runs every pending timer now. */
  fire(): void {
    const due = [...this.#timers.values()];
    this.#timers.clear();
    for (const fn of due) fn();
  }
}

/** What the callbacks of a Discovery saw. */
interface Seen {
  changes: [string, readonly DiscoveredEndpoint[]][];
  failures: [string, DiscoveryError][];
  recoveries: string[];
}

/** A Discovery on `dns` whose callbacks record into the returned `seen`. */
function watch(
  dns: Dnsmasq | undefined,
  options: Partial<DiscoveryOptions> = {},
): { discovery: Discovery; seen: Seen } {
  const seen: Seen = { changes: [], failures: [], recoveries: [] };
  const discovery = new Discovery({
    entries: [WEB],
    timeoutMs: 300,
    interval: 30,
    ...(dns === undefined ? {} : { resolvers: [dns.resolver] }),
    onChange: (id, endpoints) => seen.changes.push([id, endpoints]),
    onFailure: (id, error) => seen.failures.push([id, error]),
    onRecovery: (id) => seen.recoveries.push(id),
    ...options,
  });
  return { discovery, seen };
}

function status(discovery: Discovery, id = WEB.id) {
  const found = discovery.status().find((s) => s.id === id);
  assert(found !== undefined, `no status for ${id}`);
  return found;
}

/** Polls dnsmasq itself until `name` resolves to `expected`: the server has re-read its hosts. */
async function untilServed(dns: Dnsmasq, name: string, expected: string[]): Promise<void> {
  const options = { resolvers: [dns.resolver], timeoutMs: 300 };
  await waitUntil(
    async () =>
      JSON.stringify(await resolveName(name, options).catch(() => [])) ===
        JSON.stringify(expected),
    `dnsmasq to serve ${name} as ${expected}`,
  );
}

Deno.test({
  name: "Discovery resolves A and AAAA at start, reports the set once, and with interval 0 stops",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: WEB_HOSTS });
    const clock = new FakeClock();
    const { discovery, seen } = watch(dns, { interval: 0, clock });
    await using _ = discovery;
    await discovery.start();
    assertEquals(discovery.endpoints(WEB.id), WEB_SET);
    assertEquals(seen.changes, [[WEB.id, WEB_SET]]);
    const { lastLookup, ...rest } = status(discovery);
    assert(
      lastLookup !== null && !Number.isNaN(Date.parse(lastLookup)),
      `lastLookup ${lastLookup}`,
    );
    assertEquals(rest, {
      id: WEB.id,
      ok: true,
      error: null,
      endpoints: 3,
      lookups: { ok: 1, failed: 0 },
    });
    assertEquals(clock.pending, 0, "resolved once: nothing scheduled");
    assertEquals(discovery.counters().ok, 1);
  },
});

Deno.test({
  name: "Discovery makes higher SRV priorities backups and takes weights 0 as 1, capped at 1000",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({
      hosts: "10.1.0.1 a.test\n10.1.0.2 b.test\nfd00::2 b.test\n10.1.0.3 c.test\n10.1.0.4 d.test\n",
      args: [
        "--srv-host=_web._tcp.svc.test,a.test,8080,10,5",
        "--srv-host=_web._tcp.svc.test,b.test,8081,10,5000",
        "--srv-host=_web._tcp.svc.test,c.test,8082,20,0",
        "--srv-host=_web._tcp.svc.test,d.test,8083,30,7",
      ],
    });
    const entry: DiscoveryEntry = {
      id: "srv:_web._tcp.svc.test",
      kind: "srv",
      name: "_web._tcp.svc.test",
    };
    const { discovery, seen } = watch(dns, { entries: [entry], interval: 0 });
    await using _ = discovery;
    await discovery.start();
    const expected: DiscoveredEndpoint[] = [
      { hostname: "10.1.0.1", port: 8080, weight: 5, backup: false },
      { hostname: "10.1.0.2", port: 8081, weight: 1000, backup: false },
      { hostname: "fd00::2", port: 8081, weight: 1000, backup: false },
      { hostname: "10.1.0.3", port: 8082, weight: 1, backup: true },
      { hostname: "10.1.0.4", port: 8083, weight: 7, backup: true },
    ];
    assertEquals(discovery.endpoints(entry.id), expected);
    assertEquals(seen.changes, [[entry.id, expected]]);
  },
});

Deno.test({
  name: "Discovery calls onChange with the new set when the answer changes",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: WEB_HOSTS });
    const { discovery, seen } = watch(dns);
    await using _ = discovery;
    await discovery.start();
    await dns.setHosts("10.0.0.10 web.test\n10.0.0.2 web.test\n10.0.0.3 web.test\n");
    await waitUntil(() => seen.changes.length === 2, "onChange for the new answer");
    assertEquals(seen.changes[1], [WEB.id, [
      { hostname: "10.0.0.2", port: 80 },
      { hostname: "10.0.0.3", port: 80 },
      { hostname: "10.0.0.10", port: 80 },
    ]]);
    assertEquals(discovery.endpoints(WEB.id), seen.changes[1]![1]);
    assertEquals(seen.failures, []);
  },
});

Deno.test({
  name: "Discovery does not call onChange for an identical answer, in any order",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: WEB_HOSTS });
    const { discovery, seen } = watch(dns);
    await using _ = discovery;
    await discovery.start();
    await waitUntil(() => status(discovery).lookups.ok >= 4, "four good lookups");
    await dns.setHosts("fd00::1 web.test\n10.0.0.2 web.test\n10.0.0.1 web.test\n");
    const after = status(discovery).lookups.ok;
    await waitUntil(() => status(discovery).lookups.ok >= after + 4, "four more good lookups");
    assertEquals(seen.changes.length, 1);
    assertEquals(discovery.endpoints(WEB.id), WEB_SET);
  },
});

Deno.test({
  name: "Discovery keeps the last good set while the server is dead, reports once per streak",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: WEB_HOSTS });
    const { discovery, seen } = watch(dns, { timeoutMs: 100 });
    await using _ = discovery;
    await discovery.start();

    await dns.kill();
    await waitUntil(() => status(discovery).lookups.failed >= 3, "three failed lookups");
    assertEquals(seen.failures.length, 1, "reported once for the streak");
    assertEquals(seen.failures[0]![1].reason, "timeout");
    assertEquals(discovery.endpoints(WEB.id), WEB_SET);
    const down = status(discovery);
    assertEquals([down.ok, down.endpoints, down.error?.startsWith("timeout: ")], [false, 3, true]);
    assert(discovery.counters().timeout >= 3);

    await dns.restart();
    await waitUntil(() => status(discovery).ok, "a good lookup after the restart");
    assertEquals(seen.recoveries, [WEB.id]);
    assertEquals(status(discovery).error, null);

    await dns.kill();
    await waitUntil(() => seen.failures.length === 2, "the second streak reported");
    assertEquals(seen.changes.length, 1, "the set never changed");
  },
});

Deno.test({
  name: "Discovery keeps the last good set when the name disappears (NXDOMAIN)",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: WEB_HOSTS });
    const { discovery, seen } = watch(dns);
    await using _ = discovery;
    await discovery.start();
    await dns.setHosts("10.0.0.9 other.test\n");
    await waitUntil(() => status(discovery).lookups.failed >= 3, "three failed lookups");
    assertEquals(seen.failures.map(([id, error]) => [id, error.reason]), [[WEB.id, "nxdomain"]]);
    assertEquals(discovery.endpoints(WEB.id), WEB_SET);
    assertEquals(seen.changes.length, 1);
    assert(discovery.counters().nxdomain >= 3);
  },
});

Deno.test({
  name: "Discovery keeps trying a name that never resolved, even with interval 0",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: "10.0.0.9 other.test\n" });
    const clock = new FakeClock();
    const { discovery, seen } = watch(dns, { interval: 0, retryInterval: 5000, clock });
    await using _ = discovery;
    await discovery.start();
    assertEquals(discovery.endpoints(WEB.id), []);
    assertEquals([status(discovery).ok, status(discovery).endpoints], [false, 0]);
    assertEquals(seen.failures.length, 1);
    assertEquals([clock.pending, clock.delays], [1, [5000]]);

    await dns.setHosts(WEB_HOSTS);
    await untilServed(dns, "web.test", ["10.0.0.1", "10.0.0.2", "fd00::1"]);
    clock.fire();
    await waitUntil(() => seen.changes.length === 1, "onChange after the retry");
    assertEquals(seen.changes[0], [WEB.id, WEB_SET]);
    assertEquals(seen.recoveries, [WEB.id]);
    await waitUntil(() => clock.pending === 0, "nothing scheduled once resolved");
  },
});

Deno.test("Discovery.stop cancels lookups in flight and calls nothing after", async () => {
  const dead = { hostname: LOOPBACK, port: freePort() };
  const { discovery, seen } = watch(undefined, { resolvers: [dead], timeoutMs: 30_000 });
  const started = performance.now();
  const first = discovery.start();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await discovery.stop();
  await first;
  assert(performance.now() - started < 2000, "stopped at once");
  assertEquals(seen, { changes: [], failures: [], recoveries: [] });
  assertEquals(status(discovery).lastLookup, null);
  await discovery.stop();
});

Deno.test("Discovery rejects bad entries and options up front", async (t) => {
  const make = (options: Partial<DiscoveryOptions>) => () =>
    new Discovery({ entries: [WEB], ...options });
  await t.step("a host entry without a port", () => {
    throws(make({ entries: [{ id: "a", kind: "host", name: "a.test" }] }), RangeError);
  });
  await t.step("an SRV entry with a port", () => {
    throws(
      make({ entries: [{ id: "s", kind: "srv", name: "_a._tcp.a.test", port: 80 }] }),
      RangeError,
    );
  });
  await t.step("an unknown kind", () => {
    const entry = { id: "x", kind: "mx", name: "a.test" } as unknown as DiscoveryEntry;
    throws(make({ entries: [entry] }), TypeError);
  });
  await t.step("the same id twice", () => {
    throws(make({ entries: [WEB, WEB] }), RangeError);
  });
  await t.step("a negative interval", () => {
    throws(make({ interval: -1 }), RangeError);
  });
  await t.step("a resolver that is not an IP address", () => {
    throws(make({ resolvers: [{ hostname: "dns.test", port: 53 }] }), RangeError);
  });
  await t.step("an unknown id", () => {
    throws(() => make({})().endpoints("nope"), RangeError);
  });
});
