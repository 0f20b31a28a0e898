import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { ConfigError } from "../../src/common/errors.ts";
import { parseHostPort, parsePort } from "../../src/config/host_port.ts";

Deno.test("parsePort accepts 1-65535 and 0 only where allowed", () => {
  assertEquals(parsePort("1", "-p"), 1);
  assertEquals(parsePort(" 65535 ", "-p"), 65535);
  assertEquals(parsePort(8101, "-p"), 8101);
  assertEquals(parsePort("0", "-f", true), 0);
  assertThrows(() => parsePort("0", "-p"), ConfigError);
});

Deno.test("parsePort rejects out-of-range and non-numeric ports, naming the field", () => {
  for (const bad of ["70000", "65536", "-1", "abc", "", "8080x", "1.5", "0x50", "1e3"]) {
    assertThrows(
      () => parsePort(bad, "--frontend"),
      (error: unknown) => error instanceof ConfigError && error.message.includes("--frontend"),
      `accepted ${JSON.stringify(bad)}`,
    );
  }
});

Deno.test("parseHostPort gives a bare port the default host", () => {
  assertEquals(parseHostPort("8101", "-p", "127.0.0.1"), { hostname: "127.0.0.1", port: 8101 });
  assertEquals(parseHostPort("8080", "-f", "0.0.0.0"), { hostname: "0.0.0.0", port: 8080 });
});

Deno.test("parseHostPort reads HOST:PORT and [IPv6]:PORT", () => {
  assertEquals(parseHostPort("10.0.0.5:80", "-p", "x"), { hostname: "10.0.0.5", port: 80 });
  assertEquals(parseHostPort("backend-1.local:8101", "-p", "x"), {
    hostname: "backend-1.local",
    port: 8101,
  });
  assertEquals(parseHostPort("[::1]:9", "-p", "x"), { hostname: "::1", port: 9 });
  assertEquals(parseHostPort("[fe80::1:2]:443", "-p", "x"), { hostname: "fe80::1:2", port: 443 });
  assertEquals(parseHostPort("127.0.0.1:0", "-f", "x", true), { hostname: "127.0.0.1", port: 0 });
});

Deno.test("parseHostPort rejects malformed endpoints, naming the field", () => {
  for (
    const bad of [
      "",
      "host",
      "host:",
      ":80",
      "::1:80",
      "[::1]",
      "[::1]:",
      "[zz]:80",
      "a b:80",
      "h:70000",
    ]
  ) {
    assertThrows(
      () => parseHostPort(bad, "--backend", "127.0.0.1"),
      (error: unknown) => error instanceof ConfigError && error.message.includes("--backend"),
      `accepted ${JSON.stringify(bad)}`,
    );
  }
  assertThrows(() => parseHostPort("127.0.0.1:0", "-p", "x"), ConfigError);
});
