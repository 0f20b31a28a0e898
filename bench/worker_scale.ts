/**
 * lb's worker count: the one the main table ran with, and the worker scale,
 * lb's new conns/s and keep-alive req/s for `--workers 1` up to the cores.
 * @module
 */
import { sleep } from "./net.ts";
import type { Peer } from "./peers.ts";
import { type Figures, keepBest, type WorkerScalePoint } from "./report.ts";
import type { WrkResult } from "./wrk.ts";

/**
 * The worker count lb runs with for the bench's `--workers` value: the number
 * given, or for `auto` or none (lb's default) the machine's cores.
 *
 * @param value The bench's `--workers` value, passed on to lb as is.
 * @param cores The machine's cores (`navigator.hardwareConcurrency`).
 * @returns The number of lb's workers.
 * @throws {SyntaxError} When `value` is neither digits nor `auto`.
 * @throws {RangeError} When `value` is 0.
 *
 * @example
 * ```ts
 * lbWorkersOf(undefined, 8); // 8
 * lbWorkersOf("2", 8); // 2
 * ```
 */
export function lbWorkersOf(value: string | undefined, cores: number): number {
  if (value === undefined || value === "auto") return Math.max(1, cores);
  if (!/^\d+$/.test(value)) {
    throw new SyntaxError(
      `Cannot run as "--workers" must be a whole number or auto: current value is "${value}"`,
    );
  }
  const workers = Number(value);
  if (workers < 1) {
    throw new RangeError(`Cannot run as "--workers" must be at least 1: current value is ${value}`);
  }
  return workers;
}

/**
 * The line of the table's header that says how many workers lb ran with.
 *
 * @example
 * ```ts
 * describeLbWorkers(undefined, 2); // "lb workers 2 (lb's default, auto: one per core)"
 * describeLbWorkers("1", 2); // "lb workers 1 (--workers 1)"
 * ```
 */
export function describeLbWorkers(value: string | undefined, cores: number): string {
  const how = value === undefined ? "lb's default, auto: one per core" : `--workers ${value}`;
  return `lb workers ${lbWorkersOf(value, cores)} (${how})`;
}

/** The `--workers` counts of the worker scale on `cores` cores: 1, 2, ... cores. */
export function workerCounts(cores: number): number[] {
  return Array.from({ length: Math.max(1, cores) }, (_, i) => i + 1);
}

/** What {@link measureWorkerScale} runs, and with what. */
export interface WorkerScaleOptions {
  /** The `--workers` counts, ascending (see {@link workerCounts}). */
  counts: readonly number[];
  /** Rounds over every count, the order reversed every other round; each keeps its best. */
  repeats: number;
  /** Starts lb with these flags added (`--workers N`) in front of the HTTP backends. */
  start(lbArgs: string[]): Promise<Pick<Peer, "port"> & AsyncDisposable>;
  /** The main table's wrk sequence on `port`: a warm-up, keep-alive, then `Connection: close`. */
  rates(port: number): Promise<{ ka: WrkResult; nc: WrkResult }>;
  /** A progress line. */
  log(line: string): void;
  /** A line for the report's notes: a failed run, wrk errors. */
  note(line: string): void;
  /** Pause after each run, so that the close run's TIME_WAIT sockets do not crowd the next. @default 200 */
  settleMs?: number;
}

/**
 * Runs lb once per `--workers` count and round, fresh each time, through the
 * same wrk sequence as the main table's plain run.
 *
 * @returns One point per count, ascending; a count whose every run failed has nulls.
 */
export async function measureWorkerScale(
  options: WorkerScaleOptions,
): Promise<WorkerScalePoint[]> {
  const best = new Map<number, Figures>(options.counts.map((n) => [n, {}]));
  for (let rep = 0; rep < options.repeats; rep++) {
    const counts = rep % 2 === 0 ? [...options.counts] : [...options.counts].reverse();
    for (const workers of counts) {
      try {
        await using lb = await options.start(["--workers", `${workers}`]);
        const { ka, nc } = await options.rates(lb.port);
        keepBest(best.get(workers)!, "keepAliveRps", ka.requestsPerSec);
        keepBest(best.get(workers)!, "newConnRps", nc.requestsPerSec);
        options.log(
          `lb --workers ${workers} run ${rep + 1}: keep-alive ${ka.requestsPerSec.toFixed(0)} ` +
            `req/s (${ka.errors} errors), new conns ${nc.requestsPerSec.toFixed(0)}/s ` +
            `(${nc.errors} errors)`,
        );
        if (ka.errors + nc.errors > 0) {
          options.note(
            `lb --workers ${workers} run ${rep + 1}: ${ka.errors + nc.errors} wrk errors`,
          );
        }
      } catch (error) {
        options.note(
          `lb --workers ${workers}: worker scale failed: ${
            error instanceof Error ? error.message : error
          }`,
        );
      }
      await sleep(options.settleMs ?? 200);
    }
  }
  return options.counts.map((workers) => {
    const figures = best.get(workers)!;
    return {
      workers,
      newConnsPerSec: figures.newConnRps ?? null,
      keepAliveReqPerSec: figures.keepAliveRps ?? null,
    };
  });
}
