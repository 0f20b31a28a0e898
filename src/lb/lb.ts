import { formatHostPort } from "../common/address.ts";
import type { Config } from "../config/config.ts";
import { listen } from "../connection/listen.ts";
import { Gate } from "../connection/gate.ts";
import { Health, HealthChecker } from "../balancing/health.ts";
import type { Logger } from "../observability/log.ts";
import { describe as describeError } from "../connection/proxy.ts";
import { planPool, type PoolPlan, sameListen } from "./reload.ts";
import { Frontend, type ServerContext, type SessionHook } from "../connection/frontend.ts";

/** With `--workers` above 1 every thread listens on the same ports (SO_REUSEPORT, `--unstable-net`). */
function reuse(config: Config): boolean {
  return config.workers > 1;
}

/** Each of `workers` threads admits its share of `maxConns` (0, no limit, stays 0). */
export function gateShare(maxConns: number, workers: number): number {
  return maxConns > 0 && workers > 1 ? Math.ceil(maxConns / workers) : maxConns;
}

/** A running load balancer: its frontends and what they share. */
export class Lb {
  /** The frontends accepting now; changed in place by `reload`. */
  readonly frontends: Frontend[];
  /** The config serving now; replaced by `reload`. */
  config: Config;
  readonly gate: Gate;
  readonly health: Health;
  /** Active health checks over every frontend's current pool. */
  readonly checker: HealthChecker;
  readonly started = Date.now();
  #logger: Logger;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #ctx: ServerContext;
  /** Frontends a reload removed: no longer accepting, their connections draining. */
  #retired = new Set<Frontend>();
  #reloading: Promise<unknown> = Promise.resolve();
  #stopping = false;

  private constructor(
    config: Config,
    frontends: Frontend[],
    gate: Gate,
    health: Health,
    logger: Logger,
    ctx: ServerContext,
  ) {
    this.#ctx = ctx;
    this.config = config;
    this.frontends = frontends;
    this.gate = gate;
    this.health = health;
    this.checker = new HealthChecker(
      function* () {
        for (const frontend of frontends) yield* frontend.pool.backends;
      },
      health,
      config.health,
    );
    this.#logger = logger;
    this.#startIdleSweep(config.idleTimeout);
  }

  /** The operational log. */
  get logger(): Logger {
    return this.#logger;
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
    for (const frontend of [...this.frontends, ...this.#retired]) {
      for (const session of frontend.sessions) {
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

  /**
   * Opens every listener (all or none), then starts accepting.
   *
   * @throws What `Deno.listen` throws (address in use, permission denied);
   * listeners already opened are closed first.
   */
  static start(config: Config, logger: Logger, onEnd: SessionHook = () => {}): Lb {
    const gate = new Gate(gateShare(config.maxConns, config.workers));
    const health = new Health(config.health, logger);
    const ctx = {
      gate,
      logger,
      onEnd,
      connectTimeout: config.connectTimeout,
      retries: config.retries,
      onConnect: (backend: Parameters<Health["report"]>[0], ok: boolean, why?: string) =>
        health.report(backend, ok, why),
    };
    const frontends: Frontend[] = [];
    try {
      for (const frontend of config.frontends) {
        const listener = listen(frontend.listen, reuse(config));
        frontends.push(new Frontend(frontend, listener, ctx));
      }
    } catch (error) {
      for (const frontend of frontends) frontend.listener.close();
      throw error;
    }
    const lb = new Lb(config, frontends, gate, health, logger, ctx);
    for (const frontend of frontends) {
      frontend.start();
      logger.log(
        "lb",
        `frontend ${frontend.name} listening on ${frontend.addr} -> ${
          frontend.pool.backends.map((b) => b.id).join(", ")
        } (${frontend.pool.balance})`,
      );
    }
    lb.checker.start();
    return lb;
  }

  /** Connections open now over all frontends. */
  get open(): number {
    return [...this.frontends, ...this.#retired].reduce((sum, f) => sum + f.sessions.size, 0);
  }

  /**
   * Applies `config` (already validated) while serving. Backends added,
   * removed or re-weighted take effect for new connections; a kept backend
   * (same id) stays the same object, with its counters and health state; a
   * removed one is marked drained and its connections run to their end. A
   * new frontend starts; a removed one stops accepting and drains; a moved
   * one accepts on its new address before the old one closes. Every new
   * listener opens before anything changes: if one cannot, the others are
   * closed and nothing changes. `admin`, `log`, `logFile` and `workers` need
   * a restart. Reloads run one at a time.
   *
   * @param config The new config.
   * @returns A one-line summary of what changed.
   * @throws {Error} When a new listener cannot open, or lb is shutting down;
   * the running config is untouched then.
   */
  reload(config: Config): Promise<string> {
    const copy = structuredClone(config); // the caller's objects are never shared with lb
    const next = this.#reloading.then(() => this.#reload(copy));
    this.#reloading = next.catch(() => {});
    return next;
  }

  async #reload(next: Config): Promise<string> {
    if (this.#stopping) throw new Error("lb is shutting down");
    const current = new Map(this.frontends.map((f) => [f.name, f]));
    const configured = new Map(this.config.frontends.map((f) => [f.name, f]));
    const plans = new Map<string, PoolPlan>();
    const opened = new Map<string, Deno.TcpListener>();
    let at = "";
    try {
      for (const frontend of next.frontends) {
        at = `frontend ${frontend.name}`;
        plans.set(frontend.name, planPool(current.get(frontend.name)?.pool, frontend));
        const was = configured.get(frontend.name);
        if (!was || !sameListen(was.listen, frontend.listen)) {
          at = `frontend ${frontend.name} cannot listen on ${formatHostPort(frontend.listen)}`;
          opened.set(
            frontend.name,
            listen(frontend.listen, reuse(this.config)),
          );
        }
      }
    } catch (error) {
      for (const listener of opened.values()) listener.close();
      throw new Error(`${at}: ${describeError(error)}`, { cause: error });
    }

    // From here on nothing can fail: the switch happens within one tick.
    const changes: string[] = [];
    const waits: Promise<void>[] = [];
    const settings = { connectTimeout: next.connectTimeout, retries: next.retries };
    this.#ctx = { ...this.#ctx, ...settings };
    const frontends: Frontend[] = [];
    for (const config of next.frontends) {
      const plan = plans.get(config.name)!;
      const listener = opened.get(config.name);
      plan.apply();
      let frontend = current.get(config.name);
      if (frontend) {
        frontend.pool = plan.pool;
        frontend.configure(settings);
        changes.push(...plan.changes.map((c) => `${config.name} ${c}`));
        if (listener) {
          const from = frontend.addr;
          waits.push(frontend.relisten(listener));
          this.#logListening(frontend, ` (moved from ${from})`);
          changes.push(`${config.name} moved ${from}->${frontend.addr}`);
        }
      } else {
        frontend = new Frontend(config, listener!, this.#ctx);
        frontend.pool = plan.pool;
        frontend.start();
        this.#logListening(frontend, "");
        changes.push(`+frontend ${config.name}`);
      }
      frontends.push(frontend);
    }
    for (const [name, frontend] of current) {
      if (frontends.includes(frontend)) continue;
      for (const backend of frontend.pool.backends) backend.drained = true;
      waits.push(frontend.stop());
      this.#retired.add(frontend);
      changes.push(`-frontend ${name} (${frontend.sessions.size} connection(s) draining)`);
    }
    this.frontends.splice(0, this.frontends.length, ...frontends);
    this.gate.limit = gateShare(next.maxConns, this.config.workers);
    this.gate.release();
    if (next.idleTimeout !== this.config.idleTimeout) this.#startIdleSweep(next.idleTimeout);
    await this.#reconfigureHealth(next);
    const old = this.config;
    const restart = (["admin", "log", "logFile", "workers"] as const).filter((key) =>
      JSON.stringify(old[key]) !== JSON.stringify(next[key])
    );
    if (restart.length > 0) changes.push(`${restart.join(", ")} kept (need a restart)`);
    this.config = {
      ...next,
      health: old.health,
      admin: old.admin,
      log: old.log,
      logFile: old.logFile,
      workers: old.workers,
    };
    await Promise.all(waits);
    for (const frontend of this.#retired) {
      if (frontend.sessions.size === 0) this.#retired.delete(frontend);
    }
    return changes.length === 0 ? "no changes" : changes.join(", ");
  }

  /**
   * Health and its checker hold `this.config.health` itself, so it is updated
   * in place; the checker is stopped before checks are turned off (interval 0),
   * which also marks every backend up, and started when they are turned on.
   */
  async #reconfigureHealth(next: Config): Promise<void> {
    const health = this.config.health;
    if (next.health.interval <= 0 && this.checker.running) await this.checker.stop();
    if (next.health.interval <= 0) {
      // Without checks nothing could bring a down backend back up.
      for (const backend of this.frontends.flatMap((f) => f.pool.backends)) {
        backend.failStreak = 0;
        if (backend.healthy) continue;
        backend.healthy = true;
        this.#logger.log("health", `backend ${backend.id} is up (health checks turned off)`);
      }
    }
    Object.assign(health, next.health);
    if (health.interval > 0 && !this.checker.running && !this.#stopping) this.checker.start();
  }

  #logListening(frontend: Frontend, suffix: string): void {
    this.#logger.log(
      "lb",
      `frontend ${frontend.name} listening on ${frontend.addr} -> ${
        frontend.pool.backends.map((b) => b.id).join(", ")
      } (${frontend.pool.balance})${suffix}`,
    );
  }

  /**
   * Stops accepting at once, waits up to `drainMs` for open connections to
   * finish, then closes the rest.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.#stopping = true;
    const stopped = Promise.all([...this.frontends.map((f) => f.stop()), this.checker.stop()]);
    await this.#reloading; // a reload in flight has committed: its listeners are closed too
    await stopped;
    this.gate.release();
    const deadline = Date.now() + drainMs;
    if (this.open > 0) {
      this.#logger.log("lb", `draining ${this.open} open connection(s), up to ${drainMs}ms`);
    }
    while (this.open > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, deadline - Date.now())));
    }
    for (const frontend of [...this.frontends, ...this.#retired]) {
      for (const session of frontend.sessions) session.abort("drained");
    }
    while (this.open > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    clearInterval(this.#idleTimer);
  }

  /** The listen address of each frontend, for logs. */
  describe(): string {
    return this.frontends.map((f) => f.addr).join(", ");
  }
}
