import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { MAX_DURATION, parseDuration } from "../../src/config/duration.ts";
import { ConfigError } from "../../src/common/errors.ts";

Deno.test("parseDuration reads ms, s, m and h", () => {
  assertEquals(parseDuration("500ms", "--x"), 500);
  assertEquals(parseDuration("2s", "--x"), 2000);
  assertEquals(parseDuration("1.5s", "--x"), 1500);
  assertEquals(parseDuration("5m", "--x"), 300_000);
  assertEquals(parseDuration("1h", "--x"), 3_600_000);
  assertEquals(parseDuration("0", "--x"), 0);
});

Deno.test("parseDuration takes a bare number as seconds (text and JSON numbers)", () => {
  assertEquals(parseDuration("3", "--x"), 3000);
  assertEquals(parseDuration(0.25, "--x"), 250);
  assertEquals(parseDuration(0, "--x"), 0);
});

Deno.test("parseDuration rejects what is not a duration, naming the field", () => {
  for (const bad of ["", "abc", "-1s", "5 s", "5sec", "1d", "s", "1e3", "Infinity"]) {
    assertThrows(
      () => parseDuration(bad, "--connect-timeout"),
      (error: unknown) =>
        error instanceof ConfigError && error.message.includes("--connect-timeout"),
      `accepted ${JSON.stringify(bad)}`,
    );
  }
  for (const bad of [-1, NaN, Infinity]) {
    assertThrows(() => parseDuration(bad, "--x"), ConfigError, `accepted ${bad}`);
  }
});

Deno.test("parseDuration rejects durations past what a timer can wait (about 596h)", () => {
  assertEquals(parseDuration("596h", "--x"), 596 * 3_600_000);
  assertEquals(parseDuration(`${MAX_DURATION}ms`, "--x"), MAX_DURATION);
  for (const bad of ["597h", "1000h", `${MAX_DURATION + 1}ms`, "99999999999999999999s"]) {
    assertThrows(
      () => parseDuration(bad, "--connect-timeout"),
      (error: unknown) =>
        error instanceof ConfigError && error.message.includes("--connect-timeout"),
      `accepted ${bad}`,
    );
  }
  assertThrows(() => parseDuration(3e6, "--x"), ConfigError);
});
