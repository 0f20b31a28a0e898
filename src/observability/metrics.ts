/**
 * Metrics: per frontend and per backend connection counts, bytes, failures,
 * health and a duration histogram, as Prometheus text (`/metrics`) or a JSON
 * snapshot (`/stats`). Counters are read from their owners (`Frontend`,
 * `Backend`, the `Lb`'s `ReloadStats` and drain state) at scrape time, plus
 * the bytes open connections have moved so far; only the duration histograms
 * and the end reasons are kept here, fed by {@link Metrics.observe} once per
 * finished connection. With worker threads each thread's counters travel as a
 * plain {@link Tally}; the admin adds the others' to its own
 * ({@link addTallies}) and shows one view.
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import type { Frontend } from "../connection/frontend.ts";
import { END_REASONS, type EndReason, type Session } from "../connection/session.ts";
import { VERSION } from "../common/version.ts";

/** What metrics read from a running lb (an `Lb` satisfies it). */
export interface MetricsSource {
  readonly frontends: readonly Frontend[];
  /** Start time, ms since the epoch. */
  readonly started: number;
  /** What reloads came to (an `Lb`'s `ReloadStats`); absent counts none. */
  readonly reloads?: Readonly<ReloadsStats>;
  /** Whether lb has stopped accepting and drains (SIGINT/SIGTERM); absent is false. */
  readonly draining?: boolean;
  /**
   * Connections open now, those of frontends a reload removed included;
   * absent: the current frontends' alone.
   */
  readonly open?: number;
  /** The per-source table (`--max-conns-per-source`, `--conn-rate-per-source`); absent is empty. */
  readonly sources?: { readonly size: number; readonly evictions: number };
  /** Backends given by name and followed through DNS; absent has none. */
  readonly discovery?: { stats(): DnsNameStats[] };
}

/** One name followed through DNS (`-p NAME:PORT`, `-p srv:...`) in a {@link StatsSnapshot}. */
export interface DnsNameStats {
  /** The entry as configured: `NAME:PORT` or `srv:_SERVICE._PROTO.NAME`. */
  name: string;
  /** When the last lookup ended, ISO 8601; null before the first. */
  lastLookup: string | null;
  /** How the last lookup went: `ok` or `failed` (the last good set is kept); null before the first. */
  result: "ok" | "failed" | null;
  /** Why the last lookup failed (`REASON: message`); null after a success. */
  error: string | null;
  /** The addresses in use (the last good answer), `ADDRESS:PORT`. */
  endpoints: string[];
  /** Lookups so far by outcome: `ok`, `nxdomain`, `empty`, `timeout`, `unreachable`, `error`. */
  lookups: Record<string, number>;
}

/** Reloads (SIGHUP, `POST /reload`) in a {@link StatsSnapshot}. */
export interface ReloadsStats {
  /** Reloads that took effect. */
  applied: number;
  /** Reloads refused (the old config kept serving). */
  rejected: number;
  /** The latest one; null before the first. */
  last: { ok: boolean; message: string; time: string } | null;
}

/** Upper bounds of the connection duration histogram, seconds. */
export const DURATION_BUCKETS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  300,
  1800,
  3600,
];

/** A duration histogram as plain data (it crosses threads in a {@link Tally}). */
export interface HistogramData {
  /** Observations at most each bound of {@link DURATION_BUCKETS}, in that order (cumulative). */
  counts: number[];
  /** All observations. */
  count: number;
  /** Of all observations, seconds. */
  sum: number;
}

/** One backend's counters in one thread, in a {@link FrontendTally}. */
export interface BackendTally {
  total: number;
  /** Bytes from clients sent to this backend, open connections included. */
  bytesIn: number;
  /** Bytes from this backend sent to clients, open connections included. */
  bytesOut: number;
  connectFailures: number;
  duration: HistogramData;
}

/** One frontend's counters in one thread, in a {@link Tally}. */
export interface FrontendTally {
  /** Client connections open now (a gauge). */
  active: number;
  total: number;
  /** Bytes from clients: finished connections plus what open ones moved so far. */
  bytesIn: number;
  /** Bytes to clients: finished connections plus what open ones moved so far. */
  bytesOut: number;
  ended: Record<EndReason, number>;
  /** Refused connections by reason. */
  refused: Record<string, number>;
  /** Finished connections by SNI route. */
  routes: Record<string, number>;
  duration: HistogramData;
  /** Open connections, the oldest first, at most {@link MAX_LISTED_CONNECTIONS} (a gauge). */
  connections: ConnectionStats[];
  /** By backend id. */
  backends: Record<string, BackendTally>;
}

/**
 * What one thread counted: plain data, so that it can be posted to another
 * thread, and additive ({@link addTallies}).
 */
export interface Tally {
  /** By frontend name. */
  frontends: Record<string, FrontendTally>;
  /** Per thread (`--workers`) of the tally: its open and accepted connections. */
  threads: ThreadStats[];
  /** The thread's per-source table: `size` is a gauge, `evictions` a counter. */
  sources: { size: number; evictions: number };
}

/** One thread (0 the main thread, then each worker) in {@link StatsSnapshot.threads}. */
export interface ThreadStats {
  thread: number;
  /** Client connections open in this thread now. */
  active: number;
  /** Client connections this thread accepted (since it started: a restarted worker starts at 0). */
  total: number;
}

/** A cumulative histogram in the Prometheus sense. */
class Histogram implements HistogramData {
  readonly counts = new Array<number>(DURATION_BUCKETS.length).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]!) this.counts[i]!++;
    }
  }
}

/** What metrics keep about one frontend beyond the `Frontend` object. */
interface FrontendExtra {
  duration: Histogram;
  ended: Record<EndReason, number>;
  /** Refused connections by reason (`proxy-malformed`, ...). */
  refused: Map<string, number>;
  /** Connections by SNI route (the matched `sni=` name, or `default`). */
  routes: Map<string, number>;
}

/** One backend in a {@link StatsSnapshot}. */
export interface BackendStats {
  id: string;
  /** UP, DOWN (failed health) or DRAIN (drained by an operator or a reload). */
  state: "UP" | "DOWN" | "DRAIN";
  healthy: boolean;
  drained: boolean;
  backup: boolean;
  weight: number;
  maxConn: number;
  active: number;
  total: number;
  /** Bytes from clients sent to this backend. */
  bytesIn: number;
  /** Bytes from this backend sent to clients. */
  bytesOut: number;
  connectFailures: number;
  /** Duration of the last health check, ms; -1 before the first. */
  lastCheckMs: number;
  /** Why the last check or connect failed; null after a success. */
  lastError: string | null;
}

/** One frontend in a {@link StatsSnapshot}. */
export interface FrontendStats {
  name: string;
  addr: string;
  balance: string;
  active: number;
  total: number;
  /** Bytes from clients. */
  bytesIn: number;
  /** Bytes to clients. */
  bytesOut: number;
  /** Finished connections by how they ended. */
  ended: Record<EndReason, number>;
  backends: BackendStats[];
  /** Open connections, the oldest first, at most {@link MAX_LISTED_CONNECTIONS}. */
  connections: ConnectionStats[];
}

/** One open connection in {@link FrontendStats.connections}. */
export interface ConnectionStats {
  /** The client (after an accepted PROXY header, the one it named). */
  client: string;
  /** The peer that sent an accepted PROXY header, else absent. */
  peer?: string;
  /** The TLS server name, on a frontend that routes by SNI. */
  sni?: string;
  /** The backend's id, or null while it is being picked. */
  backend: string | null;
  bytesIn: number;
  bytesOut: number;
  /** Since accept, seconds. */
  ageSeconds: number;
}

/** How many open connections `/stats` lists per frontend. */
export const MAX_LISTED_CONNECTIONS = 100;

/** The JSON served at `/stats`. */
export interface StatsSnapshot {
  version: string;
  /** Snapshot time, ISO 8601. */
  time: string;
  startedAt: string;
  uptimeSeconds: number;
  /** Resident set size, bytes. */
  rssBytes: number;
  /** True once lb has stopped accepting for good and waits for open connections. */
  draining: boolean;
  reloads: ReloadsStats;
  /** The per-source table: sources tracked now, and dropped to stay within its size. */
  sources: { size: number; evictions: number };
  /** Each backend name followed through DNS. */
  discovery: DnsNameStats[];
  /** Each live thread's open and accepted connections (the main thread is 0; `--workers`). */
  threads: ThreadStats[];
  frontends: FrontendStats[];
}

/** The state word the stats page shows for a backend. */
export function backendState(backend: Backend): BackendStats["state"] {
  if (backend.drained) return "DRAIN";
  return backend.healthy ? "UP" : "DOWN";
}

/**
 * Collects what finished connections leave behind and renders everything:
 * this thread's counters plus the other threads' tallies, if any.
 *
 * @example
 * ```ts
 * const metrics = new Metrics();
 * const lb = Lb.start(config, logger, (session) => metrics.observe(session));
 * const text = metrics.prometheus(lb);
 * ```
 */
export class Metrics {
  #frontends = new Map<string, FrontendExtra>();
  #backends = new WeakMap<Backend, Histogram>();
  readonly #thread: number;
  /** Connections observed (finished) in this thread: with those open, every one it accepted. */
  #ended = 0;

  /** @param thread The thread counted here: 0 the main thread, then each worker's number. */
  constructor(thread = 0) {
    this.#thread = thread;
  }

  /** Records a finished connection; call once per connection (the `onEnd` hook). */
  observe(session: Session, now: number = Date.now()): void {
    this.#ended++;
    const seconds = Math.max(0, now - session.started) / 1000;
    const frontend = this.#frontend(session.frontend);
    frontend.duration.observe(seconds);
    frontend.ended[session.end ?? "eof"]++;
    if (session.sniRoute !== undefined) {
      frontend.routes.set(session.sniRoute, (frontend.routes.get(session.sniRoute) ?? 0) + 1);
    }
    if (session.refusal !== undefined) {
      frontend.refused.set(session.refusal, (frontend.refused.get(session.refusal) ?? 0) + 1);
    }
    if (session.backend) this.#backendDuration(session.backend).observe(seconds);
  }

  #frontend(name: string): FrontendExtra {
    let extra = this.#frontends.get(name);
    if (!extra) {
      extra = {
        duration: new Histogram(),
        ended: _zeroEnded(),
        refused: new Map(),
        routes: new Map(),
      };
      this.#frontends.set(name, extra);
    }
    return extra;
  }

  #backendDuration(backend: Backend): Histogram {
    let histogram = this.#backends.get(backend);
    if (!histogram) {
      histogram = new Histogram();
      this.#backends.set(backend, histogram);
    }
    return histogram;
  }

  /**
   * This thread's counters now, for each frontend of `source`: what its
   * frontends, backends and open connections hold, plus what finished
   * connections left here. Plain data: it can be posted to another thread.
   *
   * @param source This thread's lb.
   * @param now The time open connections' ages are measured at, ms since the epoch.
   * @returns A new tally; later traffic does not change it.
   *
   * @example
   * ```ts
   * self.postMessage({ tally: metrics.tally(lb) });
   * ```
   */
  tally(source: MetricsSource, now: number = Date.now()): Tally {
    const frontends = source.frontends.map((f) => [f.name, this.#frontendTally(f, now)] as const);
    // Counted over the thread's life, not its current frontends: a reload that
    // removes one takes nothing off.
    const active = source.open ?? frontends.reduce((n, [, f]) => n + f.active, 0);
    return {
      frontends: Object.fromEntries(frontends),
      threads: [{ thread: this.#thread, active, total: this.#ended + active }],
      sources: { size: source.sources?.size ?? 0, evictions: source.sources?.evictions ?? 0 },
    };
  }

  #frontendTally(frontend: Frontend, now: number): FrontendTally {
    const extra = this.#frontend(frontend.name);
    const backends = new Map(frontend.pool.backends.map((b) => [b, this.#backendTally(b)]));
    const tally: FrontendTally = {
      active: frontend.sessions.size,
      total: frontend.total,
      bytesIn: frontend.bytesIn,
      bytesOut: frontend.bytesOut,
      ended: { ...extra.ended },
      refused: Object.fromEntries(extra.refused),
      routes: Object.fromEntries(extra.routes),
      duration: _copyHistogram(extra.duration),
      connections: [],
      backends: Object.fromEntries([...backends].map(([backend, t]) => [backend.id, t])),
    };
    for (const session of frontend.sessions) {
      _addOpen(tally, session.backend && backends.get(session.backend), session, now);
    }
    return tally;
  }

  #backendTally(backend: Backend): BackendTally {
    return {
      total: backend.total,
      bytesIn: backend.bytesIn,
      bytesOut: backend.bytesOut,
      connectFailures: backend.connectFailures,
      duration: _copyHistogram(this.#backends.get(backend) ?? new Histogram()),
    };
  }

  /** This thread's tally plus the others'. */
  #sum(source: MetricsSource, now: number, others: readonly Tally[]): Tally {
    return others.reduce(addTallies, this.tally(source, now));
  }

  /**
   * The state of every frontend and backend now. Bytes are live: finished
   * connections plus what open ones have moved so far. Which frontends and
   * backends exist, and their settings and health, come from `source`; the
   * counters are this thread's plus `others`' (a backend's `active` excepted:
   * `source` already counts it over every thread).
   *
   * @param source This thread's lb.
   * @param now The snapshot time, ms since the epoch.
   * @param others The other threads' tallies (see {@link Metrics.tally}).
   */
  snapshot(
    source: MetricsSource,
    now: number = Date.now(),
    others: readonly Tally[] = [],
  ): StatsSnapshot {
    return _snapshot(source, now, this.#sum(source, now, others));
  }

  /**
   * Everything in the Prometheus text exposition format (version 0.0.4),
   * counted as {@link Metrics.snapshot} counts.
   *
   * @param source This thread's lb.
   * @param now The scrape time, ms since the epoch.
   * @param others The other threads' tallies (see {@link Metrics.tally}).
   */
  prometheus(
    source: MetricsSource,
    now: number = Date.now(),
    others: readonly Tally[] = [],
  ): string {
    const tally = this.#sum(source, now, others);
    const snap = _snapshot(source, now, tally);
    const out = new _Exposition();
    _processFamilies(out, snap, source);
    _frontendFamilies(out, snap, tally);
    _backendFamilies(out, snap, tally);
    return out.text();
  }
}

/**
 * Adds two tallies: numbers summed, records merged key by key, histograms
 * bucket by bucket, open connections listed together (the oldest first, at
 * most {@link MAX_LISTED_CONNECTIONS}). A frontend or backend in one only is
 * kept as it is.
 *
 * @param a One tally; left as it is.
 * @param b Another; left as it is.
 * @returns A new tally sharing nothing with `a` or `b`.
 *
 * @example
 * ```ts
 * const all = workerTallies.reduce(addTallies, metrics.tally(lb));
 * ```
 */
export function addTallies(a: Tally, b: Tally): Tally {
  return {
    frontends: _merge(a.frontends, b.frontends, _zeroFrontend(), _addFrontends),
    threads: [...a.threads, ...b.threads].map((t) => ({ ...t }))
      .sort((x, y) => x.thread - y.thread),
    sources: {
      size: a.sources.size + b.sources.size,
      evictions: a.sources.evictions + b.sources.evictions,
    },
  };
}

/**
 * What must outlive the thread that counted `tally`, so that counters never
 * go backwards: every counter, with the gauges (open connections, the
 * per-source table's size) at zero.
 *
 * @param tally The last tally of a thread that has ended; left as it is.
 * @returns A new tally.
 *
 * @example
 * ```ts
 * departed = addTallies(departed, departedPart(lastTally));
 * ```
 */
export function departedPart(tally: Tally): Tally {
  const counters = Object.entries(tally.frontends).map((
    [name, frontend],
  ): [string, FrontendTally] => [name, { ...frontend, active: 0, connections: [] }]);
  // Added to nothing: a copy that shares nothing with `tally`.
  return addTallies(
    { frontends: Object.fromEntries(counters), threads: [], sources: { size: 0, evictions: 0 } },
    { frontends: {}, threads: [], sources: { size: 0, evictions: tally.sources.evictions } },
  );
}

function _addFrontends(a: FrontendTally, b: FrontendTally): FrontendTally {
  return {
    active: a.active + b.active,
    total: a.total + b.total,
    bytesIn: a.bytesIn + b.bytesIn,
    bytesOut: a.bytesOut + b.bytesOut,
    ended: _merge(a.ended, b.ended, 0, _add) as Record<EndReason, number>,
    refused: _merge(a.refused, b.refused, 0, _add),
    routes: _merge(a.routes, b.routes, 0, _add),
    duration: _addHistograms(a.duration, b.duration),
    connections: [...a.connections, ...b.connections]
      .sort((x, y) => y.ageSeconds - x.ageSeconds)
      .slice(0, MAX_LISTED_CONNECTIONS)
      .map((connection) => ({ ...connection })),
    backends: _merge(a.backends, b.backends, _zeroBackend(), _addBackends),
  };
}

function _addBackends(a: BackendTally, b: BackendTally): BackendTally {
  return {
    total: a.total + b.total,
    bytesIn: a.bytesIn + b.bytesIn,
    bytesOut: a.bytesOut + b.bytesOut,
    connectFailures: a.connectFailures + b.connectFailures,
    duration: _addHistograms(a.duration, b.duration),
  };
}

function _addHistograms(a: HistogramData, b: HistogramData): HistogramData {
  return {
    counts: DURATION_BUCKETS.map((_, i) => (a.counts[i] ?? 0) + (b.counts[i] ?? 0)),
    count: a.count + b.count,
    sum: a.sum + b.sum,
  };
}

function _add(a: number, b: number): number {
  return a + b;
}

/** Each key of `a` or `b` with `add` of both values, `zero` standing in for a missing one. */
function _merge<T>(
  a: Readonly<Record<string, T>>,
  b: Readonly<Record<string, T>>,
  zero: T,
  add: (x: T, y: T) => T,
): Record<string, T> {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return Object.fromEntries(
    [...keys].map((key) => [key, add(_own(a, key) ?? zero, _own(b, key) ?? zero)]),
  );
}

/** `record[key]` if it is its own (a frontend may be named `__proto__`). */
function _own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function _zeroEnded(): Record<EndReason, number> {
  return Object.fromEntries(END_REASONS.map((r) => [r, 0])) as Record<EndReason, number>;
}

function _zeroHistogram(): HistogramData {
  return { counts: DURATION_BUCKETS.map(() => 0), count: 0, sum: 0 };
}

function _zeroBackend(): BackendTally {
  return { total: 0, bytesIn: 0, bytesOut: 0, connectFailures: 0, duration: _zeroHistogram() };
}

function _zeroFrontend(): FrontendTally {
  return {
    active: 0,
    total: 0,
    bytesIn: 0,
    bytesOut: 0,
    ended: _zeroEnded(),
    refused: {},
    routes: {},
    duration: _zeroHistogram(),
    connections: [],
    backends: {},
  };
}

function _copyHistogram(histogram: HistogramData): HistogramData {
  return { counts: [...histogram.counts], count: histogram.count, sum: histogram.sum };
}

/** Counts what an open connection has moved so far, and lists it while there is room. */
function _addOpen(
  tally: FrontendTally,
  backend: BackendTally | undefined,
  session: Session,
  now: number,
): void {
  tally.bytesIn += session.up.bytes;
  tally.bytesOut += session.down.bytes;
  if (backend) {
    backend.bytesIn += session.up.bytes;
    backend.bytesOut += session.down.bytes;
  }
  if (tally.connections.length >= MAX_LISTED_CONNECTIONS) return;
  tally.connections.push({
    client: session.clientAddr,
    ...(session.peerAddr === undefined ? {} : { peer: session.peerAddr }),
    ...(session.serverName === undefined ? {} : { sni: session.serverName }),
    backend: session.backend?.id ?? null,
    bytesIn: session.up.bytes,
    bytesOut: session.down.bytes,
    ageSeconds: Math.max(0, now - session.started) / 1000,
  });
}

/** The snapshot of `source`'s frontends and backends with the counts of `tally`. */
function _snapshot(source: MetricsSource, now: number, tally: Tally): StatsSnapshot {
  return {
    version: VERSION,
    time: new Date(now).toISOString(),
    startedAt: new Date(source.started).toISOString(),
    uptimeSeconds: Math.max(0, now - source.started) / 1000,
    rssBytes: Deno.memoryUsage().rss,
    draining: source.draining ?? false,
    reloads: {
      applied: source.reloads?.applied ?? 0,
      rejected: source.reloads?.rejected ?? 0,
      last: source.reloads?.last ? { ...source.reloads.last } : null,
    },
    sources: { size: tally.sources.size, evictions: tally.sources.evictions },
    discovery: source.discovery?.stats() ?? [],
    threads: tally.threads.map((t) => ({ ...t })),
    frontends: source.frontends.map((f) => _frontendStats(f, _frontendOf(tally, f.name))),
  };
}

function _frontendOf(tally: Tally, name: string): FrontendTally {
  return _own(tally.frontends, name) ?? _zeroFrontend();
}

function _backendOf(tally: FrontendTally, id: string): BackendTally {
  return _own(tally.backends, id) ?? _zeroBackend();
}

function _frontendStats(frontend: Frontend, tally: FrontendTally): FrontendStats {
  return {
    name: frontend.name,
    addr: frontend.addr,
    balance: frontend.pool.balance,
    active: tally.active,
    total: tally.total,
    bytesIn: tally.bytesIn,
    bytesOut: tally.bytesOut,
    ended: { ...tally.ended },
    connections: tally.connections.map((connection) => ({ ...connection })),
    backends: frontend.pool.backends.map((b) => _backendStats(b, _backendOf(tally, b.id))),
  };
}

function _backendStats(backend: Backend, tally: BackendTally): BackendStats {
  return {
    id: backend.id,
    state: backendState(backend),
    healthy: backend.healthy,
    drained: backend.drained,
    backup: backend.backup,
    weight: backend.weight,
    maxConn: backend.maxConn,
    active: backend.active,
    total: tally.total,
    bytesIn: tally.bytesIn,
    bytesOut: tally.bytesOut,
    connectFailures: tally.connectFailures,
    lastCheckMs: backend.health.lastCheckMs,
    lastError: backend.health.lastError ?? null,
  };
}

function _processFamilies(out: _Exposition, snap: StatsSnapshot, source: MetricsSource): void {
  out.family("lb_info", "gauge", "Build information.", [[{ version: VERSION }, 1]]);
  for (const [name, type, help, value] of PROCESS_FAMILIES) {
    out.family(name, type, help, [[{}, value(snap, source)]]);
  }
  out.family("lb_reloads_total", "counter", "Reloads (SIGHUP, POST /reload) by result.", [
    [{ result: "applied" }, snap.reloads.applied],
    [{ result: "rejected" }, snap.reloads.rejected],
  ]);
  out.family(
    "lb_thread_connections_active",
    "gauge",
    "Client connections open now, per thread (0 the main thread, then each worker).",
    snap.threads.map((t) => [{ thread: String(t.thread) }, t.active] as const),
  );
  out.family(
    "lb_thread_connections_total",
    "counter",
    "Client connections accepted per thread since that thread started (a restarted worker starts at 0).",
    snap.threads.map((t) => [{ thread: String(t.thread) }, t.total] as const),
  );
  out.family(
    "lb_source_table_entries",
    "gauge",
    "Client sources tracked for the per-source limits.",
    [[{}, snap.sources.size]],
  );
  out.family(
    "lb_source_table_evictions_total",
    "counter",
    "Client sources dropped to keep the per-source table within --source-table-size.",
    [[{}, snap.sources.evictions]],
  );
  out.family(
    "lb_dns_lookups_total",
    "counter",
    "DNS lookups of backends given by name, by outcome (ok, nxdomain, empty, timeout, unreachable, error).",
    snap.discovery.flatMap((dns) =>
      Object.entries(dns.lookups).map(([result, n]) => [{ name: dns.name, result }, n] as const)
    ),
  );
  out.family(
    "lb_dns_endpoints",
    "gauge",
    "Addresses a backend name has now (its last good answer).",
    snap.discovery.map((dns) => [{ name: dns.name }, dns.endpoints.length] as const),
  );
}

function _frontendFamilies(out: _Exposition, snap: StatsSnapshot, tally: Tally): void {
  for (const [name, type, help, value] of FRONTEND_FAMILIES) {
    out.family(name, type, help, snap.frontends.map((fe) => [{ frontend: fe.name }, value(fe)]));
  }
  for (const [name, help, label, counts] of FRONTEND_COUNTS) {
    out.family(
      name,
      "counter",
      help,
      snap.frontends.flatMap((fe) =>
        Object.entries(counts(_frontendOf(tally, fe.name))).map(([key, n]) =>
          [{ frontend: fe.name, [label]: key }, n] as const
        )
      ),
    );
  }
  out.histogram(
    "lb_frontend_connection_duration_seconds",
    "Duration of finished client connections.",
    snap.frontends.map((fe) => [{ frontend: fe.name }, _frontendOf(tally, fe.name).duration]),
  );
}

function _backendFamilies(out: _Exposition, snap: StatsSnapshot, tally: Tally): void {
  const backends = snap.frontends.flatMap((fe) =>
    fe.backends.map((be) => ({ labels: { frontend: fe.name, backend: be.id }, be }))
  );
  for (const [name, type, help, value] of BACKEND_FAMILIES) {
    const samples = backends.map(({ labels, be }) => [labels, value(be)] as const);
    out.family(name, type, help, samples.filter(([, v]) => v !== undefined) as Sample[]);
  }
  out.histogram(
    "lb_backend_connection_duration_seconds",
    "Duration of finished connections that reached the backend.",
    backends.map(({ labels }) =>
      [labels, _backendOf(_frontendOf(tally, labels.frontend), labels.backend).duration] as const
    ),
  );
}

type Family<T> = readonly [
  name: string,
  type: "counter" | "gauge",
  help: string,
  value: T,
];

/** Process-wide gauges: one sample each. */
const PROCESS_FAMILIES: readonly Family<(snap: StatsSnapshot, source: MetricsSource) => number>[] =
  [
    ["lb_uptime_seconds", "gauge", "Seconds since lb started.", (snap) => snap.uptimeSeconds],
    [
      "process_start_time_seconds",
      "gauge",
      "Start time since the epoch, seconds.",
      (_, source) => source.started / 1000,
    ],
    [
      "process_resident_memory_bytes",
      "gauge",
      "Resident memory size in bytes.",
      (snap) => snap.rssBytes,
    ],
    [
      "lb_draining",
      "gauge",
      "1 once lb has stopped accepting (SIGINT/SIGTERM) and drains open connections, else 0.",
      (snap) => snap.draining ? 1 : 0,
    ],
  ];

/** One sample per frontend, labelled `frontend`. */
const FRONTEND_FAMILIES: readonly Family<(fe: FrontendStats) => number>[] = [
  ["lb_frontend_connections_active", "gauge", "Client connections open now.", (fe) => fe.active],
  ["lb_frontend_connections_total", "counter", "Client connections accepted.", (fe) => fe.total],
  ["lb_frontend_bytes_in_total", "counter", "Bytes received from clients.", (fe) => fe.bytesIn],
  ["lb_frontend_bytes_out_total", "counter", "Bytes sent to clients.", (fe) => fe.bytesOut],
];

/** Counters per frontend and one more label (named third): one sample per key of the record. */
const FRONTEND_COUNTS: readonly (readonly [
  name: string,
  help: string,
  label: string,
  counts: (fe: FrontendTally) => Readonly<Record<string, number>>,
])[] = [
  [
    "lb_frontend_connections_ended_total",
    "Finished client connections by how they ended.",
    "reason",
    (fe) => fe.ended,
  ],
  [
    "lb_frontend_refused_total",
    "Client connections refused before a backend was dialled, by reason (proxy-REASON: a bad PROXY header).",
    "reason",
    (fe) => fe.refused,
  ],
  [
    "lb_frontend_sni_routes_total",
    "Finished client connections routed by TLS server name, by the matched sni= name (or default).",
    "route",
    (fe) => fe.routes,
  ],
];

/** One sample per backend, labelled `frontend` and `backend`; undefined leaves it out. */
const BACKEND_FAMILIES: readonly Family<(be: BackendStats) => number | undefined>[] = [
  ["lb_backend_up", "gauge", "Health state: 1 up, 0 down.", (be) => be.healthy ? 1 : 0],
  [
    "lb_backend_drained",
    "gauge",
    "1 when drained (no new connections), else 0.",
    (be) => be.drained ? 1 : 0,
  ],
  ["lb_backend_weight", "gauge", "Configured weight.", (be) => be.weight],
  [
    "lb_backend_connections_active",
    "gauge",
    "Connections open to the backend now.",
    (be) => be.active,
  ],
  [
    "lb_backend_connections_total",
    "counter",
    "Connections opened to the backend.",
    (be) => be.total,
  ],
  [
    "lb_backend_connect_failures_total",
    "counter",
    "Connects to the backend that failed or timed out.",
    (be) => be.connectFailures,
  ],
  [
    "lb_backend_bytes_in_total",
    "counter",
    "Bytes from clients sent to the backend.",
    (be) => be.bytesIn,
  ],
  [
    "lb_backend_bytes_out_total",
    "counter",
    "Bytes from the backend sent to clients.",
    (be) => be.bytesOut,
  ],
  [
    "lb_backend_check_duration_seconds",
    "gauge",
    "Duration of the last health check.",
    (be) => be.lastCheckMs >= 0 ? be.lastCheckMs / 1000 : undefined,
  ],
];

type Labels = Record<string, string>;
type Sample = readonly [Labels, number];

/** Builds exposition text: HELP and TYPE once per family, then its samples. */
class _Exposition {
  #lines: string[] = [];

  family(
    name: string,
    type: "counter" | "gauge",
    help: string,
    samples: readonly Sample[],
  ): void {
    this.#head(name, type, help);
    for (const [labels, value] of samples) this.#sample(name, labels, value);
  }

  histogram(
    name: string,
    help: string,
    series: readonly (readonly [Labels, HistogramData])[],
  ): void {
    this.#head(name, "histogram", help);
    for (const [labels, h] of series) {
      DURATION_BUCKETS.forEach((le, i) => {
        this.#sample(`${name}_bucket`, { ...labels, le: String(le) }, h.counts[i]!);
      });
      this.#sample(`${name}_bucket`, { ...labels, le: "+Inf" }, h.count);
      this.#sample(`${name}_sum`, labels, Number(h.sum.toFixed(6)));
      this.#sample(`${name}_count`, labels, h.count);
    }
  }

  #head(name: string, type: string, help: string): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  #sample(name: string, labels: Labels, value: number): void {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    this.#lines.push(`${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}`);
  }

  text(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
