/**
 * Hot reload: re-reads the config file (SIGHUP, `POST /reload`) and hands the
 * result to {@link Lb.reload}; plus the pool bookkeeping a reload needs.
 * @module
 */
import type { HostPort } from "../common/address.ts";
import type { Backend } from "../balancing/backend.ts";
import { type Config, defaultConfig, type FrontendConfig } from "../config/config.ts";
import { loadConfigFile } from "../config/file.ts";
import { applyFlags, type Flags, validateConfig } from "../config/flags.ts";
import type { Lb } from "./lb.ts";
import { Pool } from "../balancing/pool.ts";
import { describe } from "../connection/proxy.ts";

/** What a reload did, for a log line or an admin response. */
export interface ReloadResult {
  /** Whether the new config is now serving; when false the old one still is. */
  ok: boolean;
  /** One line: what changed, or why the new config was rejected. */
  message: string;
}

/**
 * Re-reads `path`, applies `flags` on top (flags override the file, as at
 * start), validates, and applies the result to `lb`. Never throws and never
 * half-applies: on any problem the old config keeps serving and one line is
 * logged.
 *
 * @param lb The running lb.
 * @param path The config file; undefined re-applies the flags alone.
 * @param flags The command line lb was started with.
 * @returns Whether the reload took effect, and a one-line message.
 * @example
 * ```ts
 * Deno.addSignalListener("SIGHUP", () => void reloadFromFile(lb, flags.config, flags));
 * ```
 */
export async function reloadFromFile(
  lb: Lb,
  path: string | undefined,
  flags: Flags,
): Promise<ReloadResult> {
  let config: Config;
  try {
    const base = path === undefined ? defaultConfig() : await loadConfigFile(path);
    config = validateConfig(applyFlags(base, flags));
  } catch (error) {
    return _rejected(lb, error);
  }
  try {
    const summary = await lb.reload(config);
    const message = `applied ${path ?? "flags"}: ${summary}`;
    lb.logger.log("reload", message);
    return { ok: true, message };
  } catch (error) {
    return _rejected(lb, error);
  }
}

function _rejected(lb: Lb, error: unknown): ReloadResult {
  const message = `rejected, old config kept: ${describe(error)}`;
  lb.logger.log("reload", message);
  return { ok: false, message };
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
   * state) in the new pool; removed ones are marked drained.
   */
  apply(): void;
}

/**
 * Plans the pool a frontend gets from `config`, reusing `old`'s backends that
 * have the same id and, when the strategy name is unchanged, its strategy
 * (whose state is keyed by backend). Changes nothing until `apply()`.
 *
 * @throws {RangeError} When `config.balance` is not a strategy name.
 */
export function planPool(old: Pool | undefined, config: FrontendConfig): PoolPlan {
  const pool = new Pool(config.balance, config.backends);
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
  return {
    pool,
    changes,
    apply() {
      pool.backends = pool.backends.map((fresh) => {
        const kept = before.get(fresh.id);
        if (!kept) return fresh;
        kept.weight = fresh.weight;
        kept.backup = fresh.backup;
        kept.maxConn = fresh.maxConn;
        return kept;
      });
      for (const gone of removed) gone.drained = true;
    },
  };
}

function _optionChanges(kept: Backend, fresh: Backend): string[] {
  const out: string[] = [];
  if (kept.weight !== fresh.weight) out.push(`${kept.id} weight ${kept.weight}->${fresh.weight}`);
  if (kept.backup !== fresh.backup) out.push(`${kept.id} backup ${kept.backup}->${fresh.backup}`);
  if (kept.maxConn !== fresh.maxConn) {
    out.push(`${kept.id} maxconn ${kept.maxConn}->${fresh.maxConn}`);
  }
  return out;
}

/** Whether two listen addresses are the same as configured (port 0 equals port 0). */
export function sameListen(a: HostPort, b: HostPort): boolean {
  return a.hostname === b.hostname && a.port === b.port;
}
