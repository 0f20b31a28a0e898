/**
 * Hot reload, in one place: re-read the config (SIGHUP, `POST /reload`), plan
 * what changes (pools, frontends added, removed or moved, listeners to open),
 * and apply it to a running {@link Lb} all at once or not at all.
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import { Pool } from "../balancing/pool.ts";
import { formatHostPort, type HostPort } from "../common/address.ts";
import { describe } from "../common/errors.ts";
import { type Config, type FrontendConfig, frontendWithDefaults } from "../config/config.ts";
import type { Flags } from "../config/flags.ts";
import { loadConfig } from "../config/load.ts";
import type { Frontend } from "../connection/frontend.ts";
import { type Lb, type Opened, RESTART_ONLY } from "./lb.ts";
import { CertStore, readCaCerts } from "../tls/certs.ts";

/** What a reload did, for a log line or an admin response. */
export interface ReloadResult {
  /** Whether the new config is now serving; when false the old one still is. */
  ok: boolean;
  /** One line: what changed, or why the new config was rejected. */
  message: string;
}

/**
 * Re-reads the config the way lb started (`flags.config`, then the flags on
 * top), and applies it to `lb`. Never throws and never half-applies: on any
 * problem the old config keeps serving. Logs one `reload:` line either way
 * and records the outcome in `lb.reloads` (`/stats`, `lb_reloads_total`).
 *
 * @param lb The running lb.
 * @param flags The command line lb was started with.
 * @param peers The other threads, which take the config too, all or none.
 * @returns Whether the reload took effect, and a one-line message.
 * @example
 * ```ts
 * Deno.addSignalListener("SIGHUP", () => void reloadFromFlags(lb, flags));
 * ```
 */
export async function reloadFromFlags(
  lb: Lb,
  flags: Flags,
  peers?: ReloadPeers,
): Promise<ReloadResult> {
  let result: ReloadResult;
  try {
    const summary = await reload(lb, await loadConfig(flags), peers);
    result = { ok: true, message: `applied ${flags.config ?? "flags"}: ${summary}` };
  } catch (error) {
    result = { ok: false, message: `rejected, old config kept: ${describe(error)}` };
  }
  lb.logger.log("reload", result.message);
  lb.reloads.record(result);
  return result;
}

/**
 * The other threads of a reload (`--workers`), from one thread's side: the
 * main thread's view is its workers, a worker's view is the main thread.
 * A reload applies only once every thread has planned it (listeners open,
 * certificates read): one that cannot refuses it for all.
 */
export interface ReloadPeers {
  /**
   * Has every other thread plan `next`, with each frontend on `ports` (the
   * ports this thread's plan listens on, by frontend name).
   *
   * @throws {Error} Why one of them could not; every thread then keeps its config.
   */
  prepare(next: Config, ports: ReadonlyMap<string, number>): Promise<void>;
  /** Tells every thread that planned whether to apply its plan (true) or drop it. */
  decide(apply: boolean): void;
  /**
   * The reload has applied here too (`lb.config` is the new one): a thread
   * that started while it was under way, and so never planned it, must not
   * stay on the old config.
   */
  committed?(): void;
}

/**
 * Applies `next` (already validated) while serving. Backends added, removed
 * or re-weighted take effect for new connections; a kept backend (same id)
 * stays the same object, with its counters and health state; a removed one is
 * drained and its connections run to their end. A new frontend starts; a
 * removed one stops accepting and drains; a moved one accepts on its new
 * address before the old one closes. Every new listener opens before anything
 * changes: if one cannot, the others are closed and nothing changes.
 * Restart-only fields (`admin`, `log`, `logFile`, `workers`) are kept.
 * Reloads run one at a time. With `peers`, it applies only if every other
 * thread has planned it too.
 *
 * @param lb The running lb.
 * @param next The new config.
 * @param peers The other threads, which take the config too, all or none.
 * @returns A one-line summary of what changed.
 * @throws {Error} When a new listener cannot open, or lb is shutting down;
 * the running config is untouched then.
 */
export function reload(lb: Lb, next: Config, peers?: ReloadPeers): Promise<string> {
  const copy = structuredClone(next); // the caller's objects are never shared with lb
  return lb.exclusive(async () => {
    if (lb.stopping) throw new Error("lb is shutting down");
    const names = await lb.discovery.prepare(copy);
    let plan: _Plan | undefined;
    try {
      // A shutdown may have begun during the lookups: it stopped the names it knew.
      if (lb.stopping) throw new Error("lb is shutting down");
      plan = _plan(lb, copy, names.expand);
      // Names are looked up here only: the other threads get their addresses.
      const expanded = { ...copy, frontends: copy.frontends.map(names.expand) };
      await peers?.prepare(expanded, _ports(lb, plan, copy));
      if (lb.stopping) throw new Error("lb is shutting down");
    } catch (error) {
      peers?.decide(false);
      for (const opened of plan?.listeners.values() ?? []) opened.listener.close();
      await names.abort();
      throw error;
    }
    peers?.decide(true);
    await names.commit();
    const summary = await _apply(lb, plan, copy);
    peers?.committed?.();
    return summary;
  });
}

/**
 * `lb`'s config with each name entry replaced by the addresses it has now:
 * what another thread runs (`--workers`), which looks up no name itself.
 */
export function expandedConfig(lb: Lb): Config {
  const config = structuredClone(lb.config) as Config;
  return { ...config, frontends: config.frontends.map((f) => lb.discovery.expand(f)) };
}

/**
 * Takes the pools of `next` (an {@link expandedConfig} from the main thread,
 * whose names changed addresses) the way a DNS change applies: kept backends
 * stay the same objects, removed ones drain.
 */
export function followPools(lb: Lb, next: Config): Promise<void> {
  return lb.exclusive(() => {
    if (lb.stopping) return Promise.resolve();
    for (const frontend of lb.frontends) {
      const config = next.frontends.find((f) => f.name === frontend.name);
      if (!config) continue;
      // New addresses wait for the main thread's health (a `sync` after this) when it checks.
      const plan = planPool(frontend.pool, config, { join: lb.health.config.interval > 0 });
      if (plan.changes.length === 0) continue;
      plan.apply();
      frontend.pool = plan.pool;
    }
    return Promise.resolve();
  });
}

/** The port each frontend of `next` listens on once `plan` applies. */
function _ports(lb: Lb, plan: _Plan, next: Config): Map<string, number> {
  const current = new Map(lb.frontends.map((f) => [f.name, f.listener.addr.port]));
  return new Map(next.frontends.map((f) => [
    f.name,
    plan.listeners.get(f.name)?.listener.addr.port ?? current.get(f.name) ?? f.listen.port,
  ]));
}

/**
 * Follows a changed DNS answer (see `DiscoveredBackends`): re-plans every
 * frontend's pool from its configured entries and the names' current
 * addresses, with the rules of a reload. A new address joins once a health
 * check passes (at once with checks off), a removed one is drained (its
 * connections run to their end), and a kept one stays the same backend,
 * with its health state and counters. Logs one `discovery:` line per pool
 * that changed.
 *
 * @param lb The running lb.
 * @returns When the pools have changed.
 */
export function followDiscovery(lb: Lb): Promise<void> {
  return lb.exclusive(() => {
    if (lb.stopping) return Promise.resolve();
    const join = lb.health.config.interval > 0;
    for (const frontend of lb.frontends) {
      const config = lb.config.frontends.find((f) => f.name === frontend.name);
      if (!config) continue;
      const plan = planPool(frontend.pool, lb.discovery.expand(config), { join });
      if (plan.changes.length === 0) continue;
      plan.apply();
      frontend.pool = plan.pool;
      for (const backend of plan.joined) lb.checker.checkSoon(backend);
      lb.logger.log("discovery", `${frontend.name}: ${plan.changes.join(", ")}`);
    }
    return Promise.resolve();
  });
}

/** What a reload will do, with its new listeners already open. */
interface _Plan {
  pools: Map<string, PoolPlan>;
  listeners: Map<string, Opened>;
  /** TLS frontends whose listener is renewed in place (same address, certificates re-read). */
  renewed: Set<string>;
  /** `--tls-ca`, re-read. */
  caCerts: string[];
}

/** Plans every frontend's pool and opens every listener that is new or moved: all or none. */
function _plan(
  lb: Lb,
  next: Config,
  expand: (frontend: FrontendConfig) => FrontendConfig,
): _Plan {
  const join = next.health.interval > 0;
  const current = new Map(lb.frontends.map((f) => [f.name, f]));
  const configured = new Map(lb.config.frontends.map((f) => [f.name, f]));
  const pools = new Map<string, PoolPlan>();
  const listeners = new Map<string, Opened>();
  const renewed = new Set<string>();
  let at = "";
  let caCerts: string[] = [];
  try {
    caCerts = readCaCerts(next.tlsCa);
    for (const frontend of next.frontends) {
      at = `frontend ${frontend.name}`;
      const pool = planPool(current.get(frontend.name)?.pool, expand(frontend), { join });
      pools.set(frontend.name, pool);
      const was = configured.get(frontend.name);
      if (!was || !sameListen(was.listen, frontend.listen)) {
        at = `frontend ${frontend.name} cannot listen on ${formatHostPort(frontend.listen)}`;
        listeners.set(frontend.name, lb.listen(frontend));
      } else if (!was.tls !== !frontend.tls) {
        throw new Error(
          `turning TLS ${frontend.tls ? "on" : "off"} on the same address needs a restart`,
        );
      } else if (frontend.tls && _renew(current.get(frontend.name)!, frontend)) {
        // New certificates or ALPN: a new listener on the same port (TLS
        // listeners share it), since Deno keeps what it resolved per listener.
        const port = current.get(frontend.name)!.listener.addr.port;
        listeners.set(
          frontend.name,
          lb.listen({ ...frontend, listen: { ...frontend.listen, port } }, true),
        );
        renewed.add(frontend.name);
      }
    }
  } catch (error) {
    for (const opened of listeners.values()) opened.listener.close();
    throw new Error(`${at}: ${describe(error)}`, { cause: error });
  }
  return { pools, listeners, renewed, caCerts };
}

/** Switches `lb` to the plan. Nothing here can fail before the switch is complete. */
async function _apply(lb: Lb, plan: _Plan, next: Config): Promise<string> {
  const current = new Map(lb.frontends.map((f) => [f.name, f]));
  const changes: string[] = [];
  const waits: Promise<void>[] = [];
  const frontends: Frontend[] = [];
  for (const config of next.frontends) {
    const pool = plan.pools.get(config.name)!;
    const listener = plan.listeners.get(config.name);
    pool.apply();
    let frontend = current.get(config.name);
    if (frontend) {
      frontend.pool = pool.pool;
      frontend.configureFrontend(frontendWithDefaults(config, next));

      changes.push(...pool.changes.map((c) => `${config.name} ${c}`));
      if (listener && plan.renewed.has(config.name)) {
        waits.push(frontend.relisten(listener)); // same address, certificates re-read
        changes.push(`${config.name} certificates renewed`);
      } else if (listener) {
        const from = frontend.addr;
        waits.push(frontend.relisten(listener));
        lb.logger.log("lb", `${frontend.describe()} (moved from ${from})`);
        changes.push(`${config.name} moved ${from}->${frontend.addr}`);
      }
    } else {
      frontend = lb.createFrontend(frontendWithDefaults(config, next), listener!);
      frontend.pool = pool.pool;
      frontend.start();
      lb.logger.log("lb", frontend.describe());
      changes.push(`+frontend ${config.name}`);
    }
    frontends.push(frontend);
  }
  const retired: Frontend[] = [];
  for (const [name, frontend] of current) {
    if (frontends.includes(frontend)) continue;
    for (const backend of frontend.pool.backends) backend.drain();
    waits.push(frontend.stop());
    retired.push(frontend);
    changes.push(`-frontend ${name} (${frontend.open} connection(s) draining)`);
  }
  const restart = RESTART_ONLY.filter((key) =>
    JSON.stringify(lb.config[key]) !== JSON.stringify(next[key])
  );
  if (restart.length > 0) changes.push(`${restart.join(", ")} kept (need a restart)`);
  await lb.commit(next, frontends, retired, plan.caCerts);
  for (const pool of plan.pools.values()) {
    for (const backend of pool.joined) lb.checker.checkSoon(backend);
  }
  await Promise.all(waits);
  lb.pruneRetired();
  return changes.length === 0 ? "no changes" : changes.join(", ");
}

/** A frontend's next pool, built but not yet in use; see {@link planPool}. */
export interface PoolPlan {
  /** The pool to swap in after `apply()`. */
  pool: Pool;
  /** What changes, e.g. `+127.0.0.1:8104`, `-127.0.0.1:8101`, `127.0.0.1:8102 weight 1->3`. */
  changes: string[];
  /**
   * Makes the change, synchronously and without failing: backends kept (same
   * id) take the new options and stay the same objects (counters, health
   * state) in the new pool; removed ones are drained; with `join`, `joined`
   * ones are down until a check passes.
   */
  apply(): void;
  /** Addresses found through DNS that are new to the pool: check them soon after `apply()`. */
  joined: Backend[];
}

/** Options of {@link planPool}. */
export interface PlanOptions {
  /**
   * New backends found through DNS (`BackendConfig.id` set) start down and
   * join once a health check passes; give it when checks are on.
   * @default false
   */
  join?: boolean;
}

/**
 * Plans the pool a frontend gets from `config`, reusing `old`'s backends that
 * have the same id and, when the strategy name is unchanged, its strategy
 * (whose state is keyed by backend). Changes nothing until `apply()`.
 *
 * @throws {RangeError} When `config.balance` is not a strategy name.
 */
export function planPool(
  old: Pool | undefined,
  config: FrontendConfig,
  options: PlanOptions = {},
): PoolPlan {
  const pool = new Pool(config.balance, config.backends);
  const discovered = new Set(config.backends.flatMap((b) => b.id === undefined ? [] : [b.id]));
  const changes: string[] = [];
  if (old && old.balance !== config.balance) {
    changes.push(`balance ${old.balance}->${pool.balance}`);
  }
  if (old && old.balance === config.balance) pool.strategy = old.strategy;
  const before = new Map((old?.backends ?? []).map((b) => [b.id, b]));
  const after = new Set(pool.backends.map((b) => b.id));
  const removed = (old?.backends ?? []).filter((b) => !after.has(b.id));
  for (const fresh of pool.backends) {
    const kept = before.get(fresh.id);
    if (!kept) changes.push(`+${fresh.id}`);
    else changes.push(..._optionChanges(kept, fresh));
  }
  for (const gone of removed) changes.push(`-${gone.id}`);
  const joined = pool.backends.filter((b) => !before.has(b.id) && discovered.has(b.id));
  return {
    pool,
    changes,
    joined,
    apply() {
      for (const backend of options.join ? joined : []) backend.health.join();
      pool.backends = pool.backends.map((fresh) => {
        const kept = before.get(fresh.id);
        if (!kept) return fresh;
        kept.configure(fresh);
        return kept;
      });
      for (const gone of removed) gone.drain();
    },
  };
}

function _optionChanges(kept: Backend, fresh: Backend): string[] {
  const out: string[] = [];
  if (kept.weight !== fresh.weight) out.push(`${kept.id} weight ${kept.weight}->${fresh.weight}`);
  if (kept.backup !== fresh.backup) out.push(`${kept.id} backup ${kept.backup}->${fresh.backup}`);
  if (JSON.stringify(kept.sni) !== JSON.stringify(fresh.sni)) {
    out.push(`${kept.id} sni ${kept.sni?.join("|") ?? "-"}->${fresh.sni?.join("|") ?? "-"}`);
  }
  if (kept.proxy !== fresh.proxy) {
    out.push(`${kept.id} proxy ${kept.proxy ?? "off"}->${fresh.proxy ?? "off"}`);
  }
  if (kept.maxConn !== fresh.maxConn) {
    out.push(`${kept.id} maxconn ${kept.maxConn}->${fresh.maxConn}`);
  }
  return out;
}

/**
 * Whether a TLS frontend needs a new listener: its certificate or key files
 * changed (re-read and compared on every reload) or its ALPN list did.
 * Renewing only then spares the connections queued on the old listener.
 *
 * @throws {CertError} When a file cannot be read, parsed or paired.
 */
function _renew(frontend: Frontend, next: FrontendConfig): boolean {
  const store = CertStore.load(next.tls!.certs);
  const tls = frontend.termination;
  return !tls || !tls.store.same(store) ||
    JSON.stringify(tls.alpn) !== JSON.stringify(next.tls!.alpn);
}

/** Whether two listen addresses are the same as configured (port 0 equals port 0). */
export function sameListen(a: HostPort, b: HostPort): boolean {
  return a.hostname === b.hostname && a.port === b.port;
}
