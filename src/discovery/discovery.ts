/**
 * The owner of DNS discovery: resolves a set of names at start and then on an
 * interval, keeps each one's last good set of endpoints, and says when a set
 * changes.
 *
 * @module
 */
import type { HostPort } from "../common/address.ts";
import { type Clock, realClock, type TimerId } from "../common/clock.ts";
import { _compareAddresses } from "./_address_order.ts";
import {
  checkResolveOptions,
  DiscoveryError,
  type DiscoveryErrorReason,
  expandSrvTargets,
  resolveName,
  type ResolveOptions,
  resolveSrv,
} from "./resolve.ts";

/** One name to follow. */
export interface DiscoveryEntry {
  /** Names the entry in callbacks, logs and `/stats`, e.g. `NAME:PORT` or `srv:_svc._tcp.name`. Unique. */
  id: string;
  /** `host`: A and AAAA records, every address on `port`. `srv`: SRV records, with their ports. */
  kind: "host" | "srv";
  /** The host name, or the SRV service name (`_svc._tcp.name`). */
  name: string;
  /** The backend port: required for `host`, absent for `srv`. */
  port?: number;
}

/** A backend address found by discovery. */
export interface DiscoveredEndpoint {
  /** An IP address. */
  hostname: string;
  port: number;
  /** From SRV: the record's weight, 0 read as 1, at most {@linkcode MAX_SRV_WEIGHT}. Absent for `host`. */
  weight?: number;
  /** From SRV: true when the record's priority is above the lowest present. Absent otherwise. */
  backup?: boolean;
}

/** What `/stats` shows for one entry. */
export interface DiscoveryStatus {
  id: string;
  /** When the last lookup ended (ISO 8601), or null before the first one. */
  lastLookup: string | null;
  /** Whether the last lookup succeeded. */
  ok: boolean;
  /** The last lookup's error (`reason: message`), or null when it succeeded. */
  error: string | null;
  /** Endpoints in the current (last good) set. */
  endpoints: number;
  /** Lookups of this entry so far, by result. */
  lookups: { ok: number; failed: number };
}

/** Lookups so far by outcome, for `/metrics`: `ok` or a {@linkcode DiscoveryErrorReason}. */
export type DiscoveryCounters = Record<"ok" | DiscoveryErrorReason, number>;

/** Options of {@linkcode Discovery}. */
export interface DiscoveryOptions {
  /** The names to follow. */
  entries: readonly DiscoveryEntry[];
  /**
   * Milliseconds between the end of one round of lookups and the start of the
   * next. 0: resolve once at start (an entry that never resolved is still
   * retried every `retryInterval`).
   * @default {10000}
   */
  interval?: number;
  /**
   * With `interval` 0, milliseconds between tries of entries that never resolved.
   * @default {10000}
   */
  retryInterval?: number;
  /**
   * DNS servers, tried in order. Empty: the system's.
   * @default {[]}
   */
  resolvers?: readonly HostPort[];
  /**
   * Milliseconds each server gets to answer one query.
   * @default {2000}
   */
  timeoutMs?: number;
  /**
   * Schedules the rounds (lookup timeouts use the runtime's timers: they bound real I/O).
   * @default {realClock}
   */
  clock?: Clock;
  /** Called when an entry's set of endpoints changes, with the whole new set. Never for an identical answer. */
  onChange?: (id: string, endpoints: readonly DiscoveredEndpoint[]) => void;
  /** Called at the first failed lookup of a streak; the last good set is kept. */
  onFailure?: (id: string, error: DiscoveryError) => void;
  /** Called at the first good lookup after a failure streak. */
  onRecovery?: (id: string) => void;
}

/** The highest weight taken from an SRV record (SRV weights go to 65535). */
export const MAX_SRV_WEIGHT = 1000;

const _DEFAULT_INTERVAL_MS = 10_000;

interface _EntryState {
  entry: DiscoveryEntry;
  endpoints: readonly DiscoveredEndpoint[];
  key: string;
  resolved: boolean;
  lastLookup: string | null;
  error: DiscoveryError | null;
  failing: boolean;
  ok: number;
  failed: number;
}

/**
 * Follows host and SRV names through DNS. Each entry keeps its last good set
 * of endpoints: a failed or empty lookup changes nothing but the status, and
 * is reported once per failure streak.
 *
 * @example
 * ```ts
 * await using discovery = new Discovery({
 *   entries: [{ id: "backend.example:8080", kind: "host", name: "backend.example", port: 8080 }],
 *   resolvers: [{ hostname: "127.0.0.1", port: 5353 }],
 *   onChange: (id, endpoints) => console.log(id, endpoints),
 * });
 * await discovery.start(); // the first round is done
 * discovery.endpoints("backend.example:8080"); // [{ hostname: "10.0.0.5", port: 8080 }, ...]
 * ```
 */
export class Discovery {
  #states: Map<string, _EntryState>;
  #interval: number;
  #retryInterval: number;
  #resolve: ResolveOptions;
  #clock: Clock;
  #onChange: NonNullable<DiscoveryOptions["onChange"]>;
  #onFailure: NonNullable<DiscoveryOptions["onFailure"]>;
  #onRecovery: NonNullable<DiscoveryOptions["onRecovery"]>;
  #counters: DiscoveryCounters = {
    ok: 0,
    nxdomain: 0,
    empty: 0,
    timeout: 0,
    unreachable: 0,
    error: 0,
  };
  #abort = new AbortController();
  #timer: TimerId | undefined;
  #round: Promise<void> | undefined;
  #started = false;
  #stopped = false;

  /**
   * @param options Entries, schedule, servers and callbacks.
   * @throws {TypeError} When an entry's `kind` is neither `host` nor `srv`, or a name is empty.
   * @throws {RangeError} When an id repeats, a port is missing, present for `srv` or out of range, or an interval or timeout is out of range.
   */
  constructor(options: DiscoveryOptions) {
    this.#interval = _milliseconds("interval", options.interval ?? _DEFAULT_INTERVAL_MS, true);
    this.#retryInterval = _milliseconds(
      "retryInterval",
      options.retryInterval ?? _DEFAULT_INTERVAL_MS,
      false,
    );
    this.#resolve = {
      ...checkResolveOptions("start discovery", {
        resolvers: [...(options.resolvers ?? [])],
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      }),
      signal: this.#abort.signal,
    };
    this.#clock = options.clock ?? realClock;
    this.#onChange = options.onChange ?? (() => {});
    this.#onFailure = options.onFailure ?? (() => {});
    this.#onRecovery = options.onRecovery ?? (() => {});
    this.#states = new Map();
    for (const entry of options.entries) {
      _validate(entry);
      if (this.#states.has(entry.id)) {
        throw new RangeError(`Cannot watch "${entry.id}" twice: ids must be unique`);
      }
      this.#states.set(entry.id, {
        entry: { ...entry },
        endpoints: [],
        key: "",
        resolved: false,
        lastLookup: null,
        error: null,
        failing: false,
        ok: 0,
        failed: 0,
      });
    }
  }

  /**
   * Runs the first round of lookups and schedules the next ones.
   *
   * @returns When the first round is done (each entry resolved or failed).
   * @throws {Error} When called twice or after {@linkcode Discovery.stop}.
   */
  async start(): Promise<void> {
    if (this.#started || this.#stopped) {
      throw new Error("Cannot start discovery as it was started or stopped before");
    }
    this.#started = true;
    await this.#runRound();
  }

  /**
   * Looks up every entry now (after a round in flight, if any), then goes on
   * with the schedule from there.
   *
   * @returns When the lookups are done.
   */
  async refresh(): Promise<void> {
    if (this.#stopped) return;
    while (this.#round !== undefined) await this.#round;
    await this.#runRound();
  }

  /**
   * Cancels the schedule and the lookups in flight. No callback runs after
   * this. Safe to call more than once.
   *
   * @returns When the lookups in flight have ended.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort.abort();
    while (this.#round !== undefined) await this.#round;
  }

  /** Same as {@linkcode Discovery.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * The current (last good) set of an entry.
   *
   * @param id The entry's id.
   * @returns The endpoints, empty when the name never resolved.
   * @throws {RangeError} When no entry has this id.
   */
  endpoints(id: string): readonly DiscoveredEndpoint[] {
    const state = this.#states.get(id);
    if (state === undefined) throw new RangeError(`Cannot find discovery entry "${id}"`);
    return state.endpoints;
  }

  /** Per-entry status for `/stats`, in the order of the entries. */
  status(): DiscoveryStatus[] {
    return [...this.#states.values()].map((state) => ({
      id: state.entry.id,
      lastLookup: state.lastLookup,
      ok: state.lastLookup !== null && state.error === null,
      error: state.error === null ? null : `${state.error.reason}: ${state.error.message}`,
      endpoints: state.endpoints.length,
      lookups: { ok: state.ok, failed: state.failed },
    }));
  }

  /** Lookups of all entries so far by outcome, for `/metrics` (a copy). */
  counters(): DiscoveryCounters {
    return { ...this.#counters };
  }

  async #runRound(): Promise<void> {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const round = this.#lookUpAll();
    this.#round = round;
    try {
      await round;
    } finally {
      this.#round = undefined;
      this.#schedule();
    }
  }

  async #lookUpAll(): Promise<void> {
    const due = [...this.#states.values()].filter((state) => this.#interval > 0 || !state.resolved);
    await Promise.all(due.map((state) => this.#lookUp(state)));
  }

  #schedule(): void {
    if (this.#stopped) return;
    const waiting = [...this.#states.values()].some((state) => !state.resolved);
    const delay = this.#interval > 0 ? this.#interval : waiting ? this.#retryInterval : undefined;
    if (delay === undefined) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#runRound().catch(() => {});
    }, delay);
  }

  async #lookUp(state: _EntryState): Promise<void> {
    let endpoints: DiscoveredEndpoint[];
    try {
      endpoints = await _lookUp(state.entry, this.#resolve);
    } catch (error) {
      if (this.#stopped) return;
      this.#failed(state, _asDiscoveryError(state.entry, error));
      return;
    }
    if (this.#stopped) return;
    this.#succeeded(state, endpoints);
  }

  #failed(state: _EntryState, error: DiscoveryError): void {
    state.lastLookup = new Date().toISOString();
    state.error = error;
    state.failed++;
    this.#counters[error.reason]++;
    if (state.failing) return;
    state.failing = true;
    this.#onFailure(state.entry.id, error);
  }

  #succeeded(state: _EntryState, endpoints: DiscoveredEndpoint[]): void {
    state.lastLookup = new Date().toISOString();
    state.error = null;
    state.resolved = true;
    state.ok++;
    this.#counters.ok++;
    if (state.failing) {
      state.failing = false;
      this.#onRecovery(state.entry.id);
    }
    const key = _key(endpoints);
    if (key === state.key) return;
    state.key = key;
    state.endpoints = Object.freeze(endpoints.map((endpoint) => Object.freeze(endpoint)));
    this.#onChange(state.entry.id, state.endpoints);
  }
}

/** One entry's endpoints, sorted: normal before backup, then by address and port. */
async function _lookUp(
  entry: DiscoveryEntry,
  options: ResolveOptions,
): Promise<DiscoveredEndpoint[]> {
  if (entry.kind === "host") {
    const addresses = await resolveName(entry.name, options);
    return addresses.map((hostname) => ({ hostname, port: entry.port! })).sort(_compareEndpoints);
  }
  const records = await expandSrvTargets(await resolveSrv(entry.name, options), options);
  const normal = Math.min(...records.map((record) => record.priority));
  const byAddress = new Map<string, DiscoveredEndpoint>();
  // Records come by priority, then weight (highest first): the first of an address wins.
  for (const record of records) {
    const key = `${record.hostname} ${record.port}`;
    if (byAddress.has(key)) continue;
    byAddress.set(key, {
      hostname: record.hostname,
      port: record.port,
      weight: Math.min(Math.max(record.weight, 1), MAX_SRV_WEIGHT),
      backup: record.priority > normal,
    });
  }
  return [...byAddress.values()].sort(_compareEndpoints);
}

function _compareEndpoints(a: DiscoveredEndpoint, b: DiscoveredEndpoint): number {
  return Number(a.backup ?? false) - Number(b.backup ?? false) ||
    _compareAddresses(a.hostname, b.hostname) || a.port - b.port;
}

/** Identifies a set: equal keys, equal sets (addresses, ports, weights and backup flags). */
function _key(endpoints: readonly DiscoveredEndpoint[]): string {
  return endpoints
    .map((e) => `${e.hostname} ${e.port} ${e.weight ?? ""} ${e.backup ?? ""}`)
    .sort()
    .join("\n");
}

function _asDiscoveryError(entry: DiscoveryEntry, error: unknown): DiscoveryError {
  if (error instanceof DiscoveryError) return error;
  return new DiscoveryError("error", `${entry.name}: ${String(error)}`, { cause: error });
}

function _validate(entry: DiscoveryEntry): void {
  if (entry.kind !== "host" && entry.kind !== "srv") {
    throw new TypeError(
      `Cannot watch "${entry.id}" as "kind" must be "host" or "srv": current value is ${
        JSON.stringify(entry.kind)
      }`,
    );
  }
  if (typeof entry.name !== "string" || entry.name === "") {
    throw new TypeError(`Cannot watch "${entry.id}" as "name" must be a non-empty string`);
  }
  if (entry.kind === "srv") {
    if (entry.port !== undefined) {
      throw new RangeError(
        `Cannot watch "${entry.id}" as "port" must be absent for SRV: ports come from the records`,
      );
    }
    return;
  }
  const port = entry.port;
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(
      `Cannot watch "${entry.id}" as "port" must be 1-65535: current value is ${port}`,
    );
  }
}

function _milliseconds(field: string, value: number, allowZero: boolean): number {
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !allowZero)) {
    throw new RangeError(
      `Cannot start discovery as "${field}" must be ${
        allowZero ? "0 or more" : "more than 0"
      } ms: current value is ${value}`,
    );
  }
  return value;
}
