import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  backendEntryId,
  isDiscovered,
  parseBackendAddress,
  parseResolver,
} from "../../src/config/backend_entry.ts";
import { parseBackendSpec } from "../../src/config/backend_spec.ts";
import { parseConfigText } from "../../src/config/file.ts";
import { parseFlags } from "../../src/config/flags.ts";
import { loadConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/common/errors.ts";

const defaults = { weight: 1, backup: false, maxConn: 0 };

Deno.test("parseBackendAddress reads srv:NAME as an SRV entry, anything else as HOST:PORT", () => {
  assertEquals(parseBackendAddress("srv:_http._tcp.backend.example", "-p"), {
    hostname: "_http._tcp.backend.example",
    port: 0,
    srv: true,
  });
  assertEquals(parseBackendAddress("backend.example:8080", "-p"), {
    hostname: "backend.example",
    port: 8080,
  });
  assertEquals(parseBackendAddress("8101", "-p"), { hostname: "127.0.0.1", port: 8101 });
  for (const bad of ["srv:", "srv:has space.example", "srv:a..b"]) {
    assertThrows(() => parseBackendAddress(bad, "-p"), ConfigError, bad);
  }
});

Deno.test("isDiscovered: a host name or an SRV entry is followed through DNS, an IP address is not", () => {
  const entry = (text: string) => parseBackendSpec(text, "-p");
  assertEquals(isDiscovered(entry("backend.example:80")), true);
  assertEquals(isDiscovered(entry("localhost:80")), true);
  assertEquals(isDiscovered(entry("srv:_http._tcp.example")), true);
  assertEquals(isDiscovered(entry("10.0.0.5:80")), false);
  assertEquals(isDiscovered(entry("[fd00::5]:80")), false);
  assertEquals(isDiscovered(entry("8101")), false);
  // A backend found through DNS is an address with its own id.
  assertEquals(isDiscovered({ ...entry("10.0.0.5:80"), id: "web.example:80/10.0.0.5" }), false);
});

Deno.test("backendEntryId names host entries host:port and SRV entries srv:NAME", () => {
  assertEquals(backendEntryId(parseBackendSpec("web.example:80,weight=2", "-p")), "web.example:80");
  assertEquals(backendEntryId(parseBackendSpec("[::1]:9", "-p")), "[::1]:9");
  assertEquals(
    backendEntryId(parseBackendSpec("srv:_h._tcp.example", "-p")),
    "srv:_h._tcp.example",
  );
  const found = { ...parseBackendSpec("10.0.0.5:80", "-p"), id: "web.example:80/10.0.0.5" };
  assertEquals(backendEntryId(found), "web.example:80/10.0.0.5");
});

Deno.test("parseBackendSpec takes options on an SRV entry, but not weight (the records give it)", () => {
  assertEquals(parseBackendSpec("srv:_h._tcp.example,backup,maxconn=5,proxy=v2", "-p"), {
    hostname: "_h._tcp.example",
    port: 0,
    srv: true,
    weight: 1,
    backup: true,
    maxConn: 5,
    proxy: "v2",
  });
  assertThrows(
    () => parseBackendSpec("srv:_h._tcp.example,weight=3", "-p"),
    (error: Error) =>
      error instanceof ConfigError && /weight comes from the SRV records/.test(error.message),
  );
});

Deno.test("parseResolver takes an IP address with an optional port (53 by default)", () => {
  assertEquals(parseResolver("10.96.0.10", "--resolver"), { hostname: "10.96.0.10", port: 53 });
  assertEquals(parseResolver("127.0.0.1:5353", "--resolver"), {
    hostname: "127.0.0.1",
    port: 5353,
  });
  assertEquals(parseResolver("fd00::a", "--resolver"), { hostname: "fd00::a", port: 53 });
  assertEquals(parseResolver("[fd00::a]:54", "--resolver"), { hostname: "fd00::a", port: 54 });
  for (const bad of ["dns.example", "dns.example:53", "10.0.0.1:0", "10.0.0.1:x", "", ":53"]) {
    assertThrows(() => parseResolver(bad, "--resolver"), ConfigError, bad);
  }
});

Deno.test("loadConfig reads --resolver (repeatable), --resolve-interval and --drain-delay", async () => {
  const config = await loadConfig(parseFlags([
    "-p",
    "web.example:80",
    "--resolver",
    "127.0.0.1:5353",
    "--resolver",
    "10.0.0.2",
    "--resolve-interval",
    "0",
    "--drain-delay",
    "5s",
  ]));
  assertEquals(config.resolvers, [
    { hostname: "127.0.0.1", port: 5353 },
    { hostname: "10.0.0.2", port: 53 },
  ]);
  assertEquals([config.resolveInterval, config.drainDelay], [0, 5000]);
  const plain = await loadConfig(parseFlags(["-p", "80"]));
  assertEquals([plain.resolvers, plain.resolveInterval, plain.drainDelay], [[], 10_000, 0]);
});

Deno.test("loadConfig refuses the same name entry twice in a frontend", async () => {
  for (
    const twice of [["web.example:80", "web.example:80,weight=2"], [
      "srv:_h._tcp.x",
      "srv:_h._tcp.x",
    ]]
  ) {
    await loadConfig(parseFlags(twice.flatMap((p) => ["-p", p]))).then(
      () => {
        throw new Error(`accepted ${twice}`);
      },
      (error) => assertEquals(error instanceof ConfigError, true),
    );
  }
});

Deno.test("parseConfigText reads SRV objects, names, resolvers, resolveInterval and drainDelay", () => {
  const config = parseConfigText(
    `{
      "frontends": [{ "listen": 8080, "backends": [
        { "srv": "_http._tcp.backend.example", "backup": true, "proxy": "v1" },
        { "host": "web.example", "port": 80, "weight": 2 },
        "srv:_h._tcp.other.example,maxconn=3",
      ] }],
      "resolvers": ["127.0.0.1:5353", "10.0.0.2"],
      "resolveInterval": "30s",
      "drainDelay": "5s",
    }`,
    "lb.json",
  );
  assertEquals(config.frontends[0]!.backends, [
    {
      ...defaults,
      hostname: "_http._tcp.backend.example",
      port: 0,
      srv: true,
      backup: true,
      proxy: "v1",
    },
    { ...defaults, hostname: "web.example", port: 80, weight: 2 },
    { ...defaults, hostname: "_h._tcp.other.example", port: 0, srv: true, maxConn: 3 },
  ]);
  assertEquals(config.resolvers, [
    { hostname: "127.0.0.1", port: 5353 },
    { hostname: "10.0.0.2", port: 53 },
  ]);
  assertEquals([config.resolveInterval, config.drainDelay], [30_000, 5000]);
  for (
    const [bad, message] of [
      [`{"srv": "_h._tcp.x", "port": 80}`, /backends\[0\]\.port cannot be given with srv/],
      [`{"srv": "_h._tcp.x", "weight": 2}`, /backends\[0\]\.weight cannot be given with srv/],
      [`{"srv": "bad name"}`, /backends\[0\]\.srv must name an SRV record set/],
    ] as const
  ) {
    assertThrows(
      () => parseConfigText(`{"frontends": [{"listen": 1, "backends": [${bad}]}]}`, "lb.json"),
      (error: Error) => error instanceof ConfigError && message.test(error.message),
      bad,
    );
  }
  assertThrows(
    () => parseConfigText(`{"resolvers": ["dns.example"]}`, "lb.json"),
    (error: Error) =>
      error instanceof ConfigError && /resolvers\[0\] must be an IP/.test(error.message),
  );
});
