/**
 * Metrics: per frontend and per backend connection counts, bytes, failures,
 * health and a duration histogram, as Prometheus text (`/metrics`) or a JSON
 * snapshot (`/stats`). Counters read the live objects at scrape time; only the
 * duration histograms and the per-backend bytes of finished connections are
 * kept here, fed by {@link Metrics.observe} once per finished connection.
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import type { Frontend } from "../connection/frontend.ts";
import type { EndReason, Session } from "../connection/session.ts";
import { VERSION } from "../common/version.ts";

/** What metrics read from a running lb (an `Lb` satisfies it). */
export interface MetricsSource {
  readonly frontends: readonly Frontend[];
  /** Start time, ms since the epoch. */
  readonly started: number;
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

const END_REASONS: readonly EndReason[] = ["eof", "reset", "timeout", "no-backend", "drained"];

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
}

/** Bytes of finished connections to one backend, and their durations. */
interface BackendExtra {
  bytesIn: number;
  bytesOut: number;
  duration: Histogram;
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
}

/** The JSON served at `/stats`. */
export interface StatsSnapshot {
  version: string;
  /** Snapshot time, ISO 8601. */
  time: string;
  startedAt: string;
  uptimeSeconds: number;
  /** Resident set size, bytes. */
  rssBytes: number;
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
  #backends = new WeakMap<Backend, BackendExtra>();

  /** Records a finished connection; call once per connection (the `onEnd` hook). */
  observe(session: Session, now: number = Date.now()): void {
    const seconds = Math.max(0, now - session.started) / 1000;
    const frontend = this.#frontend(session.frontend);
    frontend.duration.observe(seconds);
    frontend.ended[session.end ?? "eof"]++;
    const backend = session.backend;
    if (backend) {
      const extra = this.#backend(backend);
      extra.bytesIn += session.up.bytes;
      extra.bytesOut += session.down.bytes;
      extra.duration.observe(seconds);
    }
  }

  #frontend(name: string): FrontendExtra {
    let extra = this.#frontends.get(name);
    if (!extra) {
      extra = {
        duration: new Histogram(),
        ended: { eof: 0, reset: 0, timeout: 0, "no-backend": 0, drained: 0 },
      };
      this.#frontends.set(name, extra);
    }
    return extra;
  }

  #backend(backend: Backend): BackendExtra {
    let extra = this.#backends.get(backend);
    if (!extra) {
      extra = { bytesIn: 0, bytesOut: 0, duration: new Histogram() };
      this.#backends.set(backend, extra);
    }
    return extra;
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
      frontends: source.frontends.map((f) => this.#frontendStats(f)),
    };
  }

  #frontendStats(frontend: Frontend): FrontendStats {
    let bytesIn = frontend.bytesIn;
    let bytesOut = frontend.bytesOut;
    const open = new Map<Backend, { bytesIn: number; bytesOut: number }>();
    for (const session of frontend.sessions) {
      bytesIn += session.up.bytes;
      bytesOut += session.down.bytes;
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
      backends: frontend.pool.backends.map((backend) => {
        const done = this.#backends.get(backend);
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
          bytesIn: (done?.bytesIn ?? 0) + (live?.bytesIn ?? 0),
          bytesOut: (done?.bytesOut ?? 0) + (live?.bytesOut ?? 0),
          connectFailures: backend.connectFailures,
          lastCheckMs: backend.lastCheckMs,
        };
      }),
    };
  }

  /** Everything in the Prometheus text exposition format (version 0.0.4). */
  prometheus(source: MetricsSource, now: number = Date.now()): string {
    const snap = this.snapshot(source, now);
    const out = new _Exposition();
    const f = (fe: FrontendStats) => ({ frontend: fe.name });
    const b = (fe: FrontendStats, be: BackendStats) => ({ frontend: fe.name, backend: be.id });
    const backends = snap.frontends.flatMap((fe) => fe.backends.map((be) => ({ fe, be })));

    out.family("lb_info", "gauge", "Build information.", [[{ version: VERSION }, 1]]);
    out.family(
      "lb_uptime_seconds",
      "gauge",
      "Seconds since lb started.",
      [[{}, snap.uptimeSeconds]],
    );
    out.family("process_start_time_seconds", "gauge", "Start time since the epoch, seconds.", [
      [{}, source.started / 1000],
    ]);
    out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [
      [{}, snap.rssBytes],
    ]);

    out.family(
      "lb_frontend_connections_active",
      "gauge",
      "Client connections open now.",
      snap.frontends.map((fe) => [f(fe), fe.active]),
    );
    out.family(
      "lb_frontend_connections_total",
      "counter",
      "Client connections accepted.",
      snap.frontends.map((fe) => [f(fe), fe.total]),
    );
    out.family(
      "lb_frontend_connections_ended_total",
      "counter",
      "Finished client connections by how they ended.",
      snap.frontends.flatMap((fe) =>
        END_REASONS.map((reason) => [{ ...f(fe), reason }, fe.ended[reason]] as const)
      ),
    );
    out.family(
      "lb_frontend_bytes_in_total",
      "counter",
      "Bytes received from clients.",
      snap.frontends.map((fe) => [f(fe), fe.bytesIn]),
    );
    out.family(
      "lb_frontend_bytes_out_total",
      "counter",
      "Bytes sent to clients.",
      snap.frontends.map((fe) => [f(fe), fe.bytesOut]),
    );
    out.histogram(
      "lb_frontend_connection_duration_seconds",
      "Duration of finished client connections.",
      snap.frontends.map((fe) => [f(fe), this.#frontend(fe.name).duration]),
    );

    out.family(
      "lb_backend_up",
      "gauge",
      "Health state: 1 up, 0 down.",
      backends.map(({ fe, be }) => [b(fe, be), be.healthy ? 1 : 0]),
    );
    out.family(
      "lb_backend_drained",
      "gauge",
      "1 when drained (no new connections), else 0.",
      backends.map(({ fe, be }) => [b(fe, be), be.drained ? 1 : 0]),
    );
    out.family(
      "lb_backend_weight",
      "gauge",
      "Configured weight.",
      backends.map(({ fe, be }) => [b(fe, be), be.weight]),
    );
    out.family(
      "lb_backend_connections_active",
      "gauge",
      "Connections open to the backend now.",
      backends.map(({ fe, be }) => [b(fe, be), be.active]),
    );
    out.family(
      "lb_backend_connections_total",
      "counter",
      "Connections opened to the backend.",
      backends.map(({ fe, be }) => [b(fe, be), be.total]),
    );
    out.family(
      "lb_backend_connect_failures_total",
      "counter",
      "Connects to the backend that failed or timed out.",
      backends.map(({ fe, be }) => [b(fe, be), be.connectFailures]),
    );
    out.family(
      "lb_backend_bytes_in_total",
      "counter",
      "Bytes from clients sent to the backend.",
      backends.map(({ fe, be }) => [b(fe, be), be.bytesIn]),
    );
    out.family(
      "lb_backend_bytes_out_total",
      "counter",
      "Bytes from the backend sent to clients.",
      backends.map(({ fe, be }) => [b(fe, be), be.bytesOut]),
    );
    out.family(
      "lb_backend_check_duration_seconds",
      "gauge",
      "Duration of the last health check.",
      backends.filter(({ be }) => be.lastCheckMs >= 0).map((
        { fe, be },
      ) => [b(fe, be), be.lastCheckMs / 1000]),
    );
    out.histogram(
      "lb_backend_connection_duration_seconds",
      "Duration of finished connections that reached the backend.",
      source.frontends.flatMap((fe) =>
        fe.pool.backends.map((be) =>
          [
            { frontend: fe.name, backend: be.id },
            this.#backends.get(be)?.duration ?? new Histogram(),
          ] as const
        )
      ),
    );
    return out.text();
  }
}

type Labels = Record<string, string>;

/** Builds exposition text: HELP and TYPE once per family, then its samples. */
class _Exposition {
  #lines: string[] = [];

  family(
    name: string,
    type: "counter" | "gauge",
    help: string,
    samples: readonly (readonly [Labels, number])[],
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
      this.#sample(`${name}_sum`, labels, h.sum);
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
