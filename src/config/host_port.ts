/**
 * Endpoints as flags and config files write them: `PORT`, `HOST:PORT`, `[IPv6]:PORT`.
 * @module
 */
import type { HostPort } from "../common/address.ts";
import { ConfigError } from "../common/errors.ts";
import { LIMITS } from "./limits.ts";

/**
 * Parses a port number, 1-65535 (or 0 where `allowZero`, meaning "any free port").
 *
 * @throws {ConfigError} When the text is not a whole number in range.
 */
export function parsePort(value: string | number, field: string, allowZero = false): number {
  const text = String(value).trim();
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  const min = allowZero ? 0 : LIMITS.port.min;
  if (!Number.isInteger(port) || port < min || port > LIMITS.port.max) {
    throw new ConfigError(
      `${field} must be a port ${min}-${LIMITS.port.max}: got ${JSON.stringify(value)}`,
    );
  }
  return port;
}

/**
 * Parses `PORT`, `HOST:PORT` or `[IPv6]:PORT`. A bare port takes `defaultHost`.
 *
 * @param value The text to parse.
 * @param field The flag or config field, named in the error.
 * @param defaultHost The host a bare port gets.
 * @param allowZero Whether port 0 (any free port) is allowed, as for listeners.
 * @returns The endpoint.
 * @throws {ConfigError} When the text is not an endpoint.
 * @example
 * ```ts
 * parseHostPort("[::1]:8101", "-p", "127.0.0.1"); // { hostname: "::1", port: 8101 }
 * ```
 */
export function parseHostPort(
  value: string,
  field: string,
  defaultHost: string,
  allowZero = false,
): HostPort {
  const text = value.trim();
  if (/^\d+$/.test(text)) return { hostname: defaultHost, port: parsePort(text, field, allowZero) };
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(text);
  if (v6) return { hostname: v6[1]!, port: parsePort(v6[2]!, field, allowZero) };
  const colon = text.lastIndexOf(":");
  const host = text.slice(0, colon);
  if (colon <= 0 || host.includes(":") || !/^[A-Za-z0-9.\-_]+$/.test(host)) {
    throw new ConfigError(
      `${field} must be PORT, HOST:PORT or [IPv6]:PORT: got ${JSON.stringify(value)}`,
    );
  }
  return { hostname: host, port: parsePort(text.slice(colon + 1), field, allowZero) };
}
