import { parseHostPort } from "../common/address.ts";
import type { BackendConfig } from "./config.ts";
import { ConfigError } from "../common/errors.ts";

/**
 * Parses one `-p` value: `PORT`, `HOST:PORT` or `[IPv6]:PORT`, then comma-separated
 * options `weight=N` (1-1000), `backup`, `maxconn=N` (0 is no limit).
 *
 * @param value The flag value.
 * @param field The flag, named in errors.
 * @returns The backend.
 * @throws {ConfigError} On a bad address or option.
 * @example
 * ```ts
 * parseBackendSpec("127.0.0.1:8101,weight=3", "-p");
 * ```
 */
export function parseBackendSpec(value: string, field: string): BackendConfig {
  const [address = "", ...options] = value.split(",");
  const backend: BackendConfig = {
    ...parseHostPort(address, field, "127.0.0.1"),
    weight: 1,
    backup: false,
    maxConn: 0,
  };
  for (const option of options) {
    const [key = "", raw] = option.trim().split("=", 2);
    if (key === "backup" && raw === undefined) backend.backup = true;
    else if (key === "weight" && raw !== undefined) {
      backend.weight = wholeNumber(raw, `${field} ${address} weight`, 1, 1000);
    } else if (key === "maxconn" && raw !== undefined) {
      backend.maxConn = wholeNumber(raw, `${field} ${address} maxconn`, 0, 1_000_000);
    } else {
      throw new ConfigError(
        `${field} ${address}: unknown option ${
          JSON.stringify(option)
        } (expected weight=N, backup or maxconn=N)`,
      );
    }
  }
  return backend;
}

/**
 * Parses a whole number within `min`-`max`.
 *
 * @throws {ConfigError} Naming `field` when the text is not such a number.
 */
export function wholeNumber(value: string | number, field: string, min: number, max: number) {
  const text = String(value).trim();
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`${field} must be ${min}-${max}: got ${JSON.stringify(value)}`);
  }
  return n;
}
