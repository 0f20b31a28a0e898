import { ConfigError } from "../common/errors.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest duration, ms (about 596h): timers fire at once past 2^31-1 ms. */
export const MAX_DURATION = 2 ** 31 - 1;

/**
 * Parses a duration such as `500ms`, `2s`, `5m`, `1h` or `0` into milliseconds.
 * A bare number means seconds, like HAProxy's `timeout` without a unit is not:
 * we take seconds because every default here is given in seconds.
 *
 * @param value The text to parse.
 * @param field The flag or config field, named in the error.
 * @returns Milliseconds, 0 or more.
 * @throws {ConfigError} When the text is not a duration, or one over {@link MAX_DURATION}.
 * @example
 * ```ts
 * parseDuration("500ms", "--health-timeout"); // 500
 * ```
 */
export function parseDuration(value: string | number, field: string): number {
  let ms = NaN;
  if (typeof value === "number") {
    if (Number.isFinite(value) && value >= 0) ms = value * 1000;
  } else {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
    if (match) ms = Math.round(Number(match[1]) * (UNITS[match[2] ?? "s"] ?? 1000));
  }
  if (ms >= 0 && ms <= MAX_DURATION) return ms;
  if (ms > MAX_DURATION) {
    throw new ConfigError(`${field} must be at most 596h: got ${JSON.stringify(value)}`);
  }
  throw new ConfigError(
    `${field} must be a duration like 500ms, 2s or 5m: got ${JSON.stringify(value)}`,
  );
}
