/**
 * Backends given by name (`-p NAME:PORT`, `-p srv:_SERVICE._PROTO.NAME`):
 * one {@link Discovery} per name keeps its last good set of addresses, and
 * {@link DiscoveredBackends.expand} turns a frontend's configured entries into
 * the backends its pool holds now, each address with its entry's options and
 * the id `NAME:PORT/ADDRESS`. The pool follows a changed answer through
 * `followDiscovery` in reload.ts, with the same identity rules as a reload.
 * @module
 */
import { formatHostPort, type HostPort } from "../common/address.ts";
import { ConfigError } from "../common/errors.ts";
import { backendEntryId, isDiscovered } from "../config/backend_entry.ts";
import type { BackendConfig, Config, FrontendConfig } from "../config/config.ts";
import {
  type DiscoveredEndpoint,
  Discovery,
  type DiscoveryCounters,
  type DiscoveryEntry,
} from "../discovery/mod.ts";
import { Logger } from "../observability/log.ts";
import type { DnsNameStats } from "../observability/metrics.ts";

/** Options of {@link DiscoveredBackends.start}: what tests and `--check` change. */
export interface DiscoveredOptions {
  /**
   * Milliseconds each DNS server gets to answer one query.
   * @default {2000}
   */
  timeoutMs?: number;
  /**
   * With `resolveInterval` 0, milliseconds between tries of names that never resolved.
   * @default {10000}
   */
  retryInterval?: number;
}

/** A reload's new set of names, started but not yet in use: see {@link DiscoveredBackends.prepare}. */
export interface DiscoveryUpdate {
  /** {@link DiscoveredBackends.expand} over the new set. */
  expand(frontend: FrontendConfig): FrontendConfig;
  /** Switches to the new set; names no longer configured stop. */
  commit(): Promise<void>;
  /** Drops the new set (the reload failed); the running one goes on. */
  abort(): Promise<void>;
}

/** One name followed. */
interface _Watch {
  entry: DiscoveryEntry;
  discovery: Discovery;
  /** The last good set (carried over from the watch this one replaced). */
  endpoints: readonly DiscoveredEndpoint[];
  /** Lookups counted by the watches this one replaced, so `/metrics` counters never go back. */
  carried: DiscoveryCounters;
  /** Whether its changes reach the pools (false while a reload prepares it). */
  live: boolean;
  /** The watch this one replaces, until the reload commits (its counters are carried then). */
  replaces?: _Watch | undefined;
}

/**
 * The owner of every name lb follows: starts a {@link Discovery} per name,
 * keeps each one's last good set, logs failures once per streak, and tells
 * its follower (the running lb) when a set changes.
 *
 * @example
 * ```ts
 * const discovered = await DiscoveredBackends.start(config, logger);
 * const lb = Lb.open(config, logger, onEnd, { discovery: discovered });
 * discovered.follow(() => void followDiscovery(lb));
 * ```
 */
export class DiscoveredBackends implements AsyncDisposable {
  #watches: Map<string, _Watch>;
  #settings: string;
  #logger: Logger;
  #options: DiscoveredOptions;
  #follower: () => void = () => {};

  private constructor(
    watches: Map<string, _Watch>,
    settings: string,
    logger: Logger,
    options: DiscoveredOptions,
  ) {
    this.#watches = watches;
    this.#settings = settings;
    this.#logger = logger;
    this.#options = options;
  }

  /**
   * Starts following every name in `config` and waits for the first lookup
   * of each (bounded by the lookup timeout per server). A name that does not
   * resolve is logged and retried; its entry has no backend until it does.
   *
   * @param config The config (its `resolvers`, `resolveInterval` and name entries).
   * @param logger Where failures, recoveries and first answers are logged.
   * @param options Lookup timeout and retry interval.
   * @returns The running set.
   */
  static async start(
    config: Config,
    logger: Logger,
    options: DiscoveredOptions = {},
  ): Promise<DiscoveredBackends> {
    const discovered = new DiscoveredBackends(new Map(), _settingsKey(config), logger, options);
    const watches = _entries(config).map((entry) => discovered.#watch(entry, config));
    for (const watch of watches) discovered.#watches.set(watch.entry.id, watch);
    await Promise.all(watches.map((watch) => watch.discovery.start()));
    for (const watch of watches) {
      watch.live = true;
      discovered.#logAnswer(watch);
    }
    return discovered;
  }

  /** A set with no names: `expand` leaves out every name entry. */
  static empty(logger: Logger): DiscoveredBackends {
    return new DiscoveredBackends(new Map(), "", logger, {});
  }

  /** How many names are followed. */
  get size(): number {
    return this.#watches.size;
  }

  /** Calls `callback` whenever a followed name's set of addresses changes. */
  follow(callback: () => void): void {
    this.#follower = callback;
  }

  /**
   * The frontend with each name entry replaced by one backend per address
   * it has now (none while it never resolved), in the entry's place. Each
   * takes the entry's options; SRV records give weights (and backups for
   * priorities above the lowest). Address entries stay as they are.
   *
   * @param frontend A frontend as configured.
   * @returns A copy whose backends are all addresses.
   */
  expand(frontend: FrontendConfig): FrontendConfig {
    return _expand(frontend, this.#watches);
  }

  /**
   * Starts following the names of `next` that are new (or all of them, when
   * `resolvers` or `resolveInterval` changed), and waits for their first
   * lookup. A name kept keeps its watch, and a replaced one passes its last
   * good set on. Nothing changes until `commit`.
   *
   * @param next The reloaded config.
   * @returns The update to commit or abort.
   */
  async prepare(next: Config): Promise<DiscoveryUpdate> {
    const settings = _settingsKey(next);
    const watches = new Map<string, _Watch>();
    const fresh: _Watch[] = [];
    for (const entry of _entries(next)) {
      const old = this.#watches.get(entry.id);
      if (old && settings === this.#settings) {
        watches.set(entry.id, old);
        continue;
      }
      const watch = this.#watch(entry, next, old);
      watches.set(entry.id, watch);
      fresh.push(watch);
    }
    await Promise.all(fresh.map((watch) => watch.discovery.start()));
    const kept = new Set(watches.values());
    const retired = [...this.#watches.values()].filter((watch) => !kept.has(watch));
    return {
      expand: (frontend) => _expand(frontend, watches),
      commit: async () => {
        this.#watches = watches;
        this.#settings = settings;
        for (const watch of fresh) {
          watch.live = true;
          this.#logAnswer(watch);
        }
        await Promise.all(retired.map((watch) => watch.discovery.stop()));
        // Counted only now: the replaced watches went on looking up until stopped.
        for (const watch of fresh) {
          if (!watch.replaces) continue;
          watch.carried = _sum(watch.replaces.carried, watch.replaces.discovery.counters());
          watch.replaces = undefined;
        }
      },
      abort: async () => {
        await Promise.all(fresh.map((watch) => watch.discovery.stop()));
      },
    };
  }

  /** Each name's last lookup, result, error, addresses and lookup counts, for `/stats` and `/metrics`. */
  stats(): DnsNameStats[] {
    return [...this.#watches.values()].map((watch) => {
      const [status] = watch.discovery.status();
      const counters = watch.discovery.counters();
      const lookups = { ...watch.carried };
      for (const key of Object.keys(counters) as (keyof DiscoveryCounters)[]) {
        lookups[key] += counters[key];
      }
      return {
        name: watch.entry.id,
        lastLookup: status?.lastLookup ?? null,
        result: status?.lastLookup ? (status.ok ? "ok" : "failed") : null,
        error: status?.error ?? null,
        endpoints: watch.endpoints.map((e) => formatHostPort(e)),
        lookups,
      };
    });
  }

  /** Stops every lookup and timer. Safe to call more than once. */
  async stop(): Promise<void> {
    await Promise.all([...this.#watches.values()].map((watch) => watch.discovery.stop()));
  }

  /** Same as {@link DiscoveredBackends.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** A watch of `entry` (not started), taking over `old`'s last good set and counts. */
  #watch(entry: DiscoveryEntry, config: Config, old?: _Watch): _Watch {
    // The callbacks run after start(), once `watch` below exists.
    const discovery = new Discovery({
      entries: [entry],
      interval: config.resolveInterval,
      resolvers: config.resolvers,
      ...(this.#options.timeoutMs === undefined ? {} : { timeoutMs: this.#options.timeoutMs }),
      ...(this.#options.retryInterval === undefined
        ? {}
        : { retryInterval: this.#options.retryInterval }),
      onChange: (_id, endpoints) => {
        watch.endpoints = endpoints;
        if (watch.live) this.#follower();
      },
      onFailure: (id, error) => {
        const kept = watch.endpoints.length;
        this.#logger.log(
          "discovery",
          `${id}: lookup failed, ${
            kept > 0 ? `keeping the last ${kept} address(es)` : "no address yet, still trying"
          }: ${error.reason}: ${error.message}`,
        );
      },
      onRecovery: (id) => this.#logger.log("discovery", `${id}: lookups answer again`),
    });
    const watch: _Watch = {
      entry,
      discovery,
      endpoints: old?.endpoints ?? [],
      carried: _zero(),
      live: false,
      replaces: old,
    };
    return watch;
  }

  #logAnswer(watch: _Watch): void {
    if (watch.endpoints.length === 0) return;
    const addresses = watch.endpoints.map((e) => _endpointText(watch.entry, e)).join(", ");
    this.#logger.log("discovery", `${watch.entry.id} -> ${addresses}`);
  }
}

/**
 * `--check` for names: resolves each one once (through `config.resolvers`)
 * and fails on the first that does not resolve.
 *
 * @param config The validated config.
 * @param options The lookup timeout.
 * @returns How many names there are and how many addresses they gave.
 * @throws {ConfigError} Naming the entry and why its lookup failed.
 */
export async function checkNames(
  config: Config,
  options: DiscoveredOptions = {},
): Promise<{ names: number; addresses: number }> {
  await using discovered = await DiscoveredBackends.start(
    { ...config, resolveInterval: 0 },
    new Logger(() => {}),
    options,
  );
  let addresses = 0;
  for (const name of discovered.stats()) {
    if (name.result !== "ok") {
      throw new ConfigError(`backend ${name.name} does not resolve: ${name.error}`);
    }
    addresses += name.endpoints.length;
  }
  return { names: discovered.size, addresses };
}

/** The names of every frontend's entries, once each (two frontends may share one). */
function _entries(config: Config): DiscoveryEntry[] {
  const entries = new Map<string, DiscoveryEntry>();
  for (const frontend of config.frontends) {
    for (const backend of frontend.backends) {
      if (!isDiscovered(backend)) continue;
      const id = backendEntryId(backend);
      if (entries.has(id)) continue;
      entries.set(
        id,
        backend.srv
          ? { id, kind: "srv", name: backend.hostname }
          : { id, kind: "host", name: backend.hostname, port: backend.port },
      );
    }
  }
  return [...entries.values()];
}

function _expand(frontend: FrontendConfig, watches: ReadonlyMap<string, _Watch>): FrontendConfig {
  const backends: BackendConfig[] = [];
  for (const backend of frontend.backends) {
    if (!isDiscovered(backend)) {
      backends.push(backend);
      continue;
    }
    const watch = watches.get(backendEntryId(backend));
    const { srv: _, ...options } = backend;
    // Over TLS, a host entry's addresses are verified (and sent SNI) for its name, not the address.
    const tlsName = backend.tls && backend.tlsName === undefined && !backend.srv
      ? { tlsName: backend.hostname }
      : {};
    for (const endpoint of watch?.endpoints ?? []) {
      backends.push({
        ...structuredClone(options),
        ...tlsName,
        hostname: endpoint.hostname,
        port: endpoint.port,
        id: `${watch!.entry.id}/${_endpointText(watch!.entry, endpoint)}`,
        weight: endpoint.weight ?? backend.weight,
        backup: backend.backup || (endpoint.backup ?? false),
      });
    }
  }
  return { ...frontend, backends };
}

/** An address as the id shows it: the address for a host name, `ADDRESS:PORT` for SRV. */
function _endpointText(entry: DiscoveryEntry, endpoint: DiscoveredEndpoint): string {
  return entry.kind === "srv" ? formatHostPort(endpoint) : endpoint.hostname;
}

/** What makes two configs' watches interchangeable. */
function _settingsKey(config: Config): string {
  const resolvers: readonly HostPort[] = config.resolvers;
  return JSON.stringify([resolvers.map((r) => formatHostPort(r)), config.resolveInterval]);
}

function _zero(): DiscoveryCounters {
  return { ok: 0, nxdomain: 0, empty: 0, timeout: 0, unreachable: 0, error: 0 };
}

function _sum(a: DiscoveryCounters, b: DiscoveryCounters): DiscoveryCounters {
  const out = { ...a };
  for (const key of Object.keys(b) as (keyof DiscoveryCounters)[]) out[key] += b[key];
  return out;
}
