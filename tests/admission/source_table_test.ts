import { deepStrictEqual as assertEquals, ok, throws as assertThrows } from "node:assert/strict";
import {
  DEFAULT_SOURCE_TABLE_SIZE,
  parseRate,
  RateError,
  SourceTable,
  type SourceTableOptions,
} from "../../src/admission/source_table.ts";

/** A table on a fake clock that the test moves by setting `clock.now`. */
function _table(options: SourceTableOptions) {
  const clock = { now: 0 };
  const table = new SourceTable({ ...options, now: () => clock.now });
  return { table, clock };
}

/** Admits `key` until refused (at most `max` times); returns how many got in. */
function _burst(table: SourceTable, key: string, max = 10_000): number {
  let admitted = 0;
  while (admitted < max && table.admit(key) === "ok") admitted++;
  return admitted;
}

Deno.test("parseRate reads COUNT/WINDOW with a window in ms, s, m or h", () => {
  assertEquals(parseRate("20/1s", "--conn-rate-per-source"), { count: 20, windowMs: 1000 });
  assertEquals(parseRate("100/10s", "--x"), { count: 100, windowMs: 10_000 });
  assertEquals(parseRate("5/500ms", "--x"), { count: 5, windowMs: 500 });
  assertEquals(parseRate("60/1m", "--x"), { count: 60, windowMs: 60_000 });
  assertEquals(parseRate("1/1h", "--x"), { count: 1, windowMs: 3_600_000 });
  assertEquals(parseRate("3/1.5s", "--x"), { count: 3, windowMs: 1500 });
  assertEquals(parseRate("1000000/1ms", "--x"), { count: 1_000_000, windowMs: 1 });
  assertEquals(parseRate(" 20/1s ", "--x"), { count: 20, windowMs: 1000 });
});

Deno.test("parseRate rejects what is not a rate in range, naming the field and the value", () => {
  const bad = [
    "",
    "20",
    "20/",
    "/1s",
    "20/1",
    "20/s",
    "20/1d",
    "20/ 1s",
    "20 /1s",
    "-1/1s",
    "1.5/1s",
    "20/-1s",
    "20/1s/1s",
    "0/1s",
    "1000001/1s",
    "99999999999999999999/1s",
    "20/0s",
    "20/0.4ms",
    "20/61m",
    "20/2h",
  ];
  for (const text of bad) {
    assertThrows(
      () => parseRate(text, "--conn-rate-per-source"),
      (error: unknown) =>
        error instanceof RateError && error instanceof SyntaxError && error.name === "RateError" &&
        error.message.startsWith("--conn-rate-per-source must ") &&
        error.message.includes(JSON.stringify(text)) && !error.message.includes("\n"),
      `accepted ${JSON.stringify(text)}`,
    );
  }
  assertThrows(() => parseRate("abc", "--conn-rate-per-source"), {
    message: '--conn-rate-per-source must be a rate like 20/1s, 100/10s or 5/500ms: got "abc"',
  });
});

Deno.test("SourceTable without limits admits every connection and tracks no source", () => {
  const table = new SourceTable();
  for (let i = 0; i < 1000; i++) assertEquals(table.admit(`10.0.${i >> 8}.${i & 255}`), "ok");
  table.release("10.0.0.0");
  assertEquals(table.size, 0);
  assertEquals(table.evictions, 0);
});

Deno.test("SourceTable caps the connections one source holds open, never refusing another", () => {
  const { table } = _table({ maxOpen: 3 });
  for (let i = 0; i < 3; i++) assertEquals(table.admit("10.0.0.1"), "ok");
  for (let i = 0; i < 1000; i++) assertEquals(table.admit("10.0.0.1"), "too-many-open");
  assertEquals(table.admit("10.0.0.2"), "ok");
  table.release("10.0.0.1");
  assertEquals(table.admit("10.0.0.1"), "ok");
  assertEquals(table.admit("10.0.0.1"), "too-many-open");
  assertEquals(table.admit("10.0.0.2"), "ok");
});

Deno.test("SourceTable forgets a source when its last connection is released", () => {
  const { table } = _table({ maxOpen: 2 });
  table.admit("a");
  table.admit("a");
  table.admit("b");
  assertEquals(table.size, 2);
  table.release("a");
  assertEquals(table.size, 2);
  table.release("a");
  table.release("b");
  assertEquals(table.size, 0);
  assertEquals(table.evictions, 0);
});

Deno.test("SourceTable.release of a source never admitted, or released once too often, is a no-op", () => {
  const { table } = _table({ maxOpen: 1 });
  table.release("never");
  assertEquals(table.admit("a"), "ok");
  table.release("a");
  table.release("a");
  table.release("a");
  assertEquals(table.admit("a"), "ok");
  assertEquals(table.admit("a"), "too-many-open", "the count did not go below zero");
  assertEquals(table.size, 1);
});

Deno.test("SourceTable limits new connections per source over a sliding window", () => {
  const { table, clock } = _table({ rate: { count: 10, windowMs: 1000 } });
  clock.now = 5000;
  assertEquals(_burst(table, "a"), 10);
  assertEquals(table.admit("a"), "too-fast");
  assertEquals(table.admit("b"), "ok", "another source has its own window");
  clock.now = 5999;
  assertEquals(_burst(table, "a"), 0);
  // The previous window's 10 count in full at the start of the next...
  clock.now = 6000;
  assertEquals(_burst(table, "a"), 0);
  // ...and for the share of the sliding window still over it: half, halfway.
  clock.now = 6500;
  assertEquals(_burst(table, "a"), 5);
  clock.now = 7000;
  assertEquals(_burst(table, "a"), 5);
  clock.now = 7999;
  assertEquals(_burst(table, "a"), 5);
  clock.now = 8000;
  assertEquals(_burst(table, "a"), 0);
  // A whole window without connections: the full rate again.
  clock.now = 9000;
  assertEquals(_burst(table, "a"), 10);
});

Deno.test("SourceTable lets a source retrying over the rate in at the rate, one over at most", () => {
  for (const stepMs of [1, 7, 15, 50, 99]) {
    const { table, clock } = _table({ rate: { count: 10, windowMs: 1000 } });
    const admitted: number[] = [];
    for (let t = 0; t < 20_000; t += stepMs) {
      clock.now = t;
      if (table.admit("a") === "ok") admitted.push(t);
    }
    // Refused attempts do not count, so the source is not locked out: 10/s over 20 s.
    ok(admitted.length >= 195 && admitted.length <= 200, `${stepMs}ms: ${admitted.length}`);
    // The sliding-window estimate lets at most one more into any window's length.
    for (let i = 0; i + 11 < admitted.length; i++) {
      ok(admitted[i + 11]! - admitted[i]! >= 1000, `${stepMs}ms: 12 within 1s at ${admitted[i]}`);
    }
  }
});

Deno.test("SourceTable lets a source under the rate in every time", () => {
  const { table, clock } = _table({ rate: { count: 10, windowMs: 1000 } });
  for (let t = 0; t < 20_000; t += 110) {
    clock.now = t;
    assertEquals(table.admit("a"), "ok", `at ${t}`);
  }
});

Deno.test("SourceTable refuses a source at its open cap without counting it toward the rate", () => {
  const { table } = _table({ maxOpen: 2, rate: { count: 3, windowMs: 1000 } });
  assertEquals(table.admit("a"), "ok");
  assertEquals(table.admit("a"), "ok");
  for (let i = 0; i < 100; i++) assertEquals(table.admit("a"), "too-many-open");
  table.release("a");
  assertEquals(table.admit("a"), "ok");
  table.release("a");
  assertEquals(table.admit("a"), "too-fast");
});

Deno.test("SourceTable never tracks more sources than its capacity, evicting the oldest", () => {
  const { table } = _table({ maxOpen: 1, capacity: 10_000 });
  for (let i = 0; i < 50_000; i++) {
    assertEquals(table.admit(`key-${i}`), "ok");
    ok(table.size <= 10_000, `size ${table.size} after ${i + 1}`);
  }
  assertEquals(table.size, 10_000);
  assertEquals(table.evictions, 40_000);
  // The newest sources are still counted; the oldest start again from zero.
  assertEquals(table.admit("key-49999"), "too-many-open");
  assertEquals(table.admit("key-0"), "ok");
  assertEquals(table.size, 10_000);
});

Deno.test("SourceTable.release of an evicted source is a no-op and leaves other sources alone", () => {
  const { table } = _table({ maxOpen: 1, capacity: 1 });
  assertEquals(table.admit("a"), "ok");
  assertEquals(table.admit("b"), "ok");
  assertEquals(table.evictions, 1, "a was evicted with a connection open");
  for (let i = 0; i < 3; i++) table.release("a");
  assertEquals(table.size, 1);
  assertEquals(table.admit("b"), "too-many-open", "releasing a did not touch b");
  table.release("b");
  table.release("b");
  assertEquals(table.size, 0);
  assertEquals(table.admit("b"), "ok");
  assertEquals(table.admit("b"), "too-many-open", "the count did not go below zero");
});

Deno.test("SourceTable evicts a source without open connections before one with", () => {
  const { table, clock } = _table({
    maxOpen: 2,
    rate: { count: 100, windowMs: 60_000 },
    capacity: 3,
  });
  assertEquals(table.admit("busy"), "ok");
  assertEquals(table.admit("busy"), "ok");
  table.admit("quiet-1");
  table.release("quiet-1");
  table.admit("quiet-2");
  table.release("quiet-2");
  clock.now = 1000;
  assertEquals(table.admit("new"), "ok");
  assertEquals(table.evictions, 1);
  assertEquals(table.admit("busy"), "too-many-open", "the oldest, but in use: kept");
});

Deno.test("SourceTable drops idle sources rather than evicting them", () => {
  const { table, clock } = _table({
    maxOpen: 5,
    rate: { count: 5, windowMs: 100 },
    capacity: 1000,
  });
  for (let i = 0; i < 50_000; i++) {
    clock.now = i;
    const key = `key-${i}`;
    assertEquals(table.admit(key), "ok");
    table.release(key);
    ok(table.size <= 1000);
  }
  assertEquals(table.evictions, 0);
  ok(table.size <= 201, `idle sources linger: ${table.size}`);
});

Deno.test("SourceTable forgets rate-limited sources once idle, as others arrive", () => {
  const { table, clock } = _table({ rate: { count: 5, windowMs: 1000 } });
  // Each connection admitted, then closed: open counts go back to 0.
  const connect = (key: string) => {
    table.admit(key);
    table.release(key);
  };
  for (let i = 0; i < 100; i++) connect(`old-${i}`);
  clock.now = 1999;
  connect("new-0");
  assertEquals(table.size, 101, "windows still running are remembered");
  // Two windows on, each admission drops two idle sources from the old end.
  clock.now = 2000;
  for (let i = 1; i <= 10; i++) connect(`new-${i}`);
  assertEquals(table.size, 101 - 20 + 10);
  for (let i = 11; i <= 60; i++) connect(`new-${i}`);
  assertEquals(table.size, 61);
  assertEquals(table.evictions, 0);
});

Deno.test("SourceTable refuses limits out of range", () => {
  const bad: SourceTableOptions[] = [
    { maxOpen: -1 },
    { maxOpen: 1.5 },
    { capacity: 0 },
    { capacity: NaN },
    { rate: { count: 0, windowMs: 1000 } },
    { rate: { count: 1_000_001, windowMs: 1000 } },
    { rate: { count: 1, windowMs: 0 } },
    { rate: { count: 1, windowMs: 3_600_001 } },
    { rate: { count: 1, windowMs: NaN } },
  ];
  for (const options of bad) {
    assertThrows(() => new SourceTable(options), RangeError, JSON.stringify(options));
  }
  assertEquals(DEFAULT_SOURCE_TABLE_SIZE, 100_000);
});

Deno.test("SourceTable counts open connections even without a cap, so a cap turned on by a reload holds", () => {
  const { table } = _table({ rate: { count: 100, windowMs: 1000 } });
  assertEquals(table.admit("a"), "ok"); // open, admitted under the rate limit alone
  table.configure({ maxOpen: 1, rate: { count: 100, windowMs: 1000 } });
  assertEquals(table.admit("a"), "too-many-open", "the first one is still open");
  table.release("a");
  assertEquals(table.admit("a"), "ok");
});
