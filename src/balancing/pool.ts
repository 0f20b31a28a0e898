import { SniRoutes } from "../tls/sni_match.ts";
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
  pick(
    clientHost: string,
    tried?: ReadonlySet<Backend>,
    among?: ReadonlySet<Backend>,
  ): Backend | undefined {
    let candidates = this.#candidates(false, tried, among);
    if (candidates.length === 0) candidates = this.#candidates(true, tried, among);
    return candidates.length === 0 ? undefined : this.strategy.pick(candidates, clientHost);
  }

  /** Whether any backend has `sni=` names: connections are then routed by their ClientHello. */
  routesBySni(): boolean {
    return this.#sniRoutes() !== undefined;
  }

  /**
   * The backends for a TLS server name: those whose `sni=` names match it
   * (exact first, then the one-label wildcard), else those without names.
   *
   * @returns The route (the matched name, or `default`) and its backends;
   * an empty set when nothing serves it.
   */
  route(serverName: string | null): { route: string; backends: ReadonlySet<Backend> } {
    const routes = this.#sniRoutes();
    const matched = routes?.match(serverName) ?? [];
    if (matched.length > 0) {
      const name = serverName!.toLowerCase().replace(/\.$/, "");
      const exact = matched.some((b) => b.sni!.some((n) => n.toLowerCase() === name));
      const route = exact ? name : `*${name.slice(name.indexOf("."))}`;
      return { route, backends: new Set(matched) };
    }
    return { route: "default", backends: new Set(this.backends.filter((b) => !b.sni)) };
  }

  #routesFor: Backend[] | undefined;
  #routes: SniRoutes<Backend> | undefined;

  /** The name table, rebuilt when the backends change (a reload). */
  #sniRoutes(): SniRoutes<Backend> | undefined {
    if (this.#routesFor !== this.backends) {
      this.#routesFor = this.backends;
      const named = this.backends.filter((b) => b.sni && b.sni.length > 0);
      this.#routes = named.length === 0
        ? undefined
        : new SniRoutes(named.map((b) => ({ names: b.sni!, value: b })));
    }
    return this.#routes;
  }

  /** Whether any backend expects a PROXY header (the proxy then reads the client early). */
  sendsProxy(): boolean {
    if (this.#proxyFor !== this.backends) { // once per set of backends, not per connection
      this.#proxyFor = this.backends;
      this.#sendsProxy = this.backends.some((b) => b.proxy !== undefined);
    }
    return this.#sendsProxy;
  }

  #proxyFor: Backend[] | undefined;
  #sendsProxy = false;

  #candidates(
    backup: boolean,
    tried?: ReadonlySet<Backend>,
    among?: ReadonlySet<Backend>,
  ): Backend[] {
    const out = this.#scratch;
    out.length = 0;
    for (const b of this.backends) {
      if (b.backup === backup && b.available && !tried?.has(b) && (!among || among.has(b))) {
        out.push(b);
      }
    }
    return out;
  }
}
