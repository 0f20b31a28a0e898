/**
 * `Workers` as a supervisor: a worker that cannot start leaves lb serving
 * with the loops it has (one warning), and one that dies is logged and
 * restarted. The Worker modules here fail on purpose.
 * @module
 */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { defaultConfig } from "../../src/config/config.ts";
import { Lb } from "../../src/lb/lb.ts";
import { Logger } from "../../src/observability/log.ts";
import { Workers } from "../../src/workers/supervisor.ts";
import { SharedCounters } from "../../src/common/shared_counters.ts";
import { freePort, LOOPBACK, waitUntil } from "../_helpers.ts";
import { reload } from "../../src/lb/reload.ts";

function twoWorkerLb(lines: string[]) {
  const config = defaultConfig();
  config.workers = 2;
  config.health.interval = 0;
  config.frontends = [{
    name: "main",
    listen: { hostname: LOOPBACK, port: 0 },
    balance: "roundrobin",
    backends: [{ hostname: LOOPBACK, port: 9, weight: 1, backup: false, maxConn: 0 }],
  }];
  const logger = new Logger((line) => void lines.push(line));
  return { config, logger, lb: Lb.open(config, logger) };
}

Deno.test("Workers.start never fails: a worker that cannot start is one warning, lb keeps its own loop", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = twoWorkerLb(lines);
  await using _lb = lb;
  const module = new URL("./_failing_worker.ts", import.meta.url);
  const workers = await Workers.start(config, lb, [], {
    logger,
    module,
    counters: SharedCounters.create(2),
  });
  assertEquals(workers.running, 0);
  assertEquals(lines.length, 1, lines.join("\n"));
  ok(
    /warning: 1 worker\(s\) did not start \(injected start failure\): serving with 1 accept loop/
      .test(lines[0]!),
    lines[0],
  );
  await workers.stopped(100);
});

Deno.test("Workers restarts a worker that dies, and logs it", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = twoWorkerLb(lines);
  await using _lb = lb;
  const module = new URL("./_crashing_worker.ts", import.meta.url);
  const workers = await Workers.start(config, lb, [], {
    logger,
    module,
    counters: SharedCounters.create(2),
    restartDelayMs: 10,
  });
  try {
    await waitUntil(() => workers.restarts === 1 && workers.running === 1, "the restart");
    ok(
      lines.some((line) => /worker 1 died \(.*injected crash.*\); restarting in 10ms/.test(line)),
      lines.join("\n"),
    );
  } finally {
    await workers.stopped(100);
  }
});

Deno.test("a reload one worker refuses is refused for all: the old config keeps serving, new listeners close", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = twoWorkerLb(lines);
  await using _lb = lb;
  lb.start();
  const module = new URL("./_refusing_worker.ts", import.meta.url);
  const workers = await Workers.start(config, lb, [], {
    logger,
    module,
    counters: SharedCounters.create(2),
  });
  try {
    assertEquals(workers.running, 1);
    const port = freePort();
    const next = structuredClone(config);
    next.maxConns = 7;
    next.frontends.push({
      name: "extra",
      listen: { hostname: LOOPBACK, port },
      balance: "roundrobin",
      backends: [{ hostname: LOOPBACK, port: 9, weight: 1, backup: false, maxConn: 0 }],
    });
    await rejects(() => reload(lb, next, workers.peers), /worker 1: injected refusal/);
    assertEquals(lb.config.maxConns, config.maxConns);
    assertEquals(lb.frontends.map((f) => f.name), ["main"]);
    // The listener the main thread opened for "extra" was closed again.
    await rejects(() => Deno.connect({ hostname: LOOPBACK, port }), /refused/i);
  } finally {
    await workers.stopped(100);
  }
});

Deno.test("a worker that answers a reload too late is told to drop its plan", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = twoWorkerLb(lines);
  await using _lb = lb;
  lb.start();
  const logged: string[] = [];
  const workers = await Workers.start(config, lb, [], {
    logger,
    module: new URL("./_late_worker.ts", import.meta.url),
    counters: SharedCounters.create(2),
    prepareTimeoutMs: 100,
    onAccessLog: (text) => void logged.push(text),
  });
  try {
    const next = structuredClone(config);
    next.maxConns = 7;
    await rejects(() => reload(lb, next, workers.peers), /worker 1 did not answer/);
    assertEquals(lb.config.maxConns, config.maxConns);
    await waitUntil(() => logged.some((l) => /^decide \d+ false$/m.test(l)), "decide false");
  } finally {
    await workers.stopped(100);
  }
});
