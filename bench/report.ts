/**
 * The bench's results: a table with lb's ratio to each peer, the JSON record,
 * and an SVG bar chart of the ratios. Pure functions on fixed inputs.
 * @module
 */
import type { PeerName, SourceGate } from "./peers.ts";

/** One figure the bench measures. */
export interface Measure {
  key: MeasureKey;
  label: string;
  unit: string;
  /** Whether a larger figure is better (rates) or a smaller one (latency, memory, CPU). */
  better: "higher" | "lower";
  /**
   * A variant row: the measure `base` with one proxy feature on. Each proxy's
   * figure here ÷ its `base` figure is the feature's cost (see {@link costs}).
   */
  base?: MeasureKey;
  /** The most cost lb may have, as a fraction of `base` (0.05: at most 5% lower). */
  maxCost?: number;
}

/** Every measure, in table order. */
export const MEASURES = [
  { key: "keepAliveRps", label: "keep-alive req/s", unit: "req/s", better: "higher" },
  { key: "newConnRps", label: "new conns/s", unit: "conn/s", better: "higher" },
  {
    key: "newConnRpsProxyV2",
    label: "new conns/s, PROXY v2",
    unit: "conn/s",
    better: "higher",
    base: "newConnRps",
    maxCost: 0.05,
  },
  {
    key: "newConnRpsGate",
    label: "new conns/s, allow/deny+limits",
    unit: "conn/s",
    better: "higher",
    base: "newConnRps",
    maxCost: 0.05,
  },
  {
    key: "tlsNewConnRpsSni",
    label: "TLS new conns/s, SNI passthrough",
    unit: "conn/s",
    better: "higher",
  },
  {
    key: "tlsKeepAliveRps",
    label: "TLS keep-alive req/s, terminated",
    unit: "req/s",
    better: "higher",
  },
  { key: "bulkUpGbps", label: "bulk client→server", unit: "Gbit/s", better: "higher" },
  { key: "bulkDownGbps", label: "bulk server→client", unit: "Gbit/s", better: "higher" },
  { key: "latencyP50Ms", label: "latency p50", unit: "ms", better: "lower" },
  { key: "latencyP99Ms", label: "latency p99", unit: "ms", better: "lower" },
  { key: "idleBytesPerConn", label: "memory / idle conn", unit: "bytes", better: "lower" },
  { key: "cpuSecPerGB", label: "CPU per GB moved", unit: "cpu-s/GB", better: "lower" },
] as const satisfies readonly {
  key: string;
  label: string;
  unit: string;
  better: string;
  base?: string;
  maxCost?: number;
}[];

/** A measure's key. */
export type MeasureKey = typeof MEASURES[number]["key"];

/** The parts of a run that `--only` picks, and the measures each yields. */
export const PARTS = {
  http: [
    "keepAliveRps",
    "newConnRps",
    "newConnRpsProxyV2",
    "newConnRpsGate",
    "tlsNewConnRpsSni",
    "tlsKeepAliveRps",
    "latencyP50Ms",
    "latencyP99Ms",
  ],
  /** lb's worker scale: its own table ({@link formatWorkerScale}), no row in the main one. */
  scale: [],
  memory: ["idleBytesPerConn"],
  bulk: ["bulkUpGbps", "bulkDownGbps", "cpuSecPerGB"],
} as const satisfies Record<string, readonly MeasureKey[]>;

/** A part of a run: `http`, `scale`, `memory` or `bulk`. */
export type Part = keyof typeof PARTS;

/**
 * The parts `--only` names, in run order; every part when `value` is undefined.
 *
 * @param value The `--only` value: parts separated by commas.
 * @returns The parts, each once.
 * @throws {SyntaxError} When a name is not a part.
 *
 * @example
 * ```ts
 * parseOnly("bulk,http"); // ["http", "bulk"]
 * parseOnly("scale"); // ["scale"]
 * ```
 */
export function parseOnly(value: string | undefined): Part[] {
  const all = Object.keys(PARTS) as Part[];
  if (value === undefined) return all;
  const names = value.split(",").map((name) => name.trim());
  const unknown = names.filter((name) => !(all as string[]).includes(name));
  if (unknown.length > 0) {
    throw new SyntaxError(
      `Cannot run as "--only" must list ${all.join(", ")} separated by commas: ` +
        `current value is "${value}"`,
    );
  }
  return all.filter((part) => names.includes(part));
}

/** The measures `parts` yield, in table order. */
export function measuresOf(parts: readonly Part[]): Measure[] {
  const keys = new Set<MeasureKey>(parts.flatMap((part) => PARTS[part]));
  return MEASURES.filter((m) => keys.has(m.key));
}

/** Figures of one peer; null is not measured (tool missing, not applicable, or failed). */
export type Figures = Partial<Record<MeasureKey, number | null>>;

/** Every peer's figures. */
export type Results = Partial<Record<PeerName, Figures>>;

/**
 * Keeps the better of `figures[key]` and `value` (the larger for a "higher"
 * measure, the smaller for a "lower" one): the best of the repeated runs.
 *
 * @example
 * ```ts
 * const figures: Figures = { newConnRps: 7000 };
 * keepBest(figures, "newConnRps", 6500); // figures.newConnRps stays 7000
 * ```
 */
export function keepBest(figures: Figures, key: MeasureKey, value: number): void {
  const better = MEASURES.find((m) => m.key === key)!.better;
  const old = figures[key];
  if (typeof old !== "number" || (better === "higher" ? value > old : value < old)) {
    figures[key] = value;
  }
}

/** lb's figure divided by a peer's, per measure and peer; null when either is missing or zero. */
export type Ratios = Partial<Record<MeasureKey, Partial<Record<PeerName, number | null>>>>;

/** Peers lb is compared with. */
export const COMPARED: readonly PeerName[] = ["haproxy", "nginx", "direct"];

/** lb ÷ peer for every measure (a ratio above 1 is better for "higher" measures, below 1 for "lower"). */
export function ratios(results: Results): Ratios {
  const out: Ratios = {};
  for (const { key } of MEASURES) {
    const row: Partial<Record<PeerName, number | null>> = {};
    const mine = results.lb?.[key];
    for (const peer of COMPARED) {
      const theirs = results[peer]?.[key];
      row[peer] = typeof mine === "number" && typeof theirs === "number" && theirs > 0
        ? mine / theirs
        : null;
    }
    out[key] = row;
  }
  return out;
}

/** Each proxy's figure of a variant measure ÷ its figure of the base measure, per variant. */
export type Costs = Partial<Record<MeasureKey, Partial<Record<PeerName, number | null>>>>;

/**
 * The cost of each variant's feature (measures with a `base`): every proxy's
 * variant figure ÷ its base figure (0.96: 4% fewer new conns/s with the
 * feature on); null when either is missing or zero. The direct path has no
 * proxy, so no cost.
 */
export function costs(results: Results, measures: readonly Measure[] = MEASURES): Costs {
  const out: Costs = {};
  for (const m of measures) {
    if (m.base === undefined) continue;
    const row: Partial<Record<PeerName, number | null>> = {};
    for (const [peer, figures] of Object.entries(results) as [PeerName, Figures][]) {
      if (peer === "direct") continue;
      const variant = figures[m.key];
      const base = figures[m.base];
      row[peer] = typeof variant === "number" && typeof base === "number" && base > 0
        ? variant / base
        : null;
    }
    out[m.key] = row;
  }
  return out;
}

/**
 * One line per variant measure in `measures`: each proxy's variant ÷ base
 * ratio, and whether lb's cost is within the measure's `maxCost`; "" for none.
 */
export function formatCosts(
  results: Results,
  peers: readonly PeerName[],
  measures: readonly Measure[] = MEASURES,
): string {
  const all = costs(results, measures);
  const lines: string[] = [];
  for (const m of measures) {
    if (m.base === undefined) continue;
    const base = MEASURES.find((b) => b.key === m.base)!;
    const row = all[m.key] ?? {};
    const cells = peers.filter((p) => p !== "direct").map((p) => {
      const v = row[p];
      return v === null || v === undefined ? `${p} -` : `${p} ${v.toFixed(3)}x`;
    });
    let verdict = "";
    const lb = row.lb;
    if (typeof lb === "number") {
      const cost = 1 - lb;
      verdict = `; lb's cost ${(cost * 100).toFixed(1)}%`;
      if (m.maxCost !== undefined) {
        verdict += cost <= m.maxCost
          ? ` (within ${m.maxCost * 100}%)`
          : ` (over ${m.maxCost * 100}%)`;
      }
    }
    lines.push(`cost: ${m.label} ÷ ${base.label}: ${cells.join(", ")}${verdict}`);
  }
  return lines.join("\n");
}

/** A figure for the table: 3 significant digits, "-" when missing. */
export function formatFigure(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "-";
  if (Math.abs(value) >= 1000) return Math.round(value).toString();
  return Number(value.toPrecision(3)).toString();
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))
    .join("  ");
}

/**
 * The side-by-side table: absolute figures of each peer, then lb's ratios, one
 * row per measure in `measures` (the ones the run measured).
 */
export function formatTable(
  results: Results,
  peers: readonly PeerName[],
  measures: readonly Measure[] = MEASURES,
): string {
  const r = ratios(results);
  const header = ["measure", ...peers, ...COMPARED.map((p) => `lb/${p}`), "better"];
  const rows = measures.map((m) => [
    `${m.label} (${m.unit})`,
    ...peers.map((p) => formatFigure(results[p]?.[m.key])),
    ...COMPARED.map((p) => {
      const v = r[m.key]?.[p];
      return v === null || v === undefined ? "-" : `${v.toFixed(2)}x`;
    }),
    m.better,
  ]);
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => row[i]!.length)));
  return [pad(header, widths), ...rows.map((row) => pad(row, widths))].join("\n");
}

/** What the notes under the table describe: how the variants, latency and memory were measured. */
export interface NoteSettings {
  latencyRate: number;
  latencyConns: number;
  idleConns: readonly number[];
  /** The allow/deny lists and per-source limits of the `newConnRpsGate` row. */
  gate: SourceGate;
  /** The TLS server name wrk sends (SNI) in the TLS rows. */
  tlsName: string;
}

/**
 * The notes under the table for `measures`: how latency and memory were
 * measured, each only when one of its measures is there; "" for neither.
 */
export function formatNotes(settings: NoteSettings, measures: readonly Measure[]): string {
  const keys = new Set(measures.map((m) => m.key));
  const notes: string[] = [];
  if (keys.has("newConnRpsProxyV2")) {
    notes.push(
      "PROXY v2: new conns/s with every proxy sending a header to nginx backends on " +
        "`listen ... proxy_protocol` (nginx stream sends v1: it has no v2 sender)",
    );
  }
  if (keys.has("newConnRpsGate")) {
    const { gate } = settings;
    notes.push(
      `allow/deny+limits: allow ${gate.allow.join(" ")}, deny ${gate.deny.join(" ")}, ` +
        `at most ${gate.maxConnsPerSource} open and ${gate.connRatePerSec} new connections/s ` +
        "per source (far above wrk's: none refused), HAProxy `src` ACLs and a stick-table " +
        "(conn_cur, conn_rate), nginx stream allow/deny and limit_conn (at most 65535, and it " +
        "has no per-source rate limit), lb --allow/--deny/--max-conns-per-source/--conn-rate-per-source",
    );
  }
  if (keys.has("tlsNewConnRpsSni")) {
    notes.push(
      `TLS new conns/s: wrk \`Connection: close\` over HTTPS (SNI ${settings.tlsName}), a full ` +
        "TLS 1.3 handshake per connection with nginx TLS backends (no session cache or " +
        "tickets), each proxy routing by SNI without decrypting (HAProxy req.ssl_sni, nginx " +
        "ssl_preread and map, lb sni=), direct: straight to the TLS backends",
    );
  }
  if (keys.has("tlsKeepAliveRps")) {
    notes.push(
      "TLS keep-alive: each proxy terminates TLS 1.3 (HAProxy `bind ... ssl crt`, nginx stream " +
        "`listen ... ssl`, lb --tls-cert) in front of the plain backends, direct: nginx " +
        "terminating TLS itself (ECDSA P-256 test certificate made by openssl)",
    );
  }
  if (keys.has("latencyP50Ms") || keys.has("latencyP99Ms")) {
    notes.push(
      `latency: ${settings.latencyRate} req/s over ${settings.latencyConns} keep-alive ` +
        `connections, from the scheduled send time`,
    );
  }
  if (keys.has("idleBytesPerConn")) {
    notes.push(
      `memory: ${settings.idleConns.at(-1)} idle connections ` +
        `(RSS growth of a fresh proxy's process tree, cold)`,
    );
  }
  return notes.length === 0 ? "" : `${notes.join("; ")}.`;
}

/** The machine a run was on. */
export interface Machine {
  cores: number;
  cpuModel: string;
  kernel: string;
  deno: string;
}

/** What the bench writes to `bench/results/`. */
export interface Report {
  date: string;
  machine: Machine;
  /**
   * How it was run: quick or full, durations, counts, the parts, lb's flags
   * (`lbArgs`) and `lbWorkers`, the worker count lb ran with in the main table
   * (its `--workers`, or with none lb's default, auto: the machine's cores).
   */
  settings: Record<string, unknown>;
  results: Results;
  ratios: Ratios;
  /** Each proxy's variant ÷ base figure: what a feature costs (see {@link costs}). */
  costs: Costs;
  /** Why a peer or measure was skipped. */
  notes: string[];
  /** How idle cost grows with the number of connections, per proxy. */
  scale: Partial<Record<PeerName, ScalePoint[]>>;
  /** lb's rates per `--workers` count, 1 up to the machine's cores (the `scale` part). */
  workerScale: WorkerScalePoint[];
}

/** One idle-connection count: RSS and descriptors of the proxy with that many open. */
export interface ScalePoint {
  conns: number;
  bytesPerConn: number;
  rssKiB: number;
  fds: number;
}

/** The scale table: per proxy and idle-connection count, bytes per connection, RSS and fds. */
export function formatScale(scale: Partial<Record<PeerName, ScalePoint[]>>): string {
  const lines = ["idle conns  proxy    B/conn   RSS MiB    fds"];
  for (const [peer, points] of Object.entries(scale)) {
    for (const p of points ?? []) {
      lines.push(
        `${String(p.conns).padStart(10)}  ${peer.padEnd(7)} ${
          String(Math.round(p.bytesPerConn)).padStart(7)
        } ${(p.rssKiB / 1024).toFixed(1).padStart(9)} ${String(p.fds).padStart(6)}`,
      );
    }
  }
  return lines.join("\n");
}

/** One `--workers` count of lb's worker scale: the best of its runs, null when every run failed. */
export interface WorkerScalePoint {
  workers: number;
  /** wrk with `Connection: close`, as the "new conns/s" row. */
  newConnsPerSec: number | null;
  /** wrk keep-alive, as the "keep-alive req/s" row. */
  keepAliveReqPerSec: number | null;
}

function _vsOne(value: number | null, one: number | null | undefined): string {
  return value === null || typeof one !== "number" || one <= 0
    ? "-"
    : `${(value / one).toFixed(2)}x`;
}

/**
 * The worker scale table: per `--workers` count, lb's new conns/s and
 * keep-alive req/s, each with its ratio to the 1-worker figure; "" for no points.
 *
 * @example
 * ```ts
 * formatWorkerScale([
 *   { workers: 1, newConnsPerSec: 7000, keepAliveReqPerSec: 50000 },
 *   { workers: 2, newConnsPerSec: 9100, keepAliveReqPerSec: 60000 },
 * ]);
 * // lb --workers  new conns/s   vs 1  keep-alive req/s   vs 1
 * //            1         7000  1.00x             50000  1.00x
 * //            2         9100  1.30x             60000  1.20x
 * ```
 */
export function formatWorkerScale(points: readonly WorkerScalePoint[]): string {
  if (points.length === 0) return "";
  const one = points.find((p) => p.workers === 1);
  const header = ["lb --workers", "new conns/s", "vs 1", "keep-alive req/s", "vs 1"];
  const rows = points.map((p) => [
    String(p.workers),
    formatFigure(p.newConnsPerSec),
    _vsOne(p.newConnsPerSec, one?.newConnsPerSec),
    formatFigure(p.keepAliveReqPerSec),
    _vsOne(p.keepAliveReqPerSec, one?.keepAliveReqPerSec),
  ]);
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padStart(widths[i]!)).join("  "))
    .join("\n");
}

/** What a run adds to the figures: the idle scale points and lb's worker scale. */
export interface ReportScales {
  /** Idle cost per connection count, per proxy. @default {} */
  scale?: Partial<Record<PeerName, ScalePoint[]>>;
  /** lb's rates per `--workers` count. @default [] */
  workerScale?: WorkerScalePoint[];
}

/** The JSON record of one run. */
export function buildReport(
  date: Date,
  machine: Machine,
  settings: Record<string, unknown>,
  results: Results,
  notes: string[],
  scales: ReportScales = {},
): Report {
  return {
    date: date.toISOString(),
    machine,
    settings,
    results,
    ratios: ratios(results),
    costs: costs(results),
    notes,
    scale: scales.scale ?? {},
    workerScale: scales.workerScale ?? [],
  };
}

/** A file name for a run at `date`: `2026-11-27T00-17-34Z`. */
export function reportName(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
}

const COLORS: Partial<Record<PeerName, string>> = {
  haproxy: "#3b7dd8",
  nginx: "#2e9e5b",
  direct: "#999999",
};

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/**
 * A horizontal bar chart of lb's ratio to each peer, one group per measure in
 * `measures`, on a log2 axis centred on 1× (clamped to 1/16×–16×); labels say
 * which side is better.
 */
export function svgChart(
  r: Ratios,
  title: string,
  measures: readonly Measure[] = MEASURES,
): string {
  const rowH = 14;
  const groupH = rowH * COMPARED.length + 12;
  const left = 220;
  const width = 760;
  const plotW = width - left - 90;
  const top = 50;
  const height = top + measures.length * groupH + 40;
  const maxLog = 4;
  const x = (ratio: number) =>
    left + plotW / 2 + (Math.max(-maxLog, Math.min(maxLog, Math.log2(ratio))) / maxLog) * plotW / 2;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  COMPARED.forEach((peer, i) => {
    parts.push(
      `<rect x="${left + i * 110}" y="30" width="10" height="10" fill="${COLORS[peer]}"/>`,
      `<text x="${left + i * 110 + 14}" y="39">lb / ${peer}</text>`,
    );
  });
  for (const tick of [1 / 16, 1 / 4, 1, 4, 16]) {
    const tx = x(tick);
    parts.push(
      `<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${height - 30}" stroke="${
        tick === 1 ? "black" : "#ddd"
      }"/>`,
      `<text x="${tx}" y="${height - 16}" text-anchor="middle">${
        tick < 1 ? `1/${1 / tick}` : tick
      }×</text>`,
    );
  }
  measures.forEach((m, g) => {
    const gy = top + g * groupH;
    parts.push(
      `<text x="10" y="${gy + groupH / 2}">${escapeXml(m.label)} (${m.better} is better)</text>`,
    );
    COMPARED.forEach((peer, i) => {
      const value = r[m.key]?.[peer];
      const y = gy + i * rowH;
      if (value === null || value === undefined || !(value > 0)) {
        parts.push(`<text x="${x(1) + 4}" y="${y + 10}" fill="#999">n/a</text>`);
        return;
      }
      const x0 = Math.min(x(1), x(value));
      const w = Math.max(1, Math.abs(x(value) - x(1)));
      parts.push(
        `<rect x="${x0.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 2}" fill="${
          COLORS[peer]
        }"/>`,
        `<text x="${(Math.max(x(1), x(value)) + 4).toFixed(1)}" y="${y + 10}">${
          value.toFixed(2)
        }×</text>`,
      );
    });
  });
  parts.push("</svg>", "");
  return parts.join("\n");
}
