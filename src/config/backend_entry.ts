/**
 * What a backend entry names: an address (a static backend, as always), a host
 * name or an SRV name (backends found through DNS), and the id each goes by.
 * @module
 */
import { formatHostPort, type HostPort } from "../common/address.ts";
import { ConfigError } from "../common/errors.ts";
import { parseIp } from "../admission/cidr.ts";
import type { BackendConfig } from "./config.ts";
import { parseHostPort, parsePort } from "./host_port.ts";

/** The prefix of an SRV entry: `-p srv:_http._tcp.backend.example`. */
export const SRV_PREFIX = "srv:";

/** The port a DNS server listens on when `--resolver` names none. */
export const DNS_PORT = 53;

/**
 * Parses the address part of a `-p` value: `PORT`, `HOST:PORT`,
 * `[IPv6]:PORT` or `srv:_SERVICE._PROTO.NAME`.
 *
 * @param text The address, before any `,option`.
 * @param field The flag or config field, named in errors.
 * @returns The endpoint; for SRV the name with port 0 and `srv: true`.
 * @throws {ConfigError} When the text is none of those.
 * @example
 * ```ts
 * parseBackendAddress("srv:_http._tcp.backend.example", "-p");
 * // { hostname: "_http._tcp.backend.example", port: 0, srv: true }
 * ```
 */
export function parseBackendAddress(
  text: string,
  field: string,
): HostPort & { srv?: boolean } {
  const trimmed = text.trim();
  if (!trimmed.startsWith(SRV_PREFIX)) return parseHostPort(trimmed, field, "127.0.0.1");
  return { hostname: srvName(trimmed.slice(SRV_PREFIX.length), field), port: 0, srv: true };
}

/**
 * Checks an SRV name (`_http._tcp.backend.example`).
 *
 * @throws {ConfigError} When it is empty or holds a character no DNS name has.
 */
export function srvName(name: string, field: string): string {
  if (!/^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*\.?$/.test(name)) {
    throw new ConfigError(
      `${field} must name an SRV record set like _http._tcp.example.com: got ${
        JSON.stringify(name)
      }`,
    );
  }
  return name;
}

/**
 * The id of a backend entry as configured, unique within a frontend:
 * `host:port` (an address or a host name) or `srv:NAME`. A backend found
 * through DNS has its own id (`NAME:PORT/ADDRESS`, see `BackendConfig.id`).
 */
export function backendEntryId(backend: BackendConfig): string {
  if (backend.id !== undefined) return backend.id;
  return backend.srv ? `${SRV_PREFIX}${backend.hostname}` : formatHostPort(backend);
}

/**
 * Whether an entry is followed through DNS: an SRV entry, or a host that is
 * a name rather than an IP address (`localhost` included: it resolves like
 * any name, to every address it has).
 */
export function isDiscovered(backend: BackendConfig): boolean {
  if (backend.id !== undefined) return false;
  return backend.srv === true || parseIp(backend.hostname) === undefined;
}

/**
 * Parses a `--resolver` value: an IP address with an optional port
 * (`10.96.0.10`, `10.96.0.10:53`, `[fd00::a]:5353`, `fd00::a`).
 *
 * @param text The value.
 * @param field The flag or config field, named in errors.
 * @returns The server, port 53 when none is given.
 * @throws {ConfigError} When it is not an IP address (a DNS server is never named by a name).
 */
export function parseResolver(text: string, field: string): HostPort {
  const trimmed = text.trim();
  if (parseIp(trimmed) !== undefined) return { hostname: trimmed, port: DNS_PORT };
  const bracketed = /^\[([^\]]+)\]:(.*)$/.exec(trimmed);
  const colon = trimmed.lastIndexOf(":");
  const [host, port] = bracketed
    ? [bracketed[1]!, bracketed[2]!]
    : [trimmed.slice(0, colon), trimmed.slice(colon + 1)];
  if (colon <= 0 || parseIp(host) === undefined) {
    throw new ConfigError(
      `${field} must be an IP address with an optional port (IP, IP:PORT, [IPv6]:PORT): got ${
        JSON.stringify(text)
      }`,
    );
  }
  return { hostname: host, port: parsePort(port, field) };
}
