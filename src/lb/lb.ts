import type { Config } from "../config/config.ts";
import { Gate } from "../connection/gate.ts";
import { Frontend, type FrontendContext, type SessionHook } from "../connection/frontend.ts";
import { type FrontListener, listen } from "../connection/listen.ts";
import { Termination } from "../tls/termination.ts";
import { readCaCerts } from "../tls/certs.ts";
import type { Session } from "../connection/session.ts";
import { Health, HealthChecker } from "../balancing/health.ts";
import type { Backend } from "../balancing/backend.ts";
import { type FrontendConfig, frontendWithDefaults } from "../config/config.ts";
import { type RemoteSources, SourceLimits } from "../connection/admission.ts";
import type { Logger } from "../observability/log.ts";
import { DiscoveredBackends } from "./discovered.ts";
import type { SharedCounters } from "../common/shared_counters.ts";

/** A frontend's listener, opened and not yet accepting, and its TLS termination if any. */
export interface Opened {
  listener: FrontListener;
  tls: Termination | undefined;
}

/** Config fields a reload leaves as they are: they need a restart. */
export const RESTART_ONLY = [
  "admin",
  "adminTokenFile",
  "adminInsecure",
  "log",
  "logFile",
  "workers",
  "sourceTableSize",
  "sourceIPv6Prefix",
] as const;

/** With `--workers` above 1 every thread listens on the same ports (SO_REUSEPORT, `--unstable-net`). */
function _reuse(config: Config): boolean {
  return config.workers > 1;
}

/**
 * Opens `config`'s listener, terminating TLS where it has certificates;
 * `joins`: the port is already this lb's (see `listen`).
 */
function _open(config: FrontendConfig, reusePort: boolean, joins: boolean): Opened {
  const tls = config.tls ? new Termination(config.tls) : undefined;
  return { listener: listen(config.listen, reusePort, tls, joins), tls };
}

/** Options of {@link Lb.open}. */
export interface LbOptions {
  /**
   * The names the config's backends follow, already started: the pools get
   * their current addresses, and the lb stops them at shutdown.
   * @default none: name entries have no backend
   */
  discovery?: DiscoveredBackends;
  /**
   * Health is decided elsewhere (a Worker follows the main thread): no
   * active checks here, and each connect's result goes to this instead.
   * @default none: this lb checks and decides itself
   */
  followHealth?: (backend: Backend, ok: boolean, why: string | undefined) => void;
  /**
   * A worker: the ports it listens on are the main thread's (SO_REUSEPORT),
   * not checked for being free first.
   * @default false
   */
  joinsPorts?: boolean;
  /**
   * Counters shared with the other threads (`--workers`): the `--max-conns`
   * gate and each backend's open connections are then one count over all.
   * @default none: this lb counts alone
   */
  counters?: SharedCounters;
  /**
   * The per-source table is another thread's (a worker asks the main
   * thread's), so that a source's limits hold over every thread.
   * @default this lb's own table
   */
  remoteSources?: RemoteSources;
}

/** How the latest reload ended, as `/stats` shows it. */
export interface ReloadOutcome {
  /** Whether the new config took effect; when false the old one kept serving. */
  ok: boolean;
  /** The reload's one line: what changed, or why it was rejected. */
  message: string;
  /** When it finished, ISO 8601. */
  time: string;
}

/**
 * What reloads (SIGHUP, `POST /reload`) came to: a count per result and the
 * latest outcome. Kept by {@link Lb}, written only by `reloadFromFlags`
 * through {@link ReloadStats.record}, read by metrics (`lb_reloads_total`,
 * `/stats` `reloads`).
 *
 * @example
 * ```ts
 * const reloads = new ReloadStats();
 * reloads.record({ ok: false, message: "rejected, old config kept: ..." });
 * reloads.rejected; // 1
 * ```
 */
export class ReloadStats {
  #applied = 0;
  #rejected = 0;
  #last: ReloadOutcome | null = null;

  /** Reloads that took effect. */
  get applied(): number {
    return this.#applied;
  }

  /** Reloads refused: the config serving before kept serving. */
  get rejected(): number {
    return this.#rejected;
  }

  /** The latest reload's outcome; null before the first. */
  get last(): Readonly<ReloadOutcome> | null {
    return this.#last;
  }

  /**
   * Counts one finished reload.
   *
   * @param result Whether it applied, and its one-line message.
   * @param now When it finished, ms since the epoch. @default Date.now()
   */
  record(result: { ok: boolean; message: string }, now: number = Date.now()): void {
    if (result.ok) this.#applied++;
    else this.#rejected++;
    this.#last = { ok: result.ok, message: result.message, time: new Date(now).toISOString() };
  }
}

/**
 * A running load balancer: the one owner of its frontends (accepting and
 * retired), the connection gate, health and its checker, the idle sweep and
 * the config serving now. `reload.ts` plans a reload and hands the result to
 * {@link Lb.commit}; operations that change frontends run one at a time
 * through {@link Lb.exclusive}.
 */
export class Lb implements AsyncDisposable {
  /** The frontends accepting now; replaced in place by `commit`. */
  readonly frontends: Frontend[];
  readonly gate: Gate;
  readonly health: Health;
  /** Active health checks over every frontend's current pool. */
  readonly checker: HealthChecker;
  readonly started = Date.now();
  readonly logger: Logger;
  /** What reloads came to; `reloadFromFlags` records each one here. */
  readonly reloads = new ReloadStats();
  /** Backends given by name: their last lookups and addresses (`expand` gives a pool's backends). */
  readonly discovery: DiscoveredBackends;
  #config: Config;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #ctx: FrontendContext;
  /** Frontends a reload removed: no longer accepting, their connections draining. */
  #retired = new Set<Frontend>();
  #queue: Promise<unknown> = Promise.resolve();
  #stopping = false;
  /** Health comes from elsewhere (`LbOptions.followHealth`): never start checks here. */
  #followsHealth = false;
  /** A worker: every port it listens on is the main thread's already. */
  #joinsPorts = false;
  #draining = false;

  private constructor(
    config: Config,
    frontends: Frontend[],
    ctx: FrontendContext,
    health: Health,
    discovery: DiscoveredBackends,
  ) {
    this.#config = config;
    this.discovery = discovery;
    this.#ctx = ctx;
    this.frontends = frontends;
    this.gate = ctx.gate;
    this.health = health;
    this.logger = ctx.logger;
    this.checker = new HealthChecker(() => this.#backends(), health);
  }

  /**
   * Opens every listener (all or none) without accepting yet: `start` begins.
   *
   * @throws What `Deno.listen` throws (address in use, permission denied);
   * listeners already opened are closed first.
   */
  static open(
    config: Config,
    logger: Logger,
    onEnd: SessionHook = () => {},
    options: LbOptions = {},
  ): Lb {
    const discovery = options.discovery ?? DiscoveredBackends.empty(logger);
    const health = new Health(config.health, logger);
    const ctx: FrontendContext = {
      gate: new Gate(config.maxConns, options.counters?.cell("gate")),
      counters: options.counters,
      sources: new SourceLimits(config, options.remoteSources),
      logger,
      onEnd,
      connectTimeout: config.connectTimeout,
      sniTimeout: config.sniTimeout,
      caCerts: readCaCerts(config.tlsCa),
      retries: config.retries,
      onConnect: options.followHealth ?? ((backend, ok, why) => health.report(backend, ok, why)),
    };
    const frontends: Frontend[] = [];
    try {
      for (const frontend of config.frontends) {
        const { listener, tls } = _open(frontend, _reuse(config), options.joinsPorts ?? false);
        const expanded = discovery.expand(frontend); // names become their current addresses
        frontends.push(
          new Frontend(frontendWithDefaults(expanded, config), listener, ctx, tls),
        );
      }
    } catch (error) {
      for (const frontend of frontends) frontend.listener.close();
      throw error;
    }
    const lb = new Lb(structuredClone(config), frontends, ctx, health, discovery);
    lb.#followsHealth = options.followHealth !== undefined;
    lb.#joinsPorts = options.joinsPorts ?? false;
    return lb;
  }

  /** {@link Lb.open}, then {@link Lb.start}. */
  static start(
    config: Config,
    logger: Logger,
    onEnd: SessionHook = () => {},
    options: LbOptions = {},
  ): Lb {
    const lb = Lb.open(config, logger, onEnd, options);
    lb.start();
    return lb;
  }

  /** Starts accepting on every frontend and the health checks; logs each listener. */
  start(): void {
    for (const frontend of this.frontends) {
      frontend.start();
      this.logger.log("lb", frontend.describe());
    }
    if (!this.#followsHealth) this.checker.start();
    this.#startIdleSweep(this.#config.idleTimeout);
  }

  /** The config serving now (a copy is kept: changing the caller's object changes nothing). */
  get config(): Readonly<Config> {
    return this.#config;
  }

  /** Whether `shutdown` has begun. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * Whether `shutdown` has closed every listener for good and now waits for
   * the open connections (SIGINT/SIGTERM): shown in `/stats` and `lb_draining`.
   */
  get draining(): boolean {
    return this.#draining;
  }

  /** Connections open now over all frontends, retired ones included. */
  get open(): number {
    let open = 0;
    for (const frontend of this.#allFrontends()) open += frontend.sessions.size;
    return open;
  }

  /** Every open connection, retired frontends' included. */
  *sessions(): Iterable<Session> {
    for (const frontend of this.#allFrontends()) yield* frontend.sessions;
  }

  /** Runs `fn` after every operation queued before it (reloads, shutdown), one at a time. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  /** A new frontend on `listener`, sharing this lb's gate, health and settings; not started. */
  createFrontend(config: FrontendConfig, opened: Opened): Frontend {
    return new Frontend(config, opened.listener, this.#ctx, opened.tls);
  }

  /** Per-source limits over every frontend (`--max-conns-per-source`, `--conn-rate-per-source`). */
  get sources(): SourceLimits {
    return this.#ctx.sources!;
  }

  /**
   * Opens a listener the way this lb's frontends listen (SO_REUSEPORT with
   * workers); `renew`: a TLS frontend's new listener on its own port.
   */
  listen(config: FrontendConfig, renew = false): Opened {
    return _open(config, renew || _reuse(this.#config), renew || this.#joinsPorts);
  }

  /**
   * Switches to a reloaded config in one step: `frontends` accept from now
   * on, `retired` (already stopped) drain, and the gate, connect settings,
   * idle sweep and health take `next`'s values. Restart-only fields keep
   * their running values. Called by `reload.ts` inside {@link Lb.exclusive}.
   */
  async commit(
    next: Config,
    frontends: Frontend[],
    retired: Frontend[],
    caCerts: readonly string[],
  ): Promise<void> {
    const settings = {
      connectTimeout: next.connectTimeout,
      sniTimeout: next.sniTimeout,
      caCerts,
      retries: next.retries,
    };
    this.#ctx = { ...this.#ctx, ...settings };
    for (const frontend of frontends) frontend.configure(settings);
    this.frontends.splice(0, this.frontends.length, ...frontends);
    for (const frontend of retired) this.#retired.add(frontend);
    this.gate.limit = next.maxConns;
    this.gate.wakeAll();
    this.sources.configure(next);
    if (next.idleTimeout !== this.#config.idleTimeout) this.#startIdleSweep(next.idleTimeout);
    if (next.health.interval <= 0 && this.checker.running) await this.checker.stop();
    this.health.configure(next.health, this.#backends());
    if (
      next.health.interval > 0 && !this.checker.running && !this.#stopping && !this.#followsHealth
    ) {
      this.checker.start();
    }
    const kept = Object.fromEntries(RESTART_ONLY.map((key) => [key, this.#config[key]]));
    this.#config = { ...structuredClone(next), ...kept };
  }

  /** Forgets retired frontends whose connections have all ended. */
  pruneRetired(): void {
    for (const frontend of this.#retired) {
      if (frontend.sessions.size === 0) this.#retired.delete(frontend);
    }
  }

  /**
   * Stops accepting at once, waits up to `drainMs` for open connections to
   * finish, then closes the rest. A reload in flight finishes first.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.#stopping = true;
    const stopped = Promise.all([
      ...this.frontends.map((f) => f.stop()),
      this.checker.stop(),
      this.discovery.stop(),
    ]);
    await this.#queue; // a reload in flight has committed: its listeners are closed too
    await Promise.all([stopped, ...this.frontends.map((f) => f.stop()), this.discovery.stop()]);
    this.gate.wakeAll();
    this.#draining = true;
    if (this.open > 0) {
      this.logger.log("lb", `draining ${this.open} open connection(s), up to ${drainMs}ms`);
    }
    await this.#allClosed(drainMs, 50);
    for (const session of this.sessions()) session.abort("drained");
    while (this.open > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    clearInterval(this.#idleTimer);
  }

  /**
   * A forced exit (a second signal): ends every connection now (`killed`).
   * Resolves once each has ended, its `onEnd` called (its access-log line
   * recorded), or after `waitMs`.
   */
  async kill(waitMs: number): Promise<void> {
    for (const session of this.sessions()) session.abort("killed");
    await this.#allClosed(waitMs, 5);
  }

  /** Resolves once no connection is open, looking every `everyMs`, or after `waitMs`. */
  async #allClosed(waitMs: number, everyMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    while (this.open > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(everyMs, deadline - Date.now())));
    }
  }

  /** Closes everything at once (`shutdown(0)`); after a full `shutdown`, nothing is left to do. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown(0);
  }

  /** The listen address of each frontend, for logs. */
  describe(): string {
    return this.frontends.map((f) => f.addr).join(", ");
  }

  *#allFrontends(): Iterable<Frontend> {
    yield* this.frontends;
    yield* this.#retired;
  }

  *#backends(): Iterable<Backend> {
    for (const frontend of this.frontends) yield* frontend.pool.backends;
  }

  #startIdleSweep(idleMs: number): void {
    clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
    if (idleMs > 0) {
      const every = Math.max(10, Math.min(1000, Math.floor(idleMs / 4)));
      this.#idleTimer = setInterval(() => this.#sweepIdle(idleMs), every);
    }
  }

  /** Closes connections with no bytes either way for `idleMs` (the slowloris defence). */
  #sweepIdle(idleMs: number): void {
    const now = Date.now();
    for (const session of this.sessions()) {
      const seen = session.up.bytes + session.down.bytes;
      if (seen !== session.idleMark) {
        session.idleMark = seen;
        session.idleSince = now;
      } else if (now - session.idleSince >= idleMs) {
        session.abort("timeout");
      }
    }
  }
}
