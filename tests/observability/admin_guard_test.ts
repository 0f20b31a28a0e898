import { deepStrictEqual as assertEquals, match as assertMatch, ok } from "node:assert/strict";
import {
  allowedHosts,
  bearerMatches,
  isLoopback,
  readAdminToken,
} from "../../src/observability/admin_guard.ts";
import { ConfigError } from "../../src/common/errors.ts";

Deno.test("isLoopback holds for 127.0.0.0/8, ::1 and localhost, not for wildcards or names", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.2"]) {
    ok(isLoopback(host), host);
  }
  ok(isLoopback("localhost") && isLoopback("LOCALHOST"));
  for (const host of ["0.0.0.0", "::", "10.0.0.5", "128.0.0.1", "::2", "lb.example", "127.0.0"]) {
    ok(!isLoopback(host), host);
  }
});

Deno.test("allowedHosts names the address reached, localhost on loopback, and a listen name", () => {
  const local = (hostname: string, port: number): Deno.NetAddr => ({
    transport: "tcp",
    hostname,
    port,
  });
  assertEquals(allowedHosts({ hostname: "127.0.0.1", port: 0 }, local("127.0.0.1", 9090)), [
    "127.0.0.1:9090",
    "localhost:9090",
  ]);
  assertEquals(allowedHosts({ hostname: "::", port: 9090 }, local("::ffff:10.0.0.5", 9090)), [
    "10.0.0.5:9090",
  ]);
  assertEquals(allowedHosts({ hostname: "::", port: 9090 }, local("::1", 9090)), [
    "[::1]:9090",
    "localhost:9090",
  ]);
  assertEquals(allowedHosts({ hostname: "Lb.Internal", port: 9090 }, local("10.0.0.5", 9090)), [
    "10.0.0.5:9090",
    "lb.internal:9090",
  ]);
  assertEquals(allowedHosts({ hostname: "0.0.0.0", port: 80 }, local("10.0.0.5", 80)), [
    "10.0.0.5:80",
    "10.0.0.5",
  ]);
});

Deno.test("bearerMatches takes only Bearer with the exact token", async () => {
  const token = "s3cret-token";
  ok(await bearerMatches("Bearer s3cret-token", token));
  ok(await bearerMatches("bearer s3cret-token", token), "the scheme is case-insensitive");
  for (
    const header of [
      null,
      "",
      "Bearer",
      "Bearer ",
      "Bearer s3cret-tokem", // right length, last byte wrong
      "Bearer S3cret-token", // right length, first byte wrong
      "Bearer s3cret-token2",
      "Bearer s3cret",
      "Basic s3cret-token",
      "s3cret-token",
      "Bearer s3cret-token extra",
    ]
  ) {
    ok(!await bearerMatches(header, token), JSON.stringify(header));
  }
});

Deno.test("readAdminToken trims the file; an empty, missing or multi-word one is a ConfigError", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lb-token-" });
  try {
    const file = `${dir}/token`;
    await Deno.writeTextFile(file, "\n  abc-123_XYZ \n\n");
    assertEquals(await readAdminToken(file), "abc-123_XYZ");
    const refused = async (text: string | undefined, pattern: RegExp) => {
      if (text === undefined) await Deno.remove(file);
      else await Deno.writeTextFile(file, text);
      const error = await readAdminToken(file).then(() => undefined, (e: unknown) => e);
      ok(error instanceof ConfigError, `${JSON.stringify(text)}: ${error}`);
      assertMatch(error.message, pattern);
      ok(!error.message.includes("\n"), "one line");
    };
    await refused(" \n\t\n", /: admin token file is empty$/);
    await refused("two words\n", /: admin token must be one word of printable ASCII/);
    await refused("line\nbreak", /: admin token must be one word/);
    await refused(undefined, /: cannot read admin token file: no such file$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
