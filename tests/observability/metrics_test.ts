import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { Backend } from "../../src/balancing/backend.ts";
import {
  addTallies,
  type BackendTally,
  type ConnectionStats,
  departedPart,
  DURATION_BUCKETS,
  escapeLabel,
  type FrontendTally,
  type HistogramData,
  MAX_LISTED_CONNECTIONS,
  Metrics,
  type MetricsSource,
  type Tally,
} from "../../src/observability/metrics.ts";
import type { Frontend } from "../../src/connection/frontend.ts";
import { END_REASONS, type EndReason, type Session } from "../../src/connection/session.ts";
import { startLb } from "../../support/lb_process.ts";
import {
  adminPort,
  freePort,
  LOOPBACK,
  pseudoRandomBytes,
  readExactly,
  startEchoServer,
  waitUntil,
  withTimeout,
  writeAll,
} from "../_helpers.ts";

// ---- A small parser for the Prometheus text format (0.0.4), strict enough to catch mistakes.

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    const name = text.slice(i, eq);
    if (eq < 0 || !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name) || text[eq + 1] !== '"') {
      throw new SyntaxError(`bad label in ${JSON.stringify(line)}`);
    }
    let value = "";
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === "\\") {
        const next = text[++j];
        if (next === "n") value += "\n";
        else if (next === "\\" || next === '"') value += next;
        else throw new SyntaxError(`bad escape in ${JSON.stringify(line)}`);
      } else value += text[j];
    }
    if (j >= text.length) throw new SyntaxError(`unterminated label in ${JSON.stringify(line)}`);
    if (Object.hasOwn(labels, name)) throw new SyntaxError(`duplicate label ${name}`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ",") i++;
    else if (i < text.length) throw new SyntaxError(`expected , in ${JSON.stringify(line)}`);
  }
  return labels;
}

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) {
    throw new SyntaxError(`bad value in ${JSON.stringify(line)}`);
  }
  return Number(text);
}

/** Parses exposition text; throws on anything malformed or inconsistent. */
function parsePrometheus(text: string): Map<string, Family> {
  assert(text.endsWith("\n"), "exposition must end with a newline");
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      assert(NAME.test(name), `bad metric name ${name}`);
      const family = families.get(name) ?? { type: "untyped", help: "", samples: [] };
      if (kind === "TYPE") {
        assert(["counter", "gauge", "histogram", "summary", "untyped"].includes(rest), line);
        assert(family.samples.length === 0, `TYPE after samples: ${line}`);
        family.type = rest;
      } else family.help = rest;
      families.set(name, family);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new SyntaxError(`bad sample line ${JSON.stringify(line)}`);
    const [, name, labelText, valueText] = m as unknown as [
      string,
      string,
      string | undefined,
      string,
    ];
    const labels = labelText ? parseLabels(labelText, line) : {};
    const series = name + JSON.stringify(Object.entries(labels).sort());
    assert(!seen.has(series), `duplicate series ${series}`);
    seen.add(series);
    const base = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
    const family = families.get(base);
    assert(family, `sample ${name} before its TYPE`);
    if (base !== name) assert(family.type === "histogram", `${name} suffix on a ${family.type}`);
    family.samples.push({ name, labels, value: parseValue(valueText, line) });
  }
  for (const [name, family] of families) {
    assert(family.help !== "", `${name} has no HELP`);
    if (family.type === "counter") {
      assert(name.endsWith("_total"), `counter ${name} must end _total`);
    }
    if (family.type === "histogram") checkHistogram(name, family);
  }
  return families;
}

function checkHistogram(name: string, family: Family): void {
  const groups = new Map<string, Sample[]>();
  for (const s of family.samples) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  for (const samples of groups.values()) {
    const buckets = samples.filter((s) => s.name === `${name}_bucket`);
    const count = samples.find((s) => s.name === `${name}_count`)?.value;
    assert(buckets.length > 0 && count !== undefined, `${name}: buckets and count`);
    for (let i = 1; i < buckets.length; i++) {
      assert(
        parseValue(buckets[i]!.labels.le!, "le") >
          parseValue(buckets[i - 1]!.labels.le!, "le"),
        `${name}: le order`,
      );
      assert(buckets[i]!.value >= buckets[i - 1]!.value, `${name}: buckets not cumulative`);
    }
    assertEquals(buckets.at(-1)!.labels.le, "+Inf");
    assertEquals(buckets.at(-1)!.value, count);
  }
}

/** The value of the one sample of `name` whose labels include `labels`. */
function value(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const base = name.replace(/_(bucket|sum|count)$/, "");
  const family = families.get(name) ?? families.get(base);
  assert(family, `no metric ${name}`);
  const hits = family.samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  assertEquals(hits.length, 1, `${name} ${JSON.stringify(labels)}: ${hits.length} samples`);
  return hits[0]!.value;
}

async function scrape(port: number): Promise<Map<string, Family>> {
  const response = await fetch(`http://${LOOPBACK}:${port}/metrics`);
  assertEquals(response.status, 200);
  assert(response.headers.get("content-type")?.startsWith("text/plain; version=0.0.4"));
  return parsePrometheus(await response.text());
}

async function echoThrough(port: number, size: number): Promise<void> {
  using conn = await Deno.connect({ hostname: LOOPBACK, port });
  const data = pseudoRandomBytes(size, size);
  const reading = readExactly(conn, size);
  await writeAll(conn, data);
  assertEquals(await withTimeout(reading, 10_000, "echo"), data);
  await conn.closeWrite();
  assertEquals(await conn.read(new Uint8Array(1)), null);
}

// ---- Unit tests: rendering.

function fakeSource(name: string, backendId: string): MetricsSource {
  const backend = {
    id: backendId,
    healthy: false,
    drained: true,
    backup: false,
    weight: 3,
    maxConn: 0,
    active: 0,
    total: 2,
    connectFailures: 4,
    // What the proxy counted on the backend for the five connections observed below.
    bytesIn: 5,
    bytesOut: 10,
    health: { lastCheckMs: 250, lastError: "check: Connection refused" },
  } as unknown as Backend;
  const frontend = {
    name,
    addr: "127.0.0.1:1",
    pool: { balance: "roundrobin", backends: [backend] },
    sessions: new Set(),
    total: 2,
    bytesIn: 10,
    bytesOut: 20,
  } as unknown as Frontend;
  return { frontends: [frontend], started: Date.now() - 5000 };
}

Deno.test("Metrics.prometheus escapes label values and keeps histograms cumulative", () => {
  const name = 'we"ird\\name\nx';
  const source = fakeSource(name, "[::1]:8101");
  const backend = source.frontends[0]!.pool.backends[0]!;
  const metrics = new Metrics();
  const now = Date.now();
  for (const ms of [1, 30, 30, 2000, 7_200_000]) {
    metrics.observe(
      {
        started: now - ms,
        frontend: name,
        end: "eof",
        backend,
        up: { bytes: 1 },
        down: { bytes: 2 },
      } as unknown as Session,
      now,
    );
  }
  const families = parsePrometheus(metrics.prometheus(source));
  const labels = { frontend: name, backend: "[::1]:8101" };
  assertEquals(value(families, "lb_backend_up", labels), 0);
  assertEquals(value(families, "lb_backend_drained", labels), 1);
  assertEquals(value(families, "lb_backend_weight", labels), 3);
  assertEquals(value(families, "lb_backend_check_duration_seconds", labels), 0.25);
  assertEquals(value(families, "lb_backend_connect_failures_total", labels), 4);
  assertEquals(value(families, "lb_backend_bytes_in_total", labels), 5);
  assertEquals(value(families, "lb_backend_bytes_out_total", labels), 10);
  const bucket = (le: string) =>
    value(families, "lb_frontend_connection_duration_seconds_bucket", { frontend: name, le });
  assertEquals(bucket("0.005"), 1);
  assertEquals(bucket("0.05"), 3);
  assertEquals(bucket("2.5"), 4);
  assertEquals(bucket(String(DURATION_BUCKETS.at(-1))), 4);
  assertEquals(bucket("+Inf"), 5);
  assertEquals(value(families, "lb_frontend_connections_ended_total", { reason: "eof" }), 5);
  const sum = value(families, "lb_frontend_connection_duration_seconds_sum", { frontend: name });
  assert(Math.abs(sum - (0.001 + 0.06 + 2 + 7200)) < 1e-6, `sum ${sum}`);
  assert(value(families, "lb_uptime_seconds") >= 5);
  assertEquals(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

Deno.test("Metrics shows the source's reloads and drain, zero for a source without them", () => {
  const metrics = new Metrics();
  const bare = fakeSource("main", "127.0.0.1:8101");
  let families = parsePrometheus(metrics.prometheus(bare));
  assertEquals(value(families, "lb_reloads_total", { result: "applied" }), 0);
  assertEquals(value(families, "lb_reloads_total", { result: "rejected" }), 0);
  assertEquals(value(families, "lb_draining"), 0);
  const plain = metrics.snapshot(bare);
  assertEquals([plain.draining, plain.reloads], [false, { applied: 0, rejected: 0, last: null }]);

  const last = {
    ok: false,
    message: "rejected, old config kept: boom",
    time: "2026-01-01T00:00:00.000Z",
  };
  const source: MetricsSource = {
    ...bare,
    draining: true,
    reloads: { applied: 2, rejected: 1, last },
  };
  families = parsePrometheus(metrics.prometheus(source));
  assertEquals(families.get("lb_reloads_total")?.type, "counter");
  assertEquals(value(families, "lb_reloads_total", { result: "applied" }), 2);
  assertEquals(value(families, "lb_reloads_total", { result: "rejected" }), 1);
  assertEquals(value(families, "lb_draining"), 1);
  const snap = metrics.snapshot(source);
  assertEquals([snap.draining, snap.reloads], [true, { applied: 2, rejected: 1, last }]);
  snap.reloads.last!.message = "changed";
  assertEquals(last.message, "rejected, old config kept: boom", "a snapshot is a copy");
});

// ---- Unit tests: tallies from several threads.

function histogram(seconds: number[]): HistogramData {
  return {
    counts: DURATION_BUCKETS.map((le) => seconds.filter((s) => s <= le).length),
    count: seconds.length,
    sum: seconds.reduce((x, y) => x + y, 0),
  };
}

function ended(counts: Partial<Record<EndReason, number>> = {}): Record<EndReason, number> {
  return Object.fromEntries(END_REASONS.map((r) => [r, counts[r] ?? 0])) as Record<
    EndReason,
    number
  >;
}

function frontendTally(fields: Partial<FrontendTally> = {}): FrontendTally {
  return {
    active: 0,
    total: 0,
    bytesIn: 0,
    bytesOut: 0,
    ended: ended(),
    refused: {},
    routes: {},
    duration: histogram([]),
    connections: [],
    backends: {},
    ...fields,
  };
}

function backendTally(fields: Partial<BackendTally> = {}): BackendTally {
  return {
    total: 0,
    bytesIn: 0,
    bytesOut: 0,
    connectFailures: 0,
    duration: histogram([]),
    ...fields,
  };
}

function connection(client: string, ageSeconds: number): ConnectionStats {
  return { client, backend: "127.0.0.1:8101", bytesIn: 1, bytesOut: 2, ageSeconds };
}

Deno.test("addTallies sums counters, histograms and records key by key, keeping what one side has alone", () => {
  const a: Tally = {
    frontends: {
      main: frontendTally({
        active: 2,
        total: 10,
        bytesIn: 100,
        bytesOut: 200,
        ended: ended({ eof: 3 }),
        refused: { "proxy-malformed": 1 },
        routes: { default: 2 },
        duration: histogram([0.001, 2]),
        backends: {
          "127.0.0.1:8101": backendTally({
            total: 4,
            bytesIn: 40,
            bytesOut: 80,
            connectFailures: 1,
            duration: histogram([2]),
          }),
        },
      }),
      "only-a": frontendTally({ total: 1 }),
    },
    threads: [],
    sources: { size: 3, evictions: 1 },
  };
  const b: Tally = {
    frontends: {
      main: frontendTally({
        active: 1,
        total: 5,
        bytesIn: 7,
        bytesOut: 9,
        ended: ended({ eof: 1, reset: 2 }),
        refused: { "proxy-malformed": 2, "tls-no-sni": 1 },
        routes: { "a.example": 1 },
        duration: histogram([0.5]),
        backends: {
          "127.0.0.1:8101": backendTally({
            total: 1,
            bytesIn: 3,
            bytesOut: 4,
            connectFailures: 2,
            duration: histogram([0.5]),
          }),
          "127.0.0.1:8102": backendTally({ total: 6, duration: histogram([30]) }),
        },
      }),
      "only-b": frontendTally({ active: 4 }),
    },
    threads: [],
    sources: { size: 2, evictions: 4 },
  };
  const before = structuredClone([a, b]);
  const sum = addTallies(a, b);
  assertEquals(sum, {
    frontends: {
      main: frontendTally({
        active: 3,
        total: 15,
        bytesIn: 107,
        bytesOut: 209,
        ended: ended({ eof: 4, reset: 2 }),
        refused: { "proxy-malformed": 3, "tls-no-sni": 1 },
        routes: { default: 2, "a.example": 1 },
        duration: histogram([0.001, 2, 0.5]),
        backends: {
          "127.0.0.1:8101": backendTally({
            total: 5,
            bytesIn: 43,
            bytesOut: 84,
            connectFailures: 3,
            duration: histogram([2, 0.5]),
          }),
          "127.0.0.1:8102": backendTally({ total: 6, duration: histogram([30]) }),
        },
      }),
      "only-a": frontendTally({ total: 1 }),
      "only-b": frontendTally({ active: 4 }),
    },
    threads: [],
    sources: { size: 5, evictions: 5 },
  });
  // A new tally: changing it leaves the inputs as they were, the parts one side had alone too.
  sum.frontends["only-b"]!.active = 99;
  sum.frontends.main!.backends["127.0.0.1:8102"]!.duration.counts[0] = 99;
  sum.frontends.main!.refused["tls-no-sni"] = 99;
  assertEquals([a, b], before);
});

Deno.test("addTallies lists the open connections of both, the oldest first, at most 100", () => {
  const tally = (ages: number[]): Tally => ({
    frontends: { main: frontendTally({ connections: ages.map((s) => connection(`c${s}`, s)) }) },
    threads: [],
    sources: { size: 0, evictions: 0 },
  });
  const evens = Array.from({ length: 70 }, (_, i) => 138 - 2 * i);
  const odds = evens.map((s) => s + 1);
  const listed = addTallies(tally(evens), tally(odds)).frontends.main!.connections;
  assertEquals(listed.length, MAX_LISTED_CONNECTIONS);
  assertEquals(listed.map((c) => c.ageSeconds), Array.from({ length: 100 }, (_, i) => 139 - i));
  assertEquals(listed[0], connection("c139", 139));
});

Deno.test("departedPart keeps every counter and zeroes the gauges", () => {
  const main = frontendTally({
    active: 2,
    total: 9,
    bytesIn: 50,
    bytesOut: 60,
    ended: ended({ eof: 5, timeout: 2 }),
    refused: { "proxy-timeout": 1 },
    routes: { default: 7 },
    duration: histogram([0.02, 4]),
    connections: [connection("a", 3), connection("b", 1)],
    backends: { "127.0.0.1:8101": backendTally({ total: 7, bytesIn: 50, connectFailures: 2 }) },
  });
  const last: Tally = { frontends: { main }, threads: [], sources: { size: 12, evictions: 3 } };
  const before = structuredClone(last);
  const kept = departedPart(last);
  assertEquals(kept, {
    frontends: { main: { ...main, active: 0, connections: [] } },
    threads: [],
    sources: { size: 0, evictions: 3 },
  });
  assertEquals(last, before);
  // Added to a living thread's tally, it raises counters and leaves gauges alone.
  const living: Tally = {
    frontends: { main: frontendTally({ active: 1, total: 1, connections: [connection("c", 1)] }) },
    threads: [],
    sources: { size: 4, evictions: 0 },
  };
  const sum = addTallies(living, kept);
  assertEquals(
    [sum.frontends.main!.active, sum.frontends.main!.total, sum.frontends.main!.connections.length],
    [1, 10, 1],
  );
  assertEquals(sum.sources, { size: 4, evictions: 3 });
});

Deno.test("Metrics.tally is this thread's counters as plain data, open connections included", () => {
  const source: MetricsSource = {
    ...fakeSource("main", "127.0.0.1:8101"),
    sources: { size: 2, evictions: 1 },
  };
  const frontend = source.frontends[0]!;
  const backend = frontend.pool.backends[0]!;
  const now = Date.now();
  const metrics = new Metrics();
  metrics.observe(
    {
      started: now - 20,
      frontend: "main",
      end: "eof",
      backend,
      sniRoute: "default",
      up: { bytes: 1 },
      down: { bytes: 2 },
    } as unknown as Session,
    now,
  );
  frontend.sessions.add(
    {
      started: now - 3000,
      clientAddr: "10.0.0.1:5000",
      backend,
      up: { bytes: 30 },
      down: { bytes: 40 },
    } as unknown as Session,
  );
  frontend.sessions.add(
    {
      started: now - 1000,
      clientAddr: "10.0.0.2:5000",
      up: { bytes: 3 },
      down: { bytes: 4 },
    } as unknown as Session,
  );
  const tally = metrics.tally(source, now);
  assertEquals(tally, {
    frontends: {
      main: frontendTally({
        active: 2,
        total: 2,
        bytesIn: 10 + 33,
        bytesOut: 20 + 44,
        ended: ended({ eof: 1 }),
        routes: { default: 1 },
        duration: histogram([0.02]),
        connections: [
          {
            client: "10.0.0.1:5000",
            backend: "127.0.0.1:8101",
            bytesIn: 30,
            bytesOut: 40,
            ageSeconds: 3,
          },
          { client: "10.0.0.2:5000", backend: null, bytesIn: 3, bytesOut: 4, ageSeconds: 1 },
        ],
        backends: {
          "127.0.0.1:8101": backendTally({
            total: 2,
            bytesIn: 5 + 30,
            bytesOut: 10 + 40,
            connectFailures: 4,
            duration: histogram([0.02]),
          }),
        },
      }),
    },
    // Accepted over the thread's life: the one observed (finished) and the two open.
    threads: [{ thread: 0, active: 2, total: 3 }],
    sources: { size: 2, evictions: 1 },
  });
  // What postMessage would deliver: the same, with plain prototypes (deepStrictEqual checks them).
  assertEquals(structuredClone(tally), tally);
});

Deno.test("Metrics.prometheus and snapshot add other threads' tallies, a backend's active from the source only", () => {
  const source = fakeSource("main", "127.0.0.1:8101");
  const backend = source.frontends[0]!.pool.backends[0]!;
  Object.assign(backend, { active: 2 });
  const metrics = new Metrics();
  const now = Date.now();
  for (
    const [ms, fields] of [[1, { backend }], [30, { backend }], [2000, {
      end: "refused",
      refusal: "proxy-malformed",
    }]] as const
  ) {
    metrics.observe(
      {
        started: now - ms,
        frontend: "main",
        end: "eof",
        up: { bytes: 0 },
        down: { bytes: 0 },
        ...fields,
      } as unknown as Session,
      now,
    );
  }
  const worker: Tally = {
    frontends: {
      main: frontendTally({
        active: 3,
        total: 7,
        bytesIn: 1000,
        bytesOut: 2000,
        ended: ended({ eof: 4 }),
        refused: { "proxy-malformed": 1, "proxy-timeout": 2 },
        duration: histogram([0.001, 10, 10, 10]),
        connections: [connection("10.0.0.9:1", 5)],
        backends: {
          "127.0.0.1:8101": backendTally({
            total: 5,
            bytesIn: 500,
            bytesOut: 900,
            connectFailures: 1,
            duration: histogram([10, 10, 10]),
          }),
          "127.0.0.1:9999": backendTally({ total: 1 }),
        },
      }),
      ghost: frontendTally({ total: 1 }),
    },
    threads: [],
    sources: { size: 0, evictions: 0 },
  };
  const m = parsePrometheus(metrics.prometheus(source, now, [worker]));
  const fe = { frontend: "main" };
  const be = { frontend: "main", backend: "127.0.0.1:8101" };
  assertEquals(value(m, "lb_frontend_connections_total", fe), 2 + 7);
  assertEquals(value(m, "lb_frontend_connections_active", fe), 0 + 3);
  assertEquals(value(m, "lb_frontend_bytes_in_total", fe), 10 + 1000);
  assertEquals(value(m, "lb_frontend_bytes_out_total", fe), 20 + 2000);
  assertEquals(value(m, "lb_frontend_connections_ended_total", { ...fe, reason: "eof" }), 2 + 4);
  assertEquals(value(m, "lb_frontend_connections_ended_total", { ...fe, reason: "refused" }), 1);
  assertEquals(value(m, "lb_frontend_refused_total", { ...fe, reason: "proxy-malformed" }), 2);
  assertEquals(value(m, "lb_frontend_refused_total", { ...fe, reason: "proxy-timeout" }), 2);
  const bucket = (le: string) =>
    value(m, "lb_frontend_connection_duration_seconds_bucket", { ...fe, le });
  assertEquals([bucket("0.005"), bucket("0.05"), bucket("2.5"), bucket("10"), bucket("+Inf")], [
    2,
    3,
    4,
    7,
    7,
  ]);
  const sum = value(m, "lb_frontend_connection_duration_seconds_sum", fe);
  assert(Math.abs(sum - (0.001 + 0.03 + 2 + 0.001 + 30)) < 1e-6, `sum ${sum}`);
  assertEquals(value(m, "lb_backend_connections_total", be), 2 + 5);
  assertEquals(value(m, "lb_backend_bytes_in_total", be), 5 + 500);
  assertEquals(value(m, "lb_backend_bytes_out_total", be), 10 + 900);
  assertEquals(value(m, "lb_backend_connect_failures_total", be), 4 + 1);
  assertEquals(value(m, "lb_backend_connection_duration_seconds_count", be), 2 + 3);
  assertEquals(value(m, "lb_backend_connection_duration_seconds_bucket", { ...be, le: "1" }), 2);
  assertEquals(value(m, "lb_backend_connections_active", be), 2);
  // What is in a tally but not in the source is not shown.
  const shown = [...m.values()].flatMap((f) => f.samples);
  assert(
    !shown.some((s) => s.labels.frontend === "ghost" || s.labels.backend === "127.0.0.1:9999"),
  );

  const snap = metrics.snapshot(source, now, [worker]);
  assertEquals(snap.frontends.map((f) => f.name), ["main"]);
  const [stats] = snap.frontends;
  assertEquals([stats!.total, stats!.active, stats!.bytesIn, stats!.connections], [9, 3, 1010, [
    connection("10.0.0.9:1", 5),
  ]]);
  assertEquals(stats!.backends.map((b) => [b.id, b.active, b.total]), [["127.0.0.1:8101", 2, 7]]);
});

// ---- End to end: numbers match the traffic sent.

Deno.test("GET /metrics counts connections and bytes per frontend and backend, live and finished", async () => {
  await using a = startEchoServer();
  await using b = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "-p",
    String(b.port),
    "--admin",
    "127.0.0.1:0",
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  const sizes = [10, 2000, 70_000, 5, 123_456, 1];
  for (const size of sizes) await echoThrough(lb.port, size);
  const sent = sizes.reduce((x, y) => x + y, 0);
  // The client sees EOF a moment before lb has finished its bookkeeping.
  await waitUntil(async () => {
    const m = await scrape(admin);
    return value(m, "lb_frontend_connection_duration_seconds_count", { frontend: "main" }) ===
      sizes.length;
  }, "every connection to finish");

  // One connection left open mid-stream: counted as active, its bytes already visible.
  using open = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  await writeAll(open, new Uint8Array(777));
  await readExactly(open, 777);

  const m = await scrape(admin);
  const fe = { frontend: "main" };
  assertEquals(value(m, "lb_frontend_connections_total", fe), sizes.length + 1);
  assertEquals(value(m, "lb_frontend_connections_active", fe), 1);
  assertEquals(value(m, "lb_frontend_bytes_in_total", fe), sent + 777);
  assertEquals(value(m, "lb_frontend_bytes_out_total", fe), sent + 777);
  assertEquals(
    value(m, "lb_frontend_connections_ended_total", { ...fe, reason: "eof" }),
    sizes.length,
  );
  assertEquals(value(m, "lb_frontend_connection_duration_seconds_count", fe), sizes.length);

  const backends = [a.port, b.port].map((p) => ({ frontend: "main", backend: `127.0.0.1:${p}` }));
  const sum = (name: string) => backends.reduce((n, labels) => n + value(m, name, labels), 0);
  assertEquals(sum("lb_backend_connections_total"), sizes.length + 1);
  assertEquals(sum("lb_backend_connections_active"), 1);
  assertEquals(sum("lb_backend_bytes_in_total"), sent + 777);
  assertEquals(sum("lb_backend_bytes_out_total"), sent + 777);
  assertEquals(sum("lb_backend_connection_duration_seconds_count"), sizes.length);
  // Round robin: each backend got its share, and its bytes are its own connections'.
  const perBackend = backends.map((labels) => value(m, "lb_backend_connections_total", labels));
  assert(perBackend.every((n) => n >= 3), `split ${perBackend}`);
  for (const labels of backends) {
    assertEquals(value(m, "lb_backend_up", labels), 1);
    assertEquals(value(m, "lb_backend_connect_failures_total", labels), 0);
  }
  assert(value(m, "process_resident_memory_bytes") > 1_000_000);
  assert(value(m, "lb_uptime_seconds") > 0);

  await open.closeWrite();
  assertEquals(await open.read(new Uint8Array(1)), null);
  await waitUntil(async () => {
    const after = await scrape(admin);
    return value(after, "lb_frontend_connections_active", fe) === 0 &&
      value(after, "lb_frontend_connection_duration_seconds_count", fe) === sizes.length + 1;
  }, "the open connection to finish");
  const after = await scrape(admin);
  // Moving from live to finished neither loses nor doubles bytes.
  assertEquals(value(after, "lb_frontend_bytes_in_total", fe), sent + 777);
  assertEquals(
    backends.reduce((n, labels) => n + value(after, "lb_backend_bytes_out_total", labels), 0),
    sent + 777,
  );
});

Deno.test("GET /metrics counts connect failures and no-backend endings", async () => {
  const dead = freePort();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(dead),
    "--admin",
    "127.0.0.1:0",
    "--retries",
    "0",
    "--health-interval",
    "0",
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  for (let i = 0; i < 3; i++) {
    using conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    assertEquals(await withTimeout(conn.read(new Uint8Array(1)), 10_000, "close"), null);
  }
  const labels = { frontend: "main", backend: `127.0.0.1:${dead}` };
  await waitUntil(async () => {
    const m = await scrape(admin);
    return value(m, "lb_frontend_connections_ended_total", { reason: "no-backend" }) === 3;
  }, "three no-backend endings");
  const m = await scrape(admin);
  assertEquals(value(m, "lb_backend_connect_failures_total", labels), 3);
  assertEquals(value(m, "lb_backend_connections_total", labels), 0);
  // Passive failures alone never take a backend down (no active checks to bring it back).
  assertEquals(value(m, "lb_backend_up", labels), 1);
});

Deno.test("GET /metrics shows health 0 after a backend goes down, with check latency", async () => {
  const a = startEchoServer();
  await using b = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "-p",
    String(b.port),
    "--admin",
    "127.0.0.1:0",
    "--health-interval",
    "200ms",
    "--fall",
    "2",
    "--log",
    "off",
  ]);
  const admin = await adminPort(lb);
  const la = { frontend: "main", backend: `127.0.0.1:${a.port}` };
  const lbb = { frontend: "main", backend: `127.0.0.1:${b.port}` };
  await waitUntil(async () => {
    const m = await scrape(admin);
    return m.get("lb_backend_check_duration_seconds")!.samples.length === 2;
  }, "first health checks");
  let m = await scrape(admin);
  assertEquals([value(m, "lb_backend_up", la), value(m, "lb_backend_up", lbb)], [1, 1]);
  const latency = value(m, "lb_backend_check_duration_seconds", la);
  assert(latency >= 0 && latency < 5, `check latency ${latency}s`);

  await a[Symbol.asyncDispose]();
  await waitUntil(
    async () => value(await scrape(admin), "lb_backend_up", la) === 0,
    "a down",
    15_000,
  );
  m = await scrape(admin);
  assertEquals(value(m, "lb_backend_up", lbb), 1);
  await lb.waitFor(new RegExp(`backend 127\\.0\\.0\\.1:${a.port} is down`));
});
