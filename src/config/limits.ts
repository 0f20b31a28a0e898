/**
 * The range of every whole-number setting, in one table read by the flags,
 * the config file, `-p` options and (through a test) `lb.schema.json`.
 * @module
 */
import { ConfigError } from "../common/errors.ts";

/** Smallest and largest value a whole-number field takes. */
export interface IntLimit {
  readonly min: number;
  readonly max: number;
}

/** Every whole-number field's range, by the name the config file gives it. */
export const LIMITS = {
  /** A backend or listener port (listeners also take 0: any free port). */
  port: { min: 1, max: 65535 },
  /** `-p ...,weight=N`, `backends[].weight`. */
  weight: { min: 1, max: 1000 },
  /** `-p ...,maxconn=N`, `backends[].maxConn`; 0 is no limit. */
  maxConn: { min: 0, max: 1_000_000 },
  /** `--rise`, `health.rise`. */
  rise: { min: 1, max: 1000 },
  /** `--fall`, `health.fall`. */
  fall: { min: 1, max: 1000 },
  /** `--retries`, `retries`. */
  retries: { min: 0, max: 1000 },
  /** `--max-conns`, `maxConns`; 0 is no limit. */
  maxConns: { min: 0, max: 10_000_000 },
  /** `--workers`, `workers`. */
  workers: { min: 1, max: 256 },
  /** `--max-conns-per-source`, `maxConnsPerSource`; 0 is no limit. */
  maxConnsPerSource: { min: 0, max: 1_000_000 },
  /** `--source-table-size`, `sourceTableSize`: most client sources tracked at once. */
  sourceTableSize: { min: 1, max: 10_000_000 },
  /** `--source-ipv6-prefix`, `sourceIPv6Prefix`: IPv6 clients in one such prefix count as one source. */
  sourceIPv6Prefix: { min: 1, max: 128 },
} as const satisfies Record<string, IntLimit>;

/** `--workers auto`, the default: the number of cores (`navigator.hardwareConcurrency`) within {@link LIMITS}.workers. */
export function allCores(): number {
  const cores = navigator.hardwareConcurrency || 1;
  return Math.min(LIMITS.workers.max, Math.max(LIMITS.workers.min, cores));
}

/**
 * Reads `--workers`: a whole number in {@link LIMITS}.workers, or `auto`, the
 * number of cores (`navigator.hardwareConcurrency`, within the same range).
 *
 * @throws {ConfigError} Naming `name` otherwise.
 */
export function readWorkers(value: unknown, name: string, text = true): number {
  if (value === "auto") return allCores();
  return readInt(value, name, LIMITS.workers, text);
}

/**
 * Reads a whole number within `limit`: from text (a flag, a `-p` option),
 * where it must be digits only, or from a JSON number (the config file).
 *
 * @param value The text or the JSON value.
 * @param name The flag or field, named in the error.
 * @param limit The range.
 * @param text Whether digits in a string are read (flags); a JSON field takes numbers only.
 * @returns The number.
 * @throws {ConfigError} When it is not a whole number, or out of range.
 * @example
 * ```ts
 * readInt("3", "--rise", LIMITS.rise); // 3
 * ```
 */
export function readInt(value: unknown, name: string, limit: IntLimit, text = true): number {
  const n = typeof value === "string" && text
    ? (/^\s*\d+\s*$/.test(value) ? Number(value) : NaN)
    : typeof value === "number"
    ? value
    : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new ConfigError(
      `${name} must be a whole number ${limit.min}-${limit.max}: got ${JSON.stringify(value)}`,
    );
  }
  if (n < limit.min || n > limit.max) {
    throw new ConfigError(
      `${name} must be ${limit.min}-${limit.max}: got ${JSON.stringify(value)}`,
    );
  }
  return n;
}
