import { Backend } from "./backend.ts";
import { createStrategy, type Strategy } from "./strategies/mod.ts";
import type { BackendConfig } from "../config/config.ts";

/**
 * The backends of one frontend and the strategy that picks among them.
 * Picking skips backends that are down, drained, at their `maxconn` or
 * already tried for the connection; backups are used only when no normal
 * backend may take it.
 */
export class Pool {
  backends: Backend[];
  strategy: Strategy;
  balance: string;
  /** Reused for every pick: strategies never keep the list. */
  #scratch: Backend[] = [];

  /**
   * @param balance A name from `STRATEGY_NAMES`.
   * @param backends The backends, in the order given.
   * @throws {RangeError} When `balance` is not a strategy name.
   */
  constructor(balance: string, backends: readonly BackendConfig[]) {
    this.balance = balance;
    this.strategy = createStrategy(balance);
    this.backends = backends.map((b) => new Backend(b));
  }

  /**
   * Picks a backend for a new connection: normal backends first, backups only
   * when no normal one is available.
   *
   * @param clientHost The client's address, for hashing strategies.
   * @param tried Backends already tried for this connection, skipped.
   * @returns The backend, or undefined when none may take the connection.
   */
  pick(clientHost: string, tried?: ReadonlySet<Backend>): Backend | undefined {
    let candidates = this.#candidates(false, tried);
    if (candidates.length === 0) candidates = this.#candidates(true, tried);
    return candidates.length === 0 ? undefined : this.strategy.pick(candidates, clientHost);
  }

  /** Whether any backend expects a PROXY header (the proxy then reads the client early). */
  sendsProxy(): boolean {
    for (const b of this.backends) if (b.proxy) return true;
    return false;
  }

  #candidates(backup: boolean, tried?: ReadonlySet<Backend>): Backend[] {
    const out = this.#scratch;
    out.length = 0;
    for (const b of this.backends) {
      if (b.backup === backup && b.available && !tried?.has(b)) out.push(b);
    }
    return out;
  }
}
