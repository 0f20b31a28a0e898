import assert from "node:assert/strict";
import {
  checkFdLimit,
  FD_HEADROOM,
  fdLimitWarning,
  fdsNeeded,
  parseSoftFdLimit,
  readSoftFdLimit,
} from "../../src/lb/fd_limit.ts";
import { Logger } from "../../src/observability/log.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("parseSoftFdLimit reads the soft column of Max open files", () => {
  assert.equal(parseSoftFdLimit(LIMITS), 1024);
  assert.equal(
    parseSoftFdLimit(
      LIMITS.replace("1024                 524288", "unlimited            unlimited"),
    ),
    Infinity,
  );
  assert.equal(parseSoftFdLimit("Max cpu time unlimited unlimited seconds\n"), undefined);
  assert.equal(parseSoftFdLimit(""), undefined);
});

Deno.test("fdsNeeded is two per connection plus headroom", () => {
  assert.equal(fdsNeeded(0), FD_HEADROOM);
  assert.equal(fdsNeeded(1000), 2000 + FD_HEADROOM);
});

Deno.test("fdLimitWarning warns only below what --max-conns needs", () => {
  assert.equal(fdLimitWarning(1024, 0), undefined);
  assert.equal(fdLimitWarning(Infinity, 1_000_000), undefined);
  assert.equal(fdLimitWarning(fdsNeeded(480), 480), undefined);
  const warning = fdLimitWarning(fdsNeeded(480) - 1, 480);
  assert.ok(warning);
  assert.match(warning, /limit 1023 is below the 1024 that --max-conns 480 needs/);
  assert.match(fdLimitWarning(1024, 10_000)!, /ulimit -n 20064/);
});

Deno.test("readSoftFdLimit parses what it reads and is undefined when it cannot read", () => {
  if (Deno.build.os === "linux") assert.equal(readSoftFdLimit(() => LIMITS), 1024);
  assert.equal(
    readSoftFdLimit(() => {
      throw new Deno.errors.NotCapable("no /proc");
    }),
    undefined,
  );
});

Deno.test("checkFdLimit logs one line when the limit is too low and nothing otherwise", () => {
  const lines: string[] = [];
  const logger = new Logger((line) => lines.push(line));
  assert.equal(checkFdLimit(10_000, logger, () => 1024), true);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, / lb: soft file-descriptor limit 1024 is below/);
  assert.equal(checkFdLimit(100, logger, () => 1024), false);
  assert.equal(checkFdLimit(10_000, logger, () => undefined), false);
  assert.equal(lines.length, 1);
});
