import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { parseBackendSpec } from "../../src/config/backend_spec.ts";
import { ConfigError } from "../../src/common/errors.ts";

const defaults = { weight: 1, backup: false, maxConn: 0 };

Deno.test("parseBackendSpec puts a bare port on 127.0.0.1 with default options", () => {
  assertEquals(parseBackendSpec("8101", "-p"), { hostname: "127.0.0.1", port: 8101, ...defaults });
});

Deno.test("parseBackendSpec reads HOST:PORT and [IPv6]:PORT", () => {
  assertEquals(parseBackendSpec("10.0.0.5:80", "-p"), {
    hostname: "10.0.0.5",
    port: 80,
    ...defaults,
  });
  assertEquals(parseBackendSpec("[::1]:9", "-p"), { hostname: "::1", port: 9, ...defaults });
});

Deno.test("parseBackendSpec reads weight, backup and maxconn in any order", () => {
  assertEquals(parseBackendSpec("10.0.0.5:80,weight=3,backup,maxconn=10", "-p"), {
    hostname: "10.0.0.5",
    port: 80,
    weight: 3,
    backup: true,
    maxConn: 10,
  });
  assertEquals(parseBackendSpec("[::1]:9,maxconn=0, backup", "-p"), {
    hostname: "::1",
    port: 9,
    weight: 1,
    backup: true,
    maxConn: 0,
  });
});

Deno.test("parseBackendSpec rejects bad options and values, naming the flag", () => {
  for (
    const bad of [
      "8101,weight=0",
      "8101,weight=1001",
      "8101,weight=x",
      "8101,weight",
      "8101,maxconn=-1",
      "8101,backup=1",
      "8101,fast",
      "8101,",
      "0",
      "70000",
      "nope",
    ]
  ) {
    assertThrows(
      () => parseBackendSpec(bad, "--backend"),
      (error: unknown) => error instanceof ConfigError && error.message.includes("--backend"),
      `accepted ${JSON.stringify(bad)}`,
    );
  }
});
