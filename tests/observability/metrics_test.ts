import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { Backend } from "../../src/balancing/backend.ts";
import {
  DURATION_BUCKETS,
  escapeLabel,
  Metrics,
  type MetricsSource,
} from "../../src/observability/metrics.ts";
import type { Frontend } from "../../src/connection/frontend.ts";
import type { Session } from "../../src/connection/session.ts";
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
