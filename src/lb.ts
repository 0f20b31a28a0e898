import { formatHostPort } from "./address.ts";
import type { Config } from "./config.ts";
import { Gate } from "./gate.ts";
import { Health, HealthChecker } from "./health.ts";
import type { Logger } from "./log.ts";
import { Frontend, type SessionHook } from "./server.ts";

/** A running load balancer: its frontends and what they share. */
export class Lb {
  readonly frontends: Frontend[];
  readonly config: Config;
  readonly gate: Gate;
  readonly health: Health;
  /** Active health checks over every frontend's current pool. */
  readonly checker: HealthChecker;
  readonly started = Date.now();
  #logger: Logger;
  #idleTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(
    config: Config,
    frontends: Frontend[],
    gate: Gate,
    health: Health,
    logger: Logger,
  ) {
    this.config = config;
    this.frontends = frontends;
    this.gate = gate;
    this.health = health;
    this.checker = new HealthChecker(function* () {
      for (const frontend of frontends) yield* frontend.pool.backends;
    }, health, config.health);
    this.#logger = logger;
    if (config.idleTimeout > 0) {
      const every = Math.max(10, Math.min(1000, Math.floor(config.idleTimeout / 4)));
      this.#idleTimer = setInterval(() => this.#sweepIdle(config.idleTimeout), every);
    }
  }

  /** Closes connections with no bytes either way for `idleMs` (the slowloris defence). */
  #sweepIdle(idleMs: number): void {
    const now = Date.now();
    for (const frontend of this.frontends) {
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
    const gate = new Gate(config.maxConns);
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
        const listener = Deno.listen({ ...frontend.listen, transport: "tcp" });
        frontends.push(new Frontend(frontend, listener, ctx));
      }
    } catch (error) {
      for (const frontend of frontends) frontend.listener.close();
      throw error;
    }
    const lb = new Lb(config, frontends, gate, health, logger);
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
    return this.frontends.reduce((sum, f) => sum + f.sessions.size, 0);
  }

  /**
   * Stops accepting at once, waits up to `drainMs` for open connections to
   * finish, then closes the rest.
   */
  async shutdown(drainMs: number): Promise<void> {
    await Promise.all([...this.frontends.map((f) => f.stop()), this.checker.stop()]);
    this.gate.release();
    const deadline = Date.now() + drainMs;
    if (this.open > 0) {
      this.#logger.log("lb", `draining ${this.open} open connection(s), up to ${drainMs}ms`);
    }
    while (this.open > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, deadline - Date.now())));
    }
    for (const frontend of this.frontends) {
      for (const session of frontend.sessions) session.abort("drained");
    }
    while (this.open > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    clearInterval(this.#idleTimer);
  }

  /** The listen address of each frontend, for logs. */
  describe(): string {
    return this.config.frontends.map((f) => formatHostPort(f.listen)).join(", ");
  }
}
