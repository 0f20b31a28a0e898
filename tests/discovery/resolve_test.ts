import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import {
  DiscoveryError,
  type DiscoveryErrorReason,
  expandSrvTargets,
  resolveName,
  resolveSrv,
} from "../../src/discovery/resolve.ts";
import { freePort, LOOPBACK } from "../_helpers.ts";
import { DNSMASQ_MISSING, startDnsmasq } from "./_dnsmasq.ts";

const ignore = DNSMASQ_MISSING !== undefined;

const HOSTS = [
  "fd00::10 web.test",
  "10.0.0.10 web.test",
  "fd00::1 web.test",
  "10.0.0.9 web.test",
  "10.0.0.2 web.test",
  "10.0.0.2 web.test",
  "10.0.0.9 v4only.test",
  "fd00::9 v6only.test",
  "10.1.0.1 a.test",
  "10.1.0.2 b.test",
  "fd00::2 b.test",
  "10.1.0.3 c.test",
  "",
].join("\n");

/** A server for these tests; `slow.test` is forwarded to a port that never answers. */
function startServer() {
  return startDnsmasq({
    hosts: HOSTS,
    args: [
      "--srv-host=_web._tcp.svc.test,a.test,8080,10,5",
      "--srv-host=_web._tcp.svc.test,b.test,8081,10,5000",
      "--srv-host=_web._tcp.svc.test,c.test,8082,20,0",
      "--srv-host=_none._tcp.svc.test",
      "--srv-host=_half._tcp.svc.test,a.test,80",
      "--srv-host=_half._tcp.svc.test,gone.test,80",
      "--srv-host=_slow._tcp.svc.test,a.test,80",
      "--srv-host=_slow._tcp.svc.test,t.slow.test,80",
      `--server=/slow.test/${LOOPBACK}#${freePort()}`,
    ],
  });
}

/** Awaits `promise`, expecting a DiscoveryError with `reason`; returns it. */
async function failsWith(promise: Promise<unknown>, reason: DiscoveryErrorReason) {
  try {
    await promise;
  } catch (error) {
    assert(error instanceof DiscoveryError, `expected a DiscoveryError, got ${error}`);
    assertEquals(error.name, "DiscoveryError");
    assertEquals(error.reason, reason, error.message);
    return error;
  }
  throw new Error(`expected a DiscoveryError "${reason}", got an answer`);
}

Deno.test({
  name: "resolveName returns A and AAAA addresses together, deduplicated, IPv4 first in order",
  ignore,
  async fn() {
    await using dns = await startServer();
    const addresses = await resolveName("web.test", { resolvers: [dns.resolver], timeoutMs: 2000 });
    assertEquals(addresses, ["10.0.0.2", "10.0.0.9", "10.0.0.10", "fd00::1", "fd00::10"]);
  },
});

Deno.test({
  name: "resolveName accepts a name with only A or only AAAA records",
  ignore,
  async fn() {
    await using dns = await startServer();
    const options = { resolvers: [dns.resolver], timeoutMs: 2000 };
    assertEquals(await resolveName("v4only.test", options), ["10.0.0.9"]);
    assertEquals(await resolveName("v6only.test", options), ["fd00::9"]);
    assertEquals(await resolveName("v4only.test.", options), ["10.0.0.9"]);
  },
});

Deno.test({
  name: "resolveName rejects an unknown name (NXDOMAIN) as nxdomain",
  ignore,
  async fn() {
    await using dns = await startServer();
    const error = await failsWith(
      resolveName("nope.test", { resolvers: [dns.resolver], timeoutMs: 2000 }),
      "nxdomain",
    );
    assert(error.message.includes("nope.test"));
    assert(dns.log().includes("nope.test is NXDOMAIN"), "dnsmasq answered NXDOMAIN");
  },
});

Deno.test("resolveName fails as timeout within timeoutMs when the server is dead", async () => {
  const dead = { hostname: LOOPBACK, port: freePort() };
  const started = performance.now();
  await failsWith(resolveName("web.test", { resolvers: [dead], timeoutMs: 300 }), "timeout");
  const elapsed = performance.now() - started;
  assert(elapsed >= 250 && elapsed < 1500, `failed after ${Math.round(elapsed)}ms`);
});

Deno.test({
  name: "resolveName asks the next resolver when one does not answer",
  ignore,
  async fn() {
    await using dns = await startServer();
    const dead = { hostname: LOOPBACK, port: freePort() };
    const addresses = await resolveName("v4only.test", {
      resolvers: [dead, dns.resolver],
      timeoutMs: 300,
    });
    assertEquals(addresses, ["10.0.0.9"]);
  },
});

Deno.test({
  name: "resolveName fails the whole lookup when one family times out",
  ignore,
  async fn() {
    // t.slow.test is forwarded to a dead upstream: both families time out.
    // A timeout is never taken for "no such records", which would shrink the set.
    await using dns = await startServer();
    await failsWith(
      resolveName("t.slow.test", { resolvers: [dns.resolver], timeoutMs: 300 }),
      "timeout",
    );
  },
});

Deno.test("resolveName returns an IP address as it is, without a query", async () => {
  const dead = { hostname: LOOPBACK, port: freePort() };
  assertEquals(await resolveName("10.0.0.5", { resolvers: [dead], timeoutMs: 100 }), ["10.0.0.5"]);
  assertEquals(await resolveName("FD00:0::5", { resolvers: [dead], timeoutMs: 100 }), ["fd00::5"]);
});

Deno.test("resolveName rethrows the caller's abort reason, not a DiscoveryError", async () => {
  const dead = { hostname: LOOPBACK, port: freePort() };
  const controller = new AbortController();
  const reason = new Error("stopping");
  const timer = setTimeout(() => controller.abort(reason), 50);
  try {
    await rejects(
      resolveName("web.test", { resolvers: [dead], timeoutMs: 5000, signal: controller.signal }),
      (error) => error === reason,
    );
  } finally {
    clearTimeout(timer);
  }
});

Deno.test("resolveName rejects bad input up front", async (t) => {
  const options = { resolvers: [{ hostname: LOOPBACK, port: 53 }] };
  await t.step("an empty name", async () => {
    await rejects(resolveName("", options), TypeError);
  });
  await t.step("a resolver that is not an IP address", async () => {
    await rejects(
      resolveName("web.test", { resolvers: [{ hostname: "localhost", port: 53 }] }),
      RangeError,
    );
  });
  await t.step("a resolver port out of range", async () => {
    await rejects(
      resolveName("web.test", { resolvers: [{ hostname: LOOPBACK, port: 70000 }] }),
      RangeError,
    );
  });
  await t.step("a timeout of 0", async () => {
    await rejects(resolveName("web.test", { ...options, timeoutMs: 0 }), RangeError);
  });
});

Deno.test({
  name: "resolveSrv returns targets, ports, priorities and weights, by priority then weight",
  ignore,
  async fn() {
    await using dns = await startServer();
    const targets = await resolveSrv("_web._tcp.svc.test", {
      resolvers: [dns.resolver],
      timeoutMs: 2000,
    });
    assertEquals(targets, [
      { target: "b.test", port: 8081, priority: 10, weight: 5000 },
      { target: "a.test", port: 8080, priority: 10, weight: 5 },
      { target: "c.test", port: 8082, priority: 20, weight: 0 },
    ]);
  },
});

Deno.test({
  name: "resolveSrv rejects an unknown service as nxdomain and target '.' as empty",
  ignore,
  async fn() {
    await using dns = await startServer();
    const options = { resolvers: [dns.resolver], timeoutMs: 2000 };
    await failsWith(resolveSrv("_nope._tcp.svc.test", options), "nxdomain");
    await failsWith(resolveSrv("_none._tcp.svc.test", options), "empty");
  },
});

Deno.test({
  name: "expandSrvTargets gives one endpoint per record and address",
  ignore,
  async fn() {
    await using dns = await startServer();
    const options = { resolvers: [dns.resolver], timeoutMs: 2000 };
    const endpoints = await expandSrvTargets(
      await resolveSrv("_web._tcp.svc.test", options),
      options,
    );
    assertEquals(endpoints, [
      { target: "b.test", hostname: "10.1.0.2", port: 8081, priority: 10, weight: 5000 },
      { target: "b.test", hostname: "fd00::2", port: 8081, priority: 10, weight: 5000 },
      { target: "a.test", hostname: "10.1.0.1", port: 8080, priority: 10, weight: 5 },
      { target: "c.test", hostname: "10.1.0.3", port: 8082, priority: 20, weight: 0 },
    ]);
  },
});

Deno.test({
  name: "expandSrvTargets leaves out a target with no address but fails on a timeout",
  ignore,
  async fn() {
    await using dns = await startServer();
    const options = { resolvers: [dns.resolver], timeoutMs: 300 };
    const half = await expandSrvTargets(await resolveSrv("_half._tcp.svc.test", options), options);
    assertEquals(half.map((e) => e.hostname), ["10.1.0.1"]);
    await failsWith(
      expandSrvTargets(await resolveSrv("_slow._tcp.svc.test", options), options),
      "timeout",
    );
    await failsWith(
      expandSrvTargets([{ target: "gone.test", port: 80, priority: 0, weight: 0 }], options),
      "empty",
    );
  },
});
