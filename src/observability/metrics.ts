/**
 * Metrics: per frontend and per backend connection counts, bytes, failures,
 * health and a duration histogram, as Prometheus text (`/metrics`) or a JSON
 * snapshot (`/stats`). Counters are read from their owners (`Frontend`,
 * `Backend`, the `Lb`'s `ReloadStats` and drain state) at scrape time, plus
 * the bytes open connections have moved so far; only the duration histograms
 * and the end reasons are kept here, fed by {@link Metrics.observe} once per
 * finished connection.
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

/** A cumulative histogram in the Prometheus sense. */
class Histogram {
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
  frontends: FrontendStats[];
}

/** The state word the stats page shows for a backend. */
export function backendState(backend: Backend): BackendStats["state"] {
  if (backend.drained) return "DRAIN";
  return backend.healthy ? "UP" : "DOWN";
}

/**
 * Collects what finished connections leave behind and renders everything.
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

  /** Records a finished connection; call once per connection (the `onEnd` hook). */
  observe(session: Session, now: number = Date.now()): void {
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
        ended: Object.fromEntries(END_REASONS.map((r) => [r, 0])) as Record<EndReason, number>,
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
   * The state of every frontend and backend now. Bytes are live: finished
   * connections plus what open ones have moved so far.
   */
  snapshot(source: MetricsSource, now: number = Date.now()): StatsSnapshot {
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
      sources: { size: source.sources?.size ?? 0, evictions: source.sources?.evictions ?? 0 },
      discovery: source.discovery?.stats() ?? [],
      frontends: source.frontends.map((f) => this.#frontendStats(f)),
    };
  }

  #frontendStats(frontend: Frontend): FrontendStats {
    let bytesIn = frontend.bytesIn;
    let bytesOut = frontend.bytesOut;
    const open = new Map<Backend, { bytesIn: number; bytesOut: number }>();
    const connections: ConnectionStats[] = [];
    const now = Date.now();
    for (const session of frontend.sessions) {
      bytesIn += session.up.bytes;
      bytesOut += session.down.bytes;
      if (connections.length < MAX_LISTED_CONNECTIONS) {
        connections.push({
          client: session.clientAddr,
          ...(session.peerAddr === undefined ? {} : { peer: session.peerAddr }),
          ...(session.serverName === undefined ? {} : { sni: session.serverName }),
          backend: session.backend?.id ?? null,
          bytesIn: session.up.bytes,
          bytesOut: session.down.bytes,
          ageSeconds: Math.max(0, now - session.started) / 1000,
        });
      }
      if (session.backend) {
        const live = open.get(session.backend) ?? { bytesIn: 0, bytesOut: 0 };
        live.bytesIn += session.up.bytes;
        live.bytesOut += session.down.bytes;
        open.set(session.backend, live);
      }
    }
    return {
      name: frontend.name,
      addr: frontend.addr,
      balance: frontend.pool.balance,
      active: frontend.sessions.size,
      total: frontend.total,
      bytesIn,
      bytesOut,
      ended: { ...this.#frontend(frontend.name).ended },
      connections,
      backends: frontend.pool.backends.map((backend) => {
        const live = open.get(backend);
        return {
          id: backend.id,
          state: backendState(backend),
          healthy: backend.healthy,
          drained: backend.drained,
          backup: backend.backup,
          weight: backend.weight,
          maxConn: backend.maxConn,
          active: backend.active,
          total: backend.total,
          bytesIn: backend.bytesIn + (live?.bytesIn ?? 0),
          bytesOut: backend.bytesOut + (live?.bytesOut ?? 0),
          connectFailures: backend.connectFailures,
          lastCheckMs: backend.health.lastCheckMs,
          lastError: backend.health.lastError ?? null,
        };
      }),
    };
  }

  /** Everything in the Prometheus text exposition format (version 0.0.4). */
  prometheus(source: MetricsSource, now: number = Date.now()): string {
    const snap = this.snapshot(source, now);
    const out = new _Exposition();
    out.family("lb_info", "gauge", "Build information.", [[{ version: VERSION }, 1]]);
    for (const [name, type, help, value] of PROCESS_FAMILIES) {
      out.family(name, type, help, [[{}, value(snap, source)]]);
    }
    out.family("lb_reloads_total", "counter", "Reloads (SIGHUP, POST /reload) by result.", [
      [{ result: "applied" }, snap.reloads.applied],
      [{ result: "rejected" }, snap.reloads.rejected],
    ]);
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
    for (const [name, type, help, value] of FRONTEND_FAMILIES) {
      out.family(name, type, help, snap.frontends.map((fe) => [{ frontend: fe.name }, value(fe)]));
    }
    out.family(
      "lb_frontend_connections_ended_total",
      "counter",
      "Finished client connections by how they ended.",
      snap.frontends.flatMap((fe) =>
        END_REASONS.map((reason) => [{ frontend: fe.name, reason }, fe.ended[reason]] as const)
      ),
    );
    out.family(
      "lb_frontend_refused_total",
      "counter",
      "Client connections refused before a backend was dialled, by reason (proxy-REASON: a bad PROXY header).",
      snap.frontends.flatMap((fe) =>
        [...this.#frontend(fe.name).refused].map(([reason, n]) =>
          [{ frontend: fe.name, reason }, n] as const
        )
      ),
    );
    out.family(
      "lb_frontend_sni_routes_total",
      "counter",
      "Finished client connections routed by TLS server name, by the matched sni= name (or default).",
      snap.frontends.flatMap((fe) =>
        [...this.#frontend(fe.name).routes].map(([route, n]) =>
          [{ frontend: fe.name, route }, n] as const
        )
      ),
    );
    out.histogram(
      "lb_frontend_connection_duration_seconds",
      "Duration of finished client connections.",
      snap.frontends.map((fe) => [{ frontend: fe.name }, this.#frontend(fe.name).duration]),
    );
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
      source.frontends.flatMap((fe) =>
        fe.pool.backends.map((be) =>
          [
            { frontend: fe.name, backend: be.id },
            this.#backends.get(be) ?? new Histogram(),
          ] as const
        )
      ),
    );
    return out.text();
  }
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

  histogram(name: string, help: string, series: readonly (readonly [Labels, Histogram])[]): void {
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
