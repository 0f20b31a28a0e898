import { deepStrictEqual as assertEquals, match } from "node:assert/strict";
import { Logger } from "../../src/observability/log.ts";
import { delay } from "../_helpers.ts";

Deno.test("Logger.log writes one line: time, component, message", () => {
  const lines: string[] = [];
  new Logger((line) => lines.push(line)).log("proxy", "a -> b: reset");
  assertEquals(lines.length, 1);
  match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z proxy: a -> b: reset$/);
});

Deno.test("Logger.limited logs a key once per interval and counts what it dropped", async () => {
  const lines: string[] = [];
  const logger = new Logger((line) => lines.push(line));
  for (let i = 0; i < 50; i++) logger.limited("accept:main", "accept", "too many open files", 100);
  logger.limited("dial:b", "proxy", "refused", 100); // another key is not held back
  assertEquals(lines.length, 2);
  await delay(150);
  logger.limited("accept:main", "accept", "too many open files", 100);
  assertEquals(lines.length, 3);
  match(lines[2]!, /accept: too many open files \(49 similar suppressed\)$/);
});
