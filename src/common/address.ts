import { ConfigError } from "./errors.ts";

/** A TCP endpoint. */
export interface HostPort {
  hostname: string;
  port: number;
}

/**
 * Parses a port number, 1-65535 (or 0 where `allowZero`, meaning "any free port").
 *
 * @throws {ConfigError} When the text is not a whole number in range.
 */
export function parsePort(value: string | number, field: string, allowZero = false): number {
  const text = String(value).trim();
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  const min = allowZero ? 0 : 1;
  if (!Number.isInteger(port) || port < min || port > 65535) {
    throw new ConfigError(`${field} must be a port ${min}-65535: got ${JSON.stringify(value)}`);
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

/** Formats an endpoint as `host:port`, bracketing IPv6 addresses. */
export function formatHostPort(addr: HostPort): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/**
 * Formats a socket address from Deno (`Deno.Addr`) for logs. An IPv4 client
 * seen on a dual-stack listener (`::ffff:10.0.0.5`) is shown as plain IPv4.
 */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  const { hostname, port } = addr as Deno.NetAddr;
  return formatHostPort({ hostname: unmapIPv4(hostname), port });
}

/** `::ffff:a.b.c.d` (an IPv4-mapped IPv6 address) as `a.b.c.d`; anything else as it is. */
export function unmapIPv4(hostname: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(hostname) ? hostname.slice(7) : hostname;
}
