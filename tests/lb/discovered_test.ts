import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { Backend } from "../../src/balancing/backend.ts";
import { Health } from "../../src/balancing/health.ts";
import { ConfigError } from "../../src/common/errors.ts";
import type { Config } from "../../src/config/config.ts";
import { parseConfigText } from "../../src/config/file.ts";
import { checkNames, DiscoveredBackends } from "../../src/lb/discovered.ts";
import { Lb } from "../../src/lb/lb.ts";
import { followDiscovery, planPool, reload } from "../../src/lb/reload.ts";
import { Logger } from "../../src/observability/log.ts";
import { freePort, LOOPBACK, waitUntil } from "../_helpers.ts";
import { type Dnsmasq, DNSMASQ_MISSING, startDnsmasq } from "../discovery/_dnsmasq.ts";

const ignore = DNSMASQ_MISSING !== undefined;
const HOSTS = "10.0.0.1 web.test\n10.0.0.2 web.test\nfd00::1 web.test\n10.0.0.9 spare.test\n";
const SRV = [
  "--srv-host=_web._tcp.svc.test,web.test,8080,10,5",
  "--srv-host=_web._tcp.svc.test,spare.test,8081,20,1",
];

/** A config on `dns` (or no server) with `backends` in one frontend. */
function configOn(dns: Dnsmasq | undefined, backends: unknown[], more: object = {}): Config {
  return parseConfigText(
    JSON.stringify({
      frontends: [{ name: "web", listen: `${LOOPBACK}:0`, backends }],
      health: { interval: 0 },
      resolveInterval: 0,
      ...(dns ? { resolvers: [`${dns.resolver.hostname}:${dns.resolver.port}`] } : {}),
      ...more,
    }),
    "test",
  );
}

Deno.test({
  name: "DiscoveredBackends.expand gives one backend per address with the entry's options and " +
    "the id NAME:PORT/ADDRESS; SRV gives weights and backups; addresses stay",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: HOSTS, args: SRV });
    const config = configOn(dns, [
      "web.test:80,maxconn=7,proxy=v2",
      "10.0.0.5:81",
      { srv: "_web._tcp.svc.test", maxConn: 3 },
    ]);
    const lines: string[] = [];
    await using discovered = await DiscoveredBackends.start(
      config,
      new Logger((line) => lines.push(line)),
    );
    const expanded = discovered.expand(config.frontends[0]!);
    const shape = (b: Config["frontends"][0]["backends"][0]) => [
      b.id ?? null,
      b.hostname,
      b.port,
      b.weight,
      b.backup,
      b.maxConn,
      b.proxy ?? null,
    ];
    assertEquals(expanded.backends.map(shape), [
      ["web.test:80/10.0.0.1", "10.0.0.1", 80, 1, false, 7, "v2"],
      ["web.test:80/10.0.0.2", "10.0.0.2", 80, 1, false, 7, "v2"],
      ["web.test:80/fd00::1", "fd00::1", 80, 1, false, 7, "v2"],
      [null, "10.0.0.5", 81, 1, false, 0, null],
      ["srv:_web._tcp.svc.test/10.0.0.1:8080", "10.0.0.1", 8080, 5, false, 3, null],
      ["srv:_web._tcp.svc.test/10.0.0.2:8080", "10.0.0.2", 8080, 5, false, 3, null],
      ["srv:_web._tcp.svc.test/[fd00::1]:8080", "fd00::1", 8080, 5, false, 3, null],
      ["srv:_web._tcp.svc.test/10.0.0.9:8081", "10.0.0.9", 8081, 1, true, 3, null],
    ]);
    assertEquals(expanded.backends.some((b) => b.srv), false, "no entry is left as a name");
    assertEquals(config.frontends[0]!.backends.length, 3, "the config is not changed");
    ok(
      lines.some((l) => l.endsWith("discovery: web.test:80 -> 10.0.0.1, 10.0.0.2, fd00::1")),
      lines.join("\n"),
    );
    const stats = discovered.stats();
    assertEquals(stats.map((s) => [s.name, s.result, s.error, s.endpoints.length]), [
      ["web.test:80", "ok", null, 3],
      ["srv:_web._tcp.svc.test", "ok", null, 4],
    ]);
    assertEquals(stats[0]!.lookups.ok, 1);

    // Over TLS, the addresses of a host entry are verified for its name (unless tls-name says).
    const tls = configOn(dns, ["web.test:443,tls", "web.test:8443,tls,tls-name=api.example"]);
    await using overTls = await DiscoveredBackends.start(tls, new Logger(() => {}));
    const names = overTls.expand(tls.frontends[0]!).backends.map((b) => [b.hostname, b.tlsName]);
    assertEquals(names.slice(0, 1), [["10.0.0.1", "web.test"]]);
    assertEquals(names.slice(3, 4), [["10.0.0.1", "api.example"]]);
  },
});

Deno.test({
  name: "DiscoveredBackends: a name that does not resolve has no backend, is logged once, and " +
    "checkNames refuses it",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: HOSTS });
    const config = configOn(dns, ["nope.test:80", "10.0.0.5:81"]);
    const lines: string[] = [];
    await using discovered = await DiscoveredBackends.start(
      config,
      new Logger((line) => lines.push(line)),
      { retryInterval: 20 },
    );
    assertEquals(discovered.expand(config.frontends[0]!).backends.map((b) => b.hostname), [
      "10.0.0.5",
    ]);
    await waitUntil(() => discovered.stats()[0]!.lookups.nxdomain! >= 3, "three failed tries");
    assertEquals(discovered.stats()[0]!.result, "failed");
    const failed = lines.filter((l) => l.includes("nope.test:80: lookup failed"));
    assertEquals(failed.length, 1, lines.join("\n"));
    ok(failed[0]!.includes("no address yet, still trying: nxdomain: "), failed[0]);

    await rejects(
      () => checkNames(config),
      (error: Error) =>
        error instanceof ConfigError &&
        /^backend nope\.test:80 does not resolve: nxdomain: /.test(error.message),
    );
    assertEquals(await checkNames(configOn(dns, ["web.test:80", "10.0.0.5:1"])), {
      names: 1,
      addresses: 3,
    });
  },
});

Deno.test({
  name: "DiscoveredBackends.prepare keeps a kept name's watch, starts new ones, and when the " +
    "servers change passes the last good set on even if the new ones fail",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: HOSTS });
    const config = configOn(dns, ["web.test:80"]);
    await using discovered = await DiscoveredBackends.start(config, new Logger(() => {}), {
      timeoutMs: 300,
    });
    const before = discovered.stats();

    const more = configOn(dns, ["web.test:80", "spare.test:81"]);
    const update = await discovered.prepare(more);
    assertEquals(update.expand(more.frontends[0]!).backends.map((b) => b.id), [
      "web.test:80/10.0.0.1",
      "web.test:80/10.0.0.2",
      "web.test:80/fd00::1",
      "spare.test:81/10.0.0.9",
    ]);
    assertEquals(discovered.size, 1, "nothing changes before commit");
    await update.commit();
    assertEquals(discovered.size, 2);
    assertEquals(discovered.stats()[0]!.lastLookup, before[0]!.lastLookup, "the same watch");

    const aborted = await discovered.prepare(configOn(dns, ["other.test:1"]));
    await aborted.abort();
    assertEquals(discovered.stats().map((s) => s.name), ["web.test:80", "spare.test:81"]);

    // Another (dead) server: new watches, the last good sets and the counts carried over.
    const dead = { ...more, resolvers: [{ hostname: LOOPBACK, port: freePort() }] };
    const moved = await discovered.prepare(dead);
    await moved.commit();
    const stats = discovered.stats();
    assertEquals(stats.map((s) => [s.name, s.result, s.endpoints.length]), [
      ["web.test:80", "failed", 3],
      ["spare.test:81", "failed", 1],
    ]);
    assertEquals(stats[0]!.lookups.ok, 1, "lookups of the replaced watch still count");
  },
});

Deno.test("planPool with join holds new addresses found through DNS down until one check passes", () => {
  const found = (address: string) => ({
    hostname: address,
    port: 80,
    weight: 1,
    backup: false,
    maxConn: 0,
    id: `web.test:80/${address}`,
  });
  const first = planPool(undefined, {
    name: "web",
    listen: { hostname: LOOPBACK, port: 0 },
    balance: "roundrobin",
    backends: [found("10.0.0.1"), {
      hostname: "10.0.0.5",
      port: 80,
      weight: 1,
      backup: false,
      maxConn: 0,
    }],
  });
  first.apply();
  const [kept] = first.pool.backends as [Backend];
  kept.connected();
  const next = planPool(first.pool, {
    name: "web",
    listen: { hostname: LOOPBACK, port: 0 },
    balance: "roundrobin",
    backends: [found("10.0.0.1"), found("10.0.0.2")],
  }, { join: true });
  assertEquals(next.changes, ["+web.test:80/10.0.0.2", "-10.0.0.5:80"]);
  assertEquals(next.joined.map((b) => b.id), ["web.test:80/10.0.0.2"]);
  next.apply();
  const [same, joined] = next.pool.backends as [Backend, Backend];
  ok(same === kept, "a kept address is the same backend");
  assertEquals([same.total, same.healthy], [1, true]);
  assertEquals([joined.healthy, joined.health.joining], [false, true]);
  const health = new Health(
    { interval: 1000, timeout: 100, rise: 3, fall: 3 },
    new Logger(() => {}),
  );
  health.report(joined, true);
  assertEquals([joined.healthy, joined.health.joining], [true, false], "one check is enough");
  assertEquals(first.pool.backends.length, 2);
  ok(first.pool.backends[1]!.drained, "the removed backend drains");
});

Deno.test({
  name: "followDiscovery: a changed answer re-plans the pool, keeping unchanged backends " +
    "and draining removed ones; a reload re-plans names too",
  ignore,
  async fn() {
    await using dns = await startDnsmasq({ hosts: "10.0.0.1 web.test\n10.0.0.2 web.test\n" });
    const config = configOn(dns, ["web.test:80"], { resolveInterval: "50ms" });
    const lines: string[] = [];
    const logger = new Logger((line) => lines.push(line));
    const discovery = await DiscoveredBackends.start(config, logger);
    const lb = Lb.start(config, logger, () => {}, { discovery });
    discovery.follow(() => void followDiscovery(lb));
    try {
      const web = lb.frontends[0]!;
      const ids = () => web.pool.backends.map((b) => b.id);
      assertEquals(ids(), ["web.test:80/10.0.0.1", "web.test:80/10.0.0.2"]);
      const [, kept] = web.pool.backends as [Backend, Backend];
      const removed = web.pool.backends[0]!;
      await dns.setHosts("10.0.0.2 web.test\n10.0.0.3 web.test\n");
      await waitUntil(() => ids().includes("web.test:80/10.0.0.3"), "the new address");
      assertEquals(ids(), ["web.test:80/10.0.0.2", "web.test:80/10.0.0.3"]);
      ok(web.pool.backends[0] === kept, "the kept address is the same backend");
      assertEquals(removed.drained, true);
      assertEquals(web.pool.backends[1]!.healthy, true, "checks off: joins at once");
      ok(
        lines.some((l) =>
          l.includes("discovery: web: +web.test:80/10.0.0.3, -web.test:80/10.0.0.1")
        ),
      );

      const summary = await reload(
        lb,
        configOn(dns, ["web.test:80,weight=4"], {
          resolveInterval: "50ms",
        }),
      );
      assertEquals(
        summary,
        "web web.test:80/10.0.0.2 weight 1->4, web web.test:80/10.0.0.3 weight 1->4",
      );
      ok(web.pool.backends[0] === kept);
    } finally {
      await lb.shutdown(0);
    }
  },
});
