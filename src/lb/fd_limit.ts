/**
 * The file-descriptor limit check: lb holds two descriptors per proxied
 * connection (client and backend), plus listeners, the admin endpoint, health
 * checks and the runtime's own.
 * @module
 */
import type { Logger } from "../observability/log.ts";

/** Descriptors beyond two per connection: listeners, admin, health checks, log file, runtime. */
export const FD_HEADROOM = 64;

/**
 * The soft "Max open files" limit from the text of `/proc/self/limits`.
 *
 * @returns The limit, `Infinity` for "unlimited", or undefined when the line is absent.
 */
export function parseSoftFdLimit(limits: string): number | undefined {
  const match = /^Max open files\s+(\d+|unlimited)\s+/m.exec(limits);
  if (!match) return undefined;
  return match[1] === "unlimited" ? Infinity : Number(match[1]);
}

/** Descriptors lb needs for `maxConns` connections: two each plus {@link FD_HEADROOM}. */
export function fdsNeeded(maxConns: number): number {
  return 2 * maxConns + FD_HEADROOM;
}

/**
 * The warning for a soft limit too low for `maxConns`, or undefined when it
 * suffices or `maxConns` is 0 (no limit set, so nothing to compare with).
 */
export function fdLimitWarning(soft: number, maxConns: number): string | undefined {
  if (maxConns <= 0) return undefined;
  const needed = fdsNeeded(maxConns);
  if (soft >= needed) return undefined;
  return `soft file-descriptor limit ${soft} is below the ${needed} that --max-conns ${maxConns} ` +
    `needs (2 per connection + ${FD_HEADROOM}); raise it (ulimit -n ${needed}, or LimitNOFILE=)`;
}

/**
 * Reads the soft fd limit of this process on Linux.
 *
 * @returns The limit, or undefined off Linux or when `/proc/self/limits`
 * cannot be read (Deno grants `/proc` reads only with `--allow-all`).
 */
export function readSoftFdLimit(
  read: () => string = () => Deno.readTextFileSync("/proc/self/limits"),
): number | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    return parseSoftFdLimit(read());
  } catch {
    return undefined;
  }
}

/**
 * Logs one warning when the soft fd limit is below what `maxConns` needs.
 *
 * @param maxConns `--max-conns`; 0 (no limit) never warns.
 * @param logger Where the warning goes.
 * @param readLimit The soft limit, undefined when unknown. @default readSoftFdLimit
 * @returns Whether it warned.
 */
export function checkFdLimit(
  maxConns: number,
  logger: Logger,
  readLimit: () => number | undefined = readSoftFdLimit,
): boolean {
  const soft = readLimit();
  if (soft === undefined) return false;
  const warning = fdLimitWarning(soft, maxConns);
  if (warning) logger.log("lb", warning);
  return warning !== undefined;
}
