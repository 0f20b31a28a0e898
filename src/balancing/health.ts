import type { HostPort } from "../common/address.ts";
import { writeAll } from "../common/bytes.ts";
import { describe } from "../common/errors.ts";
import type { Backend } from "./backend.ts";
import { type Clock, realClock, type TimerId } from "../common/clock.ts";
import type { HealthConfig } from "../config/config.ts";
import type { Logger } from "../observability/log.ts";
import { encodeProxyV1Unknown, encodeProxyV2Local } from "../proxy_protocol/mod.ts";

/**
 * Backend health with rise/fall. Every active check and every connect attempt
 * (passive) reports here. A backend goes down after `fall` failures in a row
 * and up after `rise` successes in a row; each change is logged once.
 *
 * With active checks off (`interval` 0) failures are counted but never take a
 * backend down: nothing could bring it back (HAProxy's `observe` likewise
 * needs `check`). A dead backend then costs a retry, not an outage.
 */
export class Health {
  #config: HealthConfig;
  #logger: Logger;
  #watchers: ((backend: Backend) => void)[] = [];
  #failingWatchers: ((backend: Backend, failing: boolean) => void)[] = [];

  constructor(config: HealthConfig, logger: Logger) {
    this.#config = { ...config };
    this.#logger = logger;
  }

  /** The settings in use (a copy is kept: changing the caller's object changes nothing). */
  get config(): Readonly<HealthConfig> {
    return this.#config;
  }

  /**
   * Takes new settings (reload). Turning checks off brings every backend in
   * `backends` up: with no checks nothing else could.
   */
  configure(config: HealthConfig, backends: Iterable<Backend>): void {
    this.#config = { ...config };
    if (config.interval > 0) return;
    for (const backend of backends) {
      if (backend.health.reset()) {
        this.#logger.log("health", `backend ${backend.id} is up (health checks turned off)`);
        this.#changed(backend);
      }
    }
  }

  /**
   * Records one connect or check result for `backend`.
   *
   * @param backend The backend checked or connected to.
   * @param ok Whether the connect succeeded.
   * @param why What went wrong, for the log line when this takes it down.
   */
  report(backend: Backend, ok: boolean, why?: string): void {
    const { health } = backend;
    const wasFailing = health.failStreak > 0;
    this.#record(backend, ok, why);
    if (health.failStreak > 0 !== wasFailing) {
      for (const watcher of this.#failingWatchers) watcher(backend, !wasFailing);
    }
  }

  #record(backend: Backend, ok: boolean, why?: string): void {
    const { health } = backend;
    if (ok) {
      if (health.succeeded(this.#config.rise)) {
        this.#logger.log(
          "health",
          `backend ${backend.id} is up (${health.okStreak} successes in a row)`,
        );
        this.#changed(backend);
      }
    } else if (health.failed(this.#config.fall, this.#config.interval > 0, why)) {
      this.#logger.log(
        "health",
        `backend ${backend.id} is down (${health.failStreak} failures in a row${
          why ? `, last: ${why}` : ""
        })`,
      );
      this.#changed(backend);
    }
  }

  /** Calls `watcher` on every state change from now on (Workers follow the main thread). */
  watch(watcher: (backend: Backend) => void): void {
    this.#watchers.push(watcher);
  }

  /**
   * Calls `watcher` whenever `backend` starts a run of failures (`failing`
   * true) or ends one: while it is failing, the workers report their
   * successful connects too, so that any success ends the run, as with one
   * thread.
   */
  watchFailing(watcher: (backend: Backend, failing: boolean) => void): void {
    this.#failingWatchers.push(watcher);
  }

  #changed(backend: Backend): void {
    for (const watcher of this.#watchers) watcher(backend);
  }
}

/**
 * One active check: resolves when `addr` accepts a connection, rejects
 * otherwise. Must give up promptly when `signal` aborts. `hello` is what a
 * strict backend expects first (a PROXY `LOCAL` header), sent before closing.
 */
export type Probe = (addr: HostPort, signal: AbortSignal, hello?: Uint8Array) => Promise<void>;

/** The default probe: a TCP connect, closed at once (after `hello`, if any). */
export const tcpProbe: Probe = async (addr, signal, hello) => {
  const conn = await Deno.connect({ hostname: addr.hostname, port: addr.port, signal });
  try {
    if (hello) await writeAll(conn, hello);
  } finally {
    conn.close();
  }
};

/**
 * The bytes a check sends a backend that expects a PROXY header, as
 * HAProxy's `check-send-proxy` does: a v2 `LOCAL` header, or a v1 `UNKNOWN`
 * line (v1 has no LOCAL), so that a strict backend sees no garbage.
 */
export function checkHello(backend: Backend): Uint8Array | undefined {
  if (backend.proxy === "v2") return _LOCAL_V2;
  if (backend.proxy === "v1") return _UNKNOWN_V1;
  return undefined;
}

const _LOCAL_V2 = encodeProxyV2Local();
const _UNKNOWN_V1 = encodeProxyV1Unknown();

/** Options for {@link HealthChecker}. */
export interface CheckerOptions {
  /** Time and timers. @default realClock */
  clock?: Clock;
  /** How one backend is checked. @default tcpProbe */
  probe?: Probe;
}

/**
 * Active health checks (HAProxy's `check inter rise fall`): checks every
 * backend at start, then every `interval`, each check bounded by `timeout`,
 * and reports to {@link Health}, whose settings it reads at every round. A
 * backend whose previous check is still running is skipped that round.
 * Backends are read through a function on every round, so pools swapped by a
 * reload are followed.
 *
 * @example
 * ```ts
 * const checker = new HealthChecker(() => pool.backends, health);
 * checker.start();
 * await checker.stop();
 * ```
 */
export class HealthChecker {
  #backends: () => Iterable<Backend>;
  #health: Health;
  #clock: Clock;
  #probe: Probe;
  #timer: TimerId | undefined;
  #running = false;
  #inflight = new Map<Backend, { controller: AbortController; done: Promise<void> }>();

  /**
   * @param backends The backends to check now; called every round.
   * @param health Where results go, and whose `interval` (0: `start` does
   * nothing) and `timeout` apply, read at every round.
   */
  constructor(backends: () => Iterable<Backend>, health: Health, options: CheckerOptions = {}) {
    this.#backends = backends;
    this.#health = health;
    this.#clock = options.clock ?? realClock;
    this.#probe = options.probe ?? tcpProbe;
  }

  /** Whether checks are scheduled. */
  get running(): boolean {
    return this.#running;
  }

  /** Runs the first round now and schedules the next ones. No-op when `interval` is 0. */
  start(): void {
    if (this.#running || this.#health.config.interval <= 0) return;
    this.#running = true;
    this.#round();
  }

  /** Cancels the next round and every check in flight; resolves when they have ended. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = [...this.#inflight.values()];
    for (const check of pending) check.controller.abort();
    await Promise.all(pending.map((check) => check.done));
  }

  /**
   * Checks `backend` now rather than at the next round: a backend that just
   * joined (see `BackendHealth.join`) takes connections as soon as it
   * answers. No-op when checks are not running or one is in flight for it.
   */
  checkSoon(backend: Backend): void {
    if (this.#running && !this.#inflight.has(backend)) this.#check(backend);
  }

  #round(): void {
    this.#timer = this.#clock.setTimeout(() => this.#round(), this.#health.config.interval);
    for (const backend of this.#backends()) {
      if (!this.#inflight.has(backend)) this.#check(backend);
    }
  }

  #check(backend: Backend): void {
    const controller = new AbortController();
    const started = this.#clock.now();
    const timeout = this.#health.config.timeout;
    const timer = this.#clock.setTimeout(
      () => controller.abort(new Deno.errors.TimedOut(`check timed out after ${timeout}ms`)),
      timeout,
    );
    const done = this.#probe(backend.addr, controller.signal, checkHello(backend)).then(
      () => undefined,
      (error: unknown) => {
        const reason = controller.signal.aborted ? controller.signal.reason : error;
        return describe(reason);
      },
    ).then((failure) => {
      this.#clock.clearTimeout(timer);
      this.#inflight.delete(backend);
      if (!this.#running) return; // stopped: the result no longer counts
      backend.health.checked(Math.round(this.#clock.now() - started));
      if (failure === undefined) this.#health.report(backend, true);
      else this.#health.report(backend, false, `check: ${failure}`);
    });
    this.#inflight.set(backend, { controller, done });
  }
}
