/**
 * `deno task bench [--quick] [--peers lb,haproxy,...] [--only http,scale,memory,bulk]
 * [--workers N|auto] [--lb-binary PATH] [--no-write]`:
 * the same loopback traffic through lb, HAProxy (`mode tcp`), nginx `stream`
 * and the direct path, one table of figures and lb's ratios, then lb's worker
 * scale (`--workers 1` up to the cores), JSON and SVG in `bench/results/`.
 * Installs nothing; skips what is missing.
 * @module
 */
import { parseArgs } from "node:util";
import { LB_FLAGS } from "../support/compile.ts";
import { runIperf } from "./iperf.ts";
import { measureLatency } from "./latency.ts";
import { machine } from "./machine.ts";
import { idleMemory } from "./memory.ts";
import { freePort, sleep } from "./net.ts";
import {
  type PeerName,
  type PeerOptions,
  PEERS,
  type ProxyFeatures,
  type SourceGate,
  startHttpBackends,
  startIperfServer,
  startPeer,
  type TlsFiles,
} from "./peers.ts";
import { cpuSeconds } from "./proc.ts";
import {
  buildReport,
  formatCosts,
  formatNotes,
  formatScale,
  formatTable,
  formatWorkerScale,
  keepBest,
  type Measure,
  type MeasureKey,
  MEASURES,
  measuresOf,
  parseOnly,
  type Part,
  reportName,
  type Results,
  type ScalePoint,
  svgChart,
  type WorkerScalePoint,
} from "./report.ts";
import { makeTestCert, TLS_NAME } from "./tls.ts";
import { findTools, installHint } from "./tools.ts";
import {
  describeLbWorkers,
  lbWorkersOf,
  measureWorkerScale,
  workerCounts,
} from "./worker_scale.ts";
import { runWrk, type WrkResult } from "./wrk.ts";

/** How long and how much: `--quick` stays under a minute, the full run under ten. */
export interface Settings {
  quick: boolean;
  /** Seconds per wrk / iperf3 / latency run. */
  durationSec: number;
  /** Runs of each load measure per peer; the best is kept (neighbours share the machine). */
  repeats: number;
  /** Idle connections for the memory measure (the last, largest count is the table's figure). */
  idleConns: number[];
  /** Fixed request rate of the latency measure, over `latencyConns` connections. */
  latencyRate: number;
  latencyConns: number;
  wrkConns: number;
  threads: number;
  /** The allow/deny lists and per-source limits of the `newConnRpsGate` row. */
  gate: SourceGate;
  /** The TLS server name of the TLS rows (wrk's SNI, lb's `sni=`). */
  tlsName: string;
}

/**
 * Who gets in, for the `newConnRpsGate` row (issue #14): loopback allowed,
 * 10/8 denied, and per-source limits far above what the bench sends from
 * 127.0.0.1 (wrk keeps `wrkConns` = 50 open; the direct path peaks near 25k
 * new conns/s on 2 cores), so that the row measures the checks, never a refusal.
 */
export const BENCH_GATE: SourceGate = {
  allow: ["127.0.0.0/8"],
  deny: ["10.0.0.0/8"],
  maxConnsPerSource: 100_000,
  connRatePerSec: 1_000_000,
};

/** The settings of a quick or a full run on a machine with `cores` cores. */
export function settingsFor(quick: boolean, cores: number): Settings {
  return {
    quick,
    durationSec: quick ? 1 : 5,
    repeats: quick ? 1 : 2,
    idleConns: quick ? [500] : [1000, 4000],
    latencyRate: 1000,
    latencyConns: 10,
    wrkConns: 50,
    threads: Math.max(1, cores),
    gate: BENCH_GATE,
    tlsName: TLS_NAME,
  };
}

/**
 * A variant row of the table: a wrk rate with one feature on in every proxy,
 * each proxy started afresh with it. A measure with a `base` (a cost line:
 * `base: "newConnRps"`) runs the plain run's wrk sequence so that the two
 * compare; the others run only their rate. Where clients speak TLS (SNI
 * routing, termination) the direct path goes straight to the TLS backends;
 * otherwise it has no proxy to turn the feature on in and shows "-". To add
 * one: a measure in report.ts (and in `PARTS.http`), the feature in
 * `ProxyFeatures` and its config lines in peers.ts, and an entry here.
 */
export interface Variant {
  /** The measure it fills. */
  key: MeasureKey;
  /** What every proxy does differently. */
  features: ProxyFeatures;
  /** Which wrk rate fills the row. @default "close" (new conns/s) */
  rate?: "close" | "keepAlive";
}

/** The variants the bench runs with the HTTP measures, in this order after the plain run. */
export const VARIANTS: readonly Variant[] = [
  { key: "newConnRpsProxyV2", features: { sendProxy: "v2" } },
  { key: "newConnRpsGate", features: { gate: BENCH_GATE } },
  { key: "tlsNewConnRpsSni", features: { sniRoute: TLS_NAME } },
  { key: "tlsKeepAliveRps", features: { terminateTls: true }, rate: "keepAlive" },
];

/** The HTTP backend ports: plain, behind `proxy_protocol`, and HTTPS. */
export interface BackendPorts {
  plain: number[];
  proxy: number[];
  tls: number[];
}

/**
 * The HTTP backend ports a variant needs: the `proxy_protocol` ones when
 * proxies send a header, the HTTPS ones when they route TLS by SNI.
 */
export function backendsFor(features: ProxyFeatures, ports: BackendPorts): number[] {
  if (features.sendProxy) return ports.proxy;
  if (features.sniRoute !== undefined) return ports.tls;
  return ports.plain;
}

/** Whether clients speak TLS with the feature on (to the proxy, and on the direct path). */
export function clientTls(features: ProxyFeatures): boolean {
  return features.sniRoute !== undefined || features.terminateTls === true;
}

/** How a variant runs: where each path goes and which wrk runs it takes. */
export interface VariantPlan {
  /** The backends every proxy forwards to. */
  backends: number[];
  /** Where the direct path goes; undefined when it has no figure ("-"). */
  direct?: number[];
  /** wrk's HTTPS server name, when clients speak TLS. */
  tlsName?: string;
  /**
   * wrk runs after the 1 s warm-up, in order: the plain run's (keep-alive,
   * then `Connection: close`) for a cost line, else only `keep`.
   */
  runs: ("keepAlive" | "close")[];
  /** The run whose rate fills the row. */
  keep: "keepAlive" | "close";
}

/** The plan of `variant` on `ports`, with `tlsName` as the HTTPS server name. */
export function planOf(variant: Variant, ports: BackendPorts, tlsName = TLS_NAME): VariantPlan {
  const measure: Measure = MEASURES.find((m) => m.key === variant.key)!;
  const keep = variant.rate ?? "close";
  return {
    backends: backendsFor(variant.features, ports),
    ...(clientTls(variant.features) ? { direct: ports.tls, tlsName } : {}),
    runs: measure.base === undefined ? [keep] : ["keepAlive", "close"],
    keep,
  };
}

function log(line: string): void {
  console.error(`bench: ${line}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      peers: { type: "string" },
      workers: { type: "string" },
      "lb-binary": { type: "string" },
      "no-write": { type: "boolean" },
      only: { type: "string" },
    },
  });
  let parts: Part[];
  let lbWorkers: number;
  try {
    parts = parseOnly(values.only);
    lbWorkers = lbWorkersOf(values.workers, navigator.hardwareConcurrency);
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    Deno.exit(2);
  }
  const measures = measuresOf(parts);
  const started = Date.now();
  const box = machine();
  const settings = settingsFor(values.quick ?? false, box.cores);
  const notes: string[] = [];
  const note = (line: string) => {
    notes.push(line);
    log(line);
  };

  const { found, missing } = findTools();
  const hint = installHint(missing);
  if (hint) note(hint);
  let peers = (values.peers?.split(",") ?? PEERS) as PeerName[];
  peers = PEERS.filter((p) => peers.includes(p));
  if (!found.haproxy) peers = peers.filter((p) => p !== "haproxy");
  if (!found.nginx || !found.nginxStream) peers = peers.filter((p) => p !== "nginx");

  let lbBinary = values["lb-binary"];
  if (lbBinary === undefined) {
    try {
      if (Deno.statSync(new URL("../dist/lb", import.meta.url)).isFile) {
        lbBinary = new URL("../dist/lb", import.meta.url).pathname;
      }
    } catch { /* none compiled */ }
  }
  const lbArgs = values.workers ? ["--workers", values.workers] : [];
  // As the compile task builds it (and `deno task lb` runs it): a 1 MiB young generation.
  const lbDenoFlags = [...LB_FLAGS];
  note(`lb: ${lbBinary ?? "deno run main.ts"} ${lbArgs.join(" ")}`.trim());

  const results: Results = {};
  const scale: Partial<Record<PeerName, ScalePoint[]>> = {};
  let workerScale: WorkerScalePoint[] = [];
  for (const peer of peers) results[peer] = {};
  const dir = Deno.makeTempDirSync({ prefix: "lb-bench-" });
  const base: Omit<PeerOptions, "backends"> = {
    dir,
    threads: settings.threads,
    ...(found.haproxy ? { haproxy: found.haproxy } : {}),
    ...(found.nginx ? { nginx: found.nginx } : {}),
    ...(found.nginxStream ? { nginxStream: found.nginxStream } : {}),
    ...(lbBinary ? { lbBinary } : {}),
    lbArgs,
    lbDenoFlags,
  };
  const d = settings.durationSec;
  const doing = (part: Part) => parts.includes(part);

  try {
    // HTTP measures: nginx backends on two ports, each proxy balancing both.
    if (!doing("http") && !doing("scale") && !doing("memory")) {
      // Skipped by --only.
    } else if (!found.nginx) {
      note("no nginx: skipping the HTTP measures (req/s, new conns/s, latency, memory)");
    } else {
      const ports = [freePort(), freePort()];
      let variants = VARIANTS.filter((v) => found.wrk && measures.some((m) => m.key === v.key));
      // The TLS rows need a certificate, made now in the temporary directory.
      let tls: TlsFiles | undefined;
      if (variants.some((v) => clientTls(v.features))) {
        try {
          if (!found.openssl) throw new Error("no openssl");
          tls = await makeTestCert(found.openssl, `${dir}/tls`, settings.tlsName);
        } catch (error) {
          note(
            `skipping the TLS rows: no test certificate (${
              error instanceof Error ? error.message : error
            })`,
          );
          variants = variants.filter((v) => !clientTls(v.features));
        }
      }
      // The same nginx on two more ports behind `proxy_protocol`, when a variant
      // sends a header, and on two HTTPS ports, when clients speak TLS.
      const backendPorts: BackendPorts = {
        plain: ports,
        proxy: variants.some((v) => v.features.sendProxy) ? [freePort(), freePort()] : [],
        tls: tls ? [freePort(), freePort()] : [],
      };
      await using backend = await startHttpBackends(
        found.nginx,
        dir,
        ports,
        settings.threads,
        backendPorts.proxy,
        tls ? { ports: backendPorts.tls, files: tls } : undefined,
      );
      void backend;
      const variantBase: Omit<PeerOptions, "backends"> = tls ? { ...base, tls } : base;
      const wrkRate = (port: number, durationSec: number, close: boolean, tlsName?: string) =>
        runWrk(found.wrk!, {
          port,
          threads: settings.threads,
          connections: settings.wrkConns,
          durationSec,
          close,
          ...(tlsName === undefined ? {} : { tlsName }),
        });
      // The wrk sequence of every run, plain or variant, so that their new
      // conns/s compare: a 1 s warm-up, keep-alive, then `Connection: close`.
      const wrkRates = async (port: number) => {
        await wrkRate(port, 1, false);
        const ka = await wrkRate(port, d, false);
        const nc = await wrkRate(port, d, true);
        return { ka, nc };
      };
      // One variant on one peer: a fresh proxy with the feature on (or the
      // direct path to the TLS backends), a warm-up, then the plan's wrk runs.
      const runVariant = async (name: PeerName, variant: Variant, rep: number) => {
        const label = MEASURES.find((m) => m.key === variant.key)!.label;
        const plan = planOf(variant, backendPorts, settings.tlsName);
        if (name === "direct" && plan.direct === undefined) {
          results.direct![variant.key] = null; // Not applicable: no proxy.
          return;
        }
        try {
          await using peer = name === "direct"
            ? await startPeer(name, { ...base, backends: plan.direct! })
            : await startPeer(name, {
              ...variantBase,
              ...variant.features,
              backends: plan.backends,
            });
          await wrkRate(peer.port, 1, false, plan.tlsName);
          let kept: WrkResult | undefined;
          for (const run of plan.runs) {
            const ran = await wrkRate(peer.port, d, run === "close", plan.tlsName);
            if (run === plan.keep) kept = ran;
          }
          keepBest(results[name]!, variant.key, kept!.requestsPerSec);
          log(
            `${name} run ${rep + 1}: ${label} ${kept!.requestsPerSec.toFixed(0)}/s ` +
              `(${kept!.errors} errors)`,
          );
          if (kept!.errors > 0) {
            note(`${name} run ${rep + 1}: ${label}: ${kept!.errors} wrk errors`);
          }
          await sleep(200);
        } catch (error) {
          note(`${name}: ${label} failed: ${error instanceof Error ? error.message : error}`);
        }
      };
      const runPlain = async (name: PeerName, rep: number) => {
        try {
          await using peer = await startPeer(name, { ...base, backends: ports });
          const figures = results[name]!;
          if (found.wrk) {
            const { ka, nc } = await wrkRates(peer.port);
            keepBest(figures, "keepAliveRps", ka.requestsPerSec);
            keepBest(figures, "newConnRps", nc.requestsPerSec);
            log(
              `${name} run ${rep + 1}: keep-alive ${
                ka.requestsPerSec.toFixed(0)
              } req/s (${ka.errors} errors), ` +
                `new conns ${nc.requestsPerSec.toFixed(0)}/s (${nc.errors} errors)`,
            );
            // Let TIME_WAIT sockets of the close run not crowd the next peer.
            await sleep(200);
          }
          const lat = await measureLatency({
            port: peer.port,
            rate: settings.latencyRate,
            connections: settings.latencyConns,
            durationMs: d * 1000,
          });
          keepBest(figures, "latencyP50Ms", lat.p50);
          keepBest(figures, "latencyP99Ms", lat.p99);
          log(
            `${name} run ${rep + 1}: latency p50 ${lat.p50.toFixed(3)} ms p99 ${
              lat.p99.toFixed(3)
            } ms`,
          );
        } catch (error) {
          note(
            `${name}: HTTP measures failed: ${error instanceof Error ? error.message : error}`,
          );
        }
      };
      for (let rep = 0; rep < (doing("http") ? settings.repeats : 0); rep++) {
        for (const name of peers) {
          // Peers interleaved; within a peer, the plain run and its variants
          // in turn, the order reversed every other round (best of N each).
          const runs = [
            () => runPlain(name, rep),
            ...variants.map((v) => () => runVariant(name, v, rep)),
          ];
          for (const run of rep % 2 === 0 ? runs : runs.reverse()) await run();
        }
      }
      if (doing("scale") && found.wrk && peers.includes("lb")) {
        workerScale = await measureWorkerScale({
          counts: workerCounts(box.cores),
          repeats: settings.repeats,
          start: (lbArgs) => startPeer("lb", { ...base, lbArgs, backends: ports }),
          rates: wrkRates,
          log,
          note,
        });
      }
      if (!found.wrk) note("no wrk: skipped keep-alive and new-connection rates");

      // Memory per idle connection, each proxy fresh.
      const idle = peers.filter((p) => p !== "direct" && doing("memory"));
      for (
        const [name, count] of idle.flatMap((p) => settings.idleConns.map((n) => [p, n] as const))
      ) {
        try {
          await using peer = await startPeer(name, { ...base, backends: ports });
          // Warm up: let the proxy settle its allocations before the baseline.
          await measureLatency({ port: peer.port, rate: 500, connections: 5, durationMs: 300 });
          await sleep(300);
          const mem = await idleMemory(
            peer.port,
            () => peer.pids(),
            count,
            settings.quick ? 500 : 1500,
          );
          results[name]!.idleBytesPerConn = mem.bytesPerConn;
          (scale[name] ??= []).push({
            conns: mem.opened,
            bytesPerConn: mem.bytesPerConn,
            rssKiB: mem.loadedKiB,
            fds: mem.loadedFds,
          });
          log(
            `${name}: ${mem.opened} idle conns: RSS ${mem.baseKiB} -> ${mem.loadedKiB} KiB, ` +
              `${mem.bytesPerConn.toFixed(0)} B/conn, fds ${mem.baseFds} -> ${mem.loadedFds}`,
          );
        } catch (error) {
          note(`${name}: memory measure failed: ${error instanceof Error ? error.message : error}`);
        }
      }
    }

    // Bulk throughput and CPU per GB: an iperf3 server as the only backend.
    if (!doing("bulk")) {
      // Skipped by --only.
    } else if (!found.iperf3) {
      note("no iperf3: skipping bulk throughput and CPU per GB");
    } else {
      const port = freePort();
      await using iperf = await startIperfServer(found.iperf3, port);
      void iperf;
      for (let rep = 0; rep < settings.repeats; rep++) {
        for (const name of peers) {
          try {
            await using peer = await startPeer(name, { ...base, backends: [port] });
            const figures = results[name]!;
            // The readiness probe reached the iperf3 server too: let it reset.
            await sleep(300);
            const cpu0 = cpuSeconds(peer.pids());
            const iperf = (reverse: boolean) =>
              runIperf(found.iperf3!, peer.port, d, reverse).catch(async (error) => {
                note(`${name}: iperf3 failed once (${error.message}), retried`);
                await sleep(500);
                return runIperf(found.iperf3!, peer.port, d, reverse);
              });
            const up = await iperf(false);
            const down = await iperf(true);
            const cpu = cpuSeconds(peer.pids()) - cpu0;
            keepBest(figures, "bulkUpGbps", up.bitsPerSec / 1e9);
            keepBest(figures, "bulkDownGbps", down.bitsPerSec / 1e9);
            if (name !== "direct") {
              keepBest(figures, "cpuSecPerGB", cpu / ((up.bytes + down.bytes) / 1e9));
            }
            log(
              `${name} run ${rep + 1}: bulk up ${(up.bitsPerSec / 1e9).toFixed(2)} down ${
                (down.bitsPerSec / 1e9).toFixed(2)
              } Gbit/s, ${cpu.toFixed(2)} cpu-s`,
            );
          } catch (error) {
            note(`${name}: bulk measure failed: ${error instanceof Error ? error.message : error}`);
          }
        }
      }
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }

  const date = new Date();
  const report = buildReport(
    date,
    box,
    { ...settings, parts, lbArgs, lbWorkers, lbBinary: lbBinary ?? null, variants: VARIANTS },
    results,
    notes,
    { scale, workerScale },
  );
  console.log(
    `\nlb bench ${report.date} — ${box.cores} cores, ${box.cpuModel}, ${box.kernel}, deno ${box.deno}` +
      ` (${settings.quick ? "quick" : "full"}, best of ${settings.repeats}, ${
        ((Date.now() - started) / 1000).toFixed(0)
      }s); ${describeLbWorkers(values.workers, box.cores)}\n`,
  );
  // Only what this run measured: --only leaves out the other parts' rows and notes.
  if (measures.length > 0) console.log(formatTable(results, peers, measures));
  const tableNotes = formatNotes(settings, measures);
  if (tableNotes) console.log(`\n${tableNotes}`);
  const costLines = formatCosts(results, peers, measures);
  if (costLines) console.log(`\n${costLines}`);
  const workerTable = formatWorkerScale(workerScale);
  if (workerTable) console.log(measures.length > 0 ? `\n${workerTable}` : workerTable);
  if (doing("memory")) console.log(`\n${formatScale(scale)}`);
  if (!values["no-write"]) {
    const out = new URL("./results/", import.meta.url);
    Deno.mkdirSync(out, { recursive: true });
    const name = reportName(date) + (settings.quick ? "-quick" : "");
    Deno.writeTextFileSync(new URL(`${name}.json`, out), JSON.stringify(report, null, 2) + "\n");
    Deno.writeTextFileSync(
      new URL(`${name}.svg`, out),
      svgChart(
        report.ratios,
        `lb ratios — ${report.date} (${box.cores} cores, ${box.cpuModel})`,
        measures,
      ),
    );
    console.log(`\nwrote bench/results/${name}.json and .svg`);
  }
}

if (import.meta.main) await main();
