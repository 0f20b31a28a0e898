/**
 * DNS lookups for discovery: A and AAAA together, SRV, and SRV targets to
 * addresses, through `Deno.resolveDns` with each named server tried in turn.
 *
 * What `Deno.resolveDns` (Deno 2.9) tells apart, and so what this can:
 * - NXDOMAIN, an empty answer (NODATA) and REFUSED all reject with
 *   `Deno.errors.NotFound`; all three are reason `"nxdomain"` here.
 * - A server that does not answer (a dead port included: the ICMP "port
 *   unreachable" is ignored) rejects with `Deno.errors.TimedOut` after 15 s
 *   (3 tries of 5 s), so every query here is bounded by `timeoutMs`.
 * - Failures of the socket itself reject with a plain `Error`.
 * - It needs `--allow-net` for the server's `ip:port` (the system's servers
 *   from `/etc/resolv.conf` when none is named), nothing else.
 *
 * @module
 */
import { formatHostPort, type HostPort } from "../common/address.ts";
import { formatIP, parseIP } from "../proxy_protocol/ip.ts";
import { _compareAddresses } from "./_address_order.ts";

/** Why a lookup failed, for logs, `/stats` and the `/metrics` outcome label. */
export type DiscoveryErrorReason = "nxdomain" | "empty" | "timeout" | "unreachable" | "error";

/**
 * A lookup that failed. Callers branch on {@linkcode DiscoveryError.reason},
 * never on the message.
 */
export class DiscoveryError extends Error {
  override name = "DiscoveryError";
  /**
   * - `nxdomain`: the server has no such records (NXDOMAIN, NODATA or REFUSED:
   *   Deno reports all three alike).
   * - `empty`: the answer left no endpoint (e.g. an SRV record with target `.`).
   * - `timeout`: no answer within `timeoutMs` from any server.
   * - `unreachable`: the server could not be reached (refused, no route).
   * - `error`: anything else (a malformed name, no permission, a socket error).
   */
  readonly reason: DiscoveryErrorReason;

  /**
   * @param reason Why the lookup failed.
   * @param message One line naming the query and the cause.
   * @param options The underlying error as `cause`.
   */
  constructor(reason: DiscoveryErrorReason, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.reason = reason;
  }
}

/** Options of {@linkcode resolveName}, {@linkcode resolveSrv} and {@linkcode expandSrvTargets}. */
export interface ResolveOptions {
  /**
   * DNS servers (IP address and port), tried in order: the next one is asked
   * only when one times out or fails, not when it answers "no such name".
   * Empty: the system's servers (`/etc/resolv.conf`).
   * @default {[]}
   */
  resolvers?: readonly HostPort[];
  /**
   * Milliseconds each server gets to answer one query, so a lookup takes at
   * most `resolvers.length` times this (twice that for SRV with its targets).
   * @default {2000}
   */
  timeoutMs?: number;
  /** Aborts the lookup; it then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** One SRV record (RFC 2782). */
export interface SrvTarget {
  /** The target host name, without the trailing dot. */
  target: string;
  port: number;
  /** Lower is preferred. */
  priority: number;
  /** Relative share among records of the same priority. */
  weight: number;
}

/** An SRV record with one address of its target: {@linkcode expandSrvTargets}. */
export interface SrvEndpoint extends SrvTarget {
  /** An address of `target`. */
  hostname: string;
}

const _DEFAULT_TIMEOUT_MS = 2000;

const _UNREACHABLE: readonly (new (...args: never[]) => Error)[] = [
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NetworkUnreachable,
  Deno.errors.AddrNotAvailable,
  Deno.errors.NotConnected,
];

/**
 * The addresses of a host name: its A and AAAA records, asked together. A
 * name with only one family is fine. An IP address is returned as it is,
 * without a query.
 *
 * A family that fails for another reason than "no such records" (a timeout)
 * fails the whole lookup: a partial answer would drop that family's backends
 * on a passing failure.
 *
 * @param name The host name.
 * @param options Servers, timeout and signal.
 * @returns The addresses, deduplicated and sorted (IPv4 first, then IPv6, each in numeric order).
 * @throws {DiscoveryError} When neither family has an address, or a query fails.
 * @throws {TypeError} When `name` is not a non-empty string.
 * @throws {RangeError} When an option is out of range.
 * @example
 * ```ts
 * const addresses = await resolveName("backend.example", {
 *   resolvers: [{ hostname: "127.0.0.1", port: 5353 }],
 *   timeoutMs: 1000,
 * });
 * // ["10.0.0.5", "10.0.0.6", "fd00::5"]
 * ```
 */
export async function resolveName(name: string, options: ResolveOptions = {}): Promise<string[]> {
  const settings = _settings("resolve name", name, options);
  const literal = _canonicalIP(name);
  if (literal !== undefined) return [literal];
  const results = await Promise.allSettled([
    _query(name, "A", settings),
    _query(name, "AAAA", settings),
  ]);
  const addresses: string[] = [];
  const errors: DiscoveryError[] = [];
  for (const result of results) {
    if (result.status === "fulfilled") addresses.push(...result.value);
    else if (result.reason instanceof DiscoveryError) errors.push(result.reason);
    else throw result.reason; // the caller's abort
  }
  const hard = errors.find((error) => error.reason !== "nxdomain");
  if (hard !== undefined) throw hard;
  const sorted = _sortAddresses(addresses);
  if (sorted.length === 0) {
    const reason = errors.length === 2 ? "nxdomain" : "empty";
    throw new DiscoveryError(reason, `${name}: no A or AAAA record`, { cause: errors[0] });
  }
  return sorted;
}

/**
 * The SRV records of a service name such as `_http._tcp.example.com`.
 * Records with target `.` ("service not available here", RFC 2782) are left out.
 *
 * @param name The service name.
 * @param options Servers, timeout and signal.
 * @returns The records, deduplicated and sorted by priority, then weight (highest first), target and port.
 * @throws {DiscoveryError} When there is no record (`nxdomain`), only `.` targets (`empty`), or a query fails.
 * @throws {TypeError} When `name` is not a non-empty string.
 * @throws {RangeError} When an option is out of range.
 * @example
 * ```ts
 * const targets = await resolveSrv("_http._tcp.backends.example", { timeoutMs: 1000 });
 * // [{ target: "a.example", port: 8080, priority: 10, weight: 5 }, ...]
 * ```
 */
export async function resolveSrv(name: string, options: ResolveOptions = {}): Promise<SrvTarget[]> {
  const settings = _settings("resolve SRV", name, options);
  const records = await _query(name, "SRV", settings);
  const seen = new Set<string>();
  const targets: SrvTarget[] = [];
  for (const record of records) {
    const target = _stripDot(record.target);
    if (target === "") continue;
    const key = `${target} ${record.port} ${record.priority} ${record.weight}`;
    if (seen.has(key)) continue;
    seen.add(key);
    targets.push({ target, port: record.port, priority: record.priority, weight: record.weight });
  }
  if (targets.length === 0) {
    throw new DiscoveryError("empty", `${name}: SRV: the service is not available (target ".")`);
  }
  return targets.sort((a, b) =>
    a.priority - b.priority || b.weight - a.weight || _compareText(a.target, b.target) ||
    a.port - b.port
  );
}

/**
 * Resolves SRV targets to addresses ({@linkcode resolveName}), one endpoint
 * per record and address. A target with no address (`nxdomain`) is left
 * out; any other failure fails the whole expansion, so that a passing
 * failure does not drop that target's backends.
 *
 * @param targets SRV records, e.g. from {@linkcode resolveSrv}.
 * @param options Servers, timeout and signal.
 * @returns The endpoints, in the order of `targets`, then of the addresses.
 * @throws {DiscoveryError} When a target lookup fails for another reason than `nxdomain`, or when no target has an address.
 * @throws {RangeError} When an option is out of range.
 * @example
 * ```ts
 * const options = { timeoutMs: 1000 };
 * const endpoints = await expandSrvTargets(await resolveSrv("_http._tcp.backends.example", options), options);
 * // [{ target: "a.example", hostname: "10.0.0.5", port: 8080, priority: 10, weight: 5 }, ...]
 * ```
 */
export async function expandSrvTargets(
  targets: readonly SrvTarget[],
  options: ResolveOptions = {},
): Promise<SrvEndpoint[]> {
  const names = [...new Set(targets.map((t) => t.target))];
  const results = await Promise.allSettled(names.map((n) => resolveName(n, options)));
  const addresses = new Map<string, string[]>();
  const missing: DiscoveryError[] = [];
  for (const [i, result] of results.entries()) {
    if (result.status === "fulfilled") addresses.set(names[i]!, result.value);
    else if (result.reason instanceof DiscoveryError && result.reason.reason === "nxdomain") {
      missing.push(result.reason);
    } else throw result.reason;
  }
  const endpoints = targets.flatMap((t) =>
    (addresses.get(t.target) ?? []).map((hostname) => ({ ...t, hostname }))
  );
  if (endpoints.length === 0) {
    throw new DiscoveryError(
      "empty",
      `no SRV target has an address: ${missing.map((e) => e.message).join("; ")}`,
      { cause: missing[0] },
    );
  }
  return endpoints;
}

type _Settings = ReturnType<typeof checkResolveOptions>;

type _Answer<T extends "A" | "AAAA" | "SRV"> = T extends "SRV" ? Deno.SrvRecord[] : string[];

/** Validates the name and options once, up front. */
function _settings(what: string, name: string, options: ResolveOptions): _Settings {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `Cannot ${what} as "name" must be a non-empty string: current value is ${
        JSON.stringify(name)
      }`,
    );
  }
  return checkResolveOptions(what, options);
}

/**
 * Validates lookup options, as every lookup does first: for a caller that
 * wants the error at start rather than at the first lookup.
 *
 * @param what What the options are for, for the message: `Cannot ${what} as ...`.
 * @param options The options.
 * @returns The options with defaults filled in.
 * @throws {RangeError} When `timeoutMs` is not positive, or a resolver is not an IP address with a port 1-65535.
 * @example
 * ```ts
 * checkResolveOptions("start", { resolvers: [{ hostname: "dns.local", port: 53 }] });
 * // RangeError: Cannot start as a resolver must be an IP address: current value is "dns.local"
 * ```
 */
export function checkResolveOptions(
  what: string,
  options: ResolveOptions,
): Required<Omit<ResolveOptions, "signal">> & Pick<ResolveOptions, "signal"> {
  const timeoutMs = options.timeoutMs ?? _DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(
      `Cannot ${what} as "timeoutMs" must be a positive number: current value is ${timeoutMs}`,
    );
  }
  const resolvers = options.resolvers ?? [];
  for (const resolver of resolvers) {
    if (parseIP(resolver.hostname) === null) {
      throw new RangeError(
        `Cannot ${what} as a resolver must be an IP address: current value is "${resolver.hostname}"`,
      );
    }
    if (!Number.isInteger(resolver.port) || resolver.port < 1 || resolver.port > 65535) {
      throw new RangeError(
        `Cannot ${what} as a resolver "port" must be 1-65535: current value is ${resolver.port}`,
      );
    }
  }
  return options.signal === undefined
    ? { resolvers, timeoutMs }
    : { resolvers, timeoutMs, signal: options.signal };
}

/** One query, asking each server in turn until one answers. */
async function _query<T extends "A" | "AAAA" | "SRV">(
  name: string,
  type: T,
  settings: _Settings,
): Promise<_Answer<T>> {
  const servers: (HostPort | undefined)[] = settings.resolvers.length > 0
    ? [...settings.resolvers]
    : [undefined];
  let last: DiscoveryError | undefined;
  for (const server of servers) {
    const answer = await _ask(name, type, server, settings);
    if (!(answer instanceof DiscoveryError)) return answer;
    if (answer.reason === "nxdomain") throw answer;
    last = answer;
  }
  throw last!;
}

/** One query to one server, bounded by the timeout; failures are returned, the caller's abort thrown. */
async function _ask<T extends "A" | "AAAA" | "SRV">(
  name: string,
  type: T,
  server: HostPort | undefined,
  settings: _Settings,
): Promise<_Answer<T> | DiscoveryError> {
  const where = server === undefined ? "system resolver" : formatHostPort(server);
  const what = `${name} ${type} via ${where}`;
  settings.signal?.throwIfAborted();
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), settings.timeoutMs);
  const signal = settings.signal === undefined
    ? timeout.signal
    : AbortSignal.any([timeout.signal, settings.signal]);
  try {
    const answer = await Deno.resolveDns(name, type, {
      signal,
      ...(server === undefined
        ? {}
        : { nameServer: { ipAddr: server.hostname, port: server.port } }),
    });
    return answer as _Answer<T>;
  } catch (error) {
    settings.signal?.throwIfAborted();
    if (timeout.signal.aborted || error instanceof Deno.errors.TimedOut) {
      return new DiscoveryError(
        "timeout",
        `${what}: no answer within ${settings.timeoutMs}ms`,
        { cause: error },
      );
    }
    return new DiscoveryError(_reasonOf(error), `${what}: ${_describe(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

function _reasonOf(error: unknown): DiscoveryErrorReason {
  if (error instanceof Deno.errors.NotFound) return "nxdomain";
  if (_UNREACHABLE.some((kind) => error instanceof kind)) return "unreachable";
  return "error";
}

function _describe(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such records";
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function _stripDot(name: string): string {
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

function _canonicalIP(text: string): string | undefined {
  const bytes = parseIP(text);
  return bytes === null ? undefined : formatIP(bytes);
}

/** Canonical text, deduplicated, IPv4 before IPv6, each in numeric order. */
function _sortAddresses(addresses: readonly string[]): string[] {
  const canonical = new Set<string>();
  for (const address of addresses) {
    const text = _canonicalIP(address);
    if (text !== undefined) canonical.add(text);
  }
  return [...canonical].sort(_compareAddresses);
}

function _compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
