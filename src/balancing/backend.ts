import { formatHostPort, type HostPort } from "../common/address.ts";
import type { BackendConfig, ProxyVersion } from "../config/config.ts";
import { BackendHealth } from "./backend_health.ts";
import { Cell } from "../common/shared_counters.ts";

/**
 * A backend server at run time. Each piece of its state has one owner:
 * options change through {@link Backend.configure} (start, reload), health
 * through {@link BackendHealth} (only `Health` and `HealthChecker` in
 * health.ts report to it), the operator's drain through `drain`/`enable`, and the counters through
 * the connection methods (`picked` … `closed`), called by the proxy.
 *
 * Bytes are named from the client's side, the same everywhere (`/metrics`,
 * `/stats`, the stats page, the access log): `bytesIn` came from clients and
 * went to the backend, `bytesOut` came from the backend and went to clients.
 */
export class Backend {
  /**
   * `host:port`, unique within a pool; used in logs, metrics and admin URLs. An
   * address found through DNS goes by `NAME:PORT/ADDRESS` (`BackendConfig.id`).
   */
  readonly id: string;
  readonly addr: HostPort;
  /** Up or down, with its rise/fall bookkeeping. */
  readonly health = new BackendHealth();
  #weight = 1;
  #backup = false;
  #maxConn = 0;
  #proxy: ProxyVersion | undefined;
  #sni: readonly string[] | undefined;
  #tls: { name: string | undefined; verify: boolean } | undefined;
  #drained = false;
  /** Open connections over every thread (see `share`). */
  #active = Cell.local();
  #shared = false;
  #total = 0;
  #connectFailures = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  constructor(config: BackendConfig) {
    this.addr = { hostname: config.hostname, port: config.port };
    this.id = config.id ?? formatHostPort(this.addr);
    this.configure(config);
  }

  /** Takes the options of `config` (a reload of the same id): weight, backup, maxconn, proxy. */
  configure(
    config: Pick<BackendConfig, "weight" | "backup" | "maxConn"> & {
      proxy?: ProxyVersion | undefined;
      sni?: readonly string[] | undefined;
      tls?: boolean | undefined;
      tlsName?: string | undefined;
      tlsVerify?: boolean | undefined;
    },
  ): void {
    this.#weight = config.weight;
    this.#backup = config.backup;
    this.#maxConn = config.maxConn;
    this.#proxy = config.proxy;
    this.#sni = config.sni;
    this.#tls = config.tls ? { name: config.tlsName, verify: config.tlsVerify ?? true } : undefined;
  }

  /** Whether lb connects to this backend over TLS (`-p ...,tls`). */
  get tls(): boolean {
    return this.#tls !== undefined;
  }

  /** The name sent and verified over TLS instead of the host (`tls-name=`). */
  get tlsName(): string | undefined {
    return this.#tls?.name;
  }

  /** Whether the backend's host name is verified over TLS (off only with `tls-verify=off`). */
  get tlsVerify(): boolean {
    return this.#tls?.verify ?? true;
  }

  /** TLS server names this backend serves (`sni=`); undefined serves connections no name matches. */
  get sni(): readonly string[] | undefined {
    return this.#sni;
  }

  /** The PROXY protocol header version sent before a client's bytes; undefined sends none. */
  get proxy(): ProxyVersion | undefined {
    return this.#proxy;
  }

  /** Relative share of new connections. */
  get weight(): number {
    return this.#weight;
  }

  /** Used only when no normal backend is available. */
  get backup(): boolean {
    return this.#backup;
  }

  /** Most connections at once; 0 is no limit. */
  get maxConn(): number {
    return this.#maxConn;
  }

  /** Whether it takes no new connections (drained by an operator, or removed by a reload). */
  get drained(): boolean {
    return this.#drained;
  }

  /** Stops new connections; open ones run to their end. */
  drain(): void {
    this.#drained = true;
  }

  /** Takes new connections again after `drain`. */
  enable(): void {
    this.#drained = false;
  }

  /** Whether health checks and connects see it as up. */
  get healthy(): boolean {
    return this.health.up;
  }

  /** Whether a new connection may go here now. */
  get available(): boolean {
    return this.health.up && !this.#drained &&
      (this.#maxConn === 0 || this.#active.value < this.#maxConn);
  }

  /**
   * Connections open to this backend now, counting connects in flight, over
   * every thread once {@link Backend.share}d.
   */
  get active(): number {
    return this.#active.value;
  }

  /**
   * Counts open connections in `cell`, shared with the other threads' backend
   * of the same frontend and id (`--workers`), so `maxconn` and the
   * strategies that compare open connections see them all. Once, before the
   * first connection; later calls change nothing.
   */
  share(cell: Cell): void {
    if (this.#shared || this.#active.value !== 0) return;
    this.#active = cell;
    this.#shared = true;
  }

  /** Connections ever opened to this backend. */
  get total(): number {
    return this.#total;
  }

  /** Connects that failed or timed out. */
  get connectFailures(): number {
    return this.#connectFailures;
  }

  /** Bytes from clients sent here, by finished connections. */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** Bytes from here sent to clients, by finished connections. */
  get bytesOut(): number {
    return this.#bytesOut;
  }

  /**
   * Counts a connection in from the moment it is picked, not connected: a
   * burst of clients then sees the connects in flight (maxconn holds,
   * leastconn spreads them).
   *
   * @returns false, counting nothing, when the backend is at its `maxconn`
   * (another thread took the last place since the pick).
   */
  picked(): boolean {
    return this.#active.tryAdd(this.#maxConn);
  }

  /** A connect after `picked` failed; `counts` is false when it was cancelled, not the backend's fault. */
  connectFailed(counts = true): void {
    this.#active.sub();
    if (counts) this.#connectFailures++;
  }

  /** A connect after `picked` succeeded. */
  connected(): void {
    this.#total++;
  }

  /** A connection after `connected` ended, having moved these bytes. */
  closed(bytesIn: number, bytesOut: number): void {
    this.#active.sub();
    this.#bytesIn += bytesIn;
    this.#bytesOut += bytesOut;
  }
}
