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

/** An lb in this thread with `threads` threads in all (config.workers), its lines kept in `lines`. */
function workerLb(lines: string[], threads = 2) {
  const config = defaultConfig();
  config.workers = threads;
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
  const { config, logger, lb } = workerLb(lines);
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
  const { config, logger, lb } = workerLb(lines);
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
  const { config, logger, lb } = workerLb(lines);
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
  const { config, logger, lb } = workerLb(lines);
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

/** Worker 1 answers, then dies; worker 2 answers late (see the module). */
const ANSWER_THEN_DIE = new URL("./_answer_then_die_worker.ts", import.meta.url);

Deno.test("a worker that answered a reload and then died counts for nothing: the reload is refused for all", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = workerLb(lines, 3);
  await using _lb = lb;
  lb.start();
  const workers = await Workers.start(config, lb, ["prepare-dies=20", "slow=600"], {
    logger,
    module: ANSWER_THEN_DIE,
    counters: SharedCounters.create(3),
    restartDelayMs: 10,
  });
  try {
    const next = structuredClone(config);
    next.maxConns = 7;
    // Worker 1 said yes, died, and came back (on the old config) before worker 2 answered.
    await rejects(() => reload(lb, next, workers.peers), /worker 1 did not answer/);
    assertEquals(workers.restarts, 1);
    assertEquals(lb.config.maxConns, config.maxConns);
  } finally {
    await workers.stopped(100);
  }
});

Deno.test("a worker that became ready while a reload was under way is started again once it commits", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = workerLb(lines, 3);
  await using _lb = lb;
  const logged: string[] = [];
  const workers = await Workers.start(config, lb, ["prepare-dies=100", "slow=0"], {
    logger,
    module: ANSWER_THEN_DIE,
    counters: SharedCounters.create(3),
    restartDelayMs: 10,
    onAccessLog: (text) => void logged.push(text),
  });
  try {
    const next = structuredClone(config);
    next.maxConns = 7;
    await workers.peers.prepare(next, new Map()); // both planned it
    await waitUntil(() => workers.restarts === 1 && workers.running === 2, "worker 1's restart");
    workers.peers.decide(true);
    workers.peers.committed!();
    await waitUntil(() => workers.restarts === 2 && workers.running === 2, "a second restart");
    ok(
      lines.some((line) => /worker 1 started during a reload, on the old config/.test(line)),
      lines.join("\n"),
    );
    await waitUntil(
      () => logged.includes("w1g2 start maxConns=" + lb.config.maxConns + "\n"),
      "w1g2",
    );
    ok(logged.includes("w2g0 decide true\n"), logged.join(""));
    ok(!logged.some((line) => line.startsWith("w1g1 decide")), logged.join(""));
  } finally {
    await workers.stopped(100);
  }
});

Deno.test("the tallies of a worker that answers and then dies are counted once: no counter goes backwards", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = workerLb(lines, 3);
  await using _lb = lb;
  const workers = await Workers.start(config, lb, [], {
    logger,
    module: ANSWER_THEN_DIE,
    counters: SharedCounters.create(3),
    restartDelayMs: 10,
  });
  const evictions = async () =>
    (await workers.tallies()).reduce((sum, tally) => sum + tally.sources.evictions, 0);
  try {
    const seen = [await evictions()];
    seen.push(await evictions()); // worker 1 answers, then dies while worker 2 is still to answer
    await waitUntil(() => workers.restarts === 1 && workers.running === 2, "the restart");
    seen.push(await evictions());
    assertEquals(seen, [5, 5, 5]);
  } finally {
    await workers.stopped(100);
  }
});

Deno.test("after the stop signal every worker is told, none is restarted, and stopped() ends when the last is gone", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = workerLb(lines, 3);
  await using _lb = lb;
  const logged: string[] = [];
  const told = await Workers.start(config, lb, [], {
    logger,
    module: ANSWER_THEN_DIE,
    counters: SharedCounters.create(3),
    onAccessLog: (text) => void logged.push(text),
  });
  told.stop("SIGTERM");
  await waitUntil(
    () => logged.includes("w1g0 stop SIGTERM\n") && logged.includes("w2g0 stop SIGTERM\n"),
    "both told",
  );
  await told.stopped(100);

  // The first incarnation dies 20 ms after it started: during the drain here.
  const dying = await Workers.start(workerLb(lines).config, lb, [], {
    logger,
    module: new URL("./_crashing_worker.ts", import.meta.url),
    counters: SharedCounters.create(2),
    restartDelayMs: 10,
  });
  dying.stop("SIGTERM");
  const since = Date.now();
  await dying.stopped(30_000);
  ok(Date.now() - since < 10_000, "stopped() waited for its timeout, not for the death");
  assertEquals(dying.restarts, 0);
  assertEquals(dying.running, 0);
  ok(lines.some((line) => /worker 1 died \(.*injected crash.*\)$/.test(line)), lines.join("\n"));
  ok(!lines.some((line) => /restarting/.test(line)), lines.join("\n"));
});

Deno.test("a worker that does not restart is tried again, each time after twice the wait", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = workerLb(lines);
  await using _lb = lb;
  const workers = await Workers.start(config, lb, [], {
    logger,
    module: new URL("./_slow_to_restart_worker.ts", import.meta.url),
    counters: SharedCounters.create(2),
    restartDelayMs: 10,
  });
  try {
    await waitUntil(() => workers.restarts === 3 && workers.running === 1, "the third restart");
    const restarting = lines.filter((line) => /worker 1 .*restarting in/.test(line));
    ok(/died \(.*injected crash.*\); restarting in 10ms$/.test(restarting[0]!), lines.join("\n"));
    ok(
      /did not restart \(.*failure 1\); restarting in 20ms$/.test(restarting[1]!),
      lines.join("\n"),
    );
    ok(
      /did not restart \(.*failure 2\); restarting in 40ms$/.test(restarting[2]!),
      lines.join("\n"),
    );
    assertEquals(restarting.length, 3);
  } finally {
    await workers.stopped(100);
  }
});

Deno.test("stopped() waits for a worker still starting at the stop, which is told to stop once ready", async () => {
  const lines: string[] = [];
  const { config, logger, lb } = workerLb(lines);
  await using _lb = lb;
  const logged: string[] = [];
  const workers = await Workers.start(config, lb, [], {
    logger,
    module: new URL("./_slow_start_worker.ts", import.meta.url),
    counters: SharedCounters.create(2),
    restartDelayMs: 10,
    onAccessLog: (text) => void logged.push(text),
  });
  // The first one died; its successor has started and is not ready yet.
  await waitUntil(() => logged.includes("g1 start\n"), "the restarted worker starting");
  assertEquals(workers.running, 0);
  workers.stop("SIGTERM");
  await workers.stopped(30_000);
  ok(logged.includes("g1 stop SIGTERM\n"), logged.join(""));
  assertEquals(workers.running, 0);
});
