/**
 * `--workers N|auto`: N accept loops on the same ports, one load balancer.
 * The main thread serves as before; N-1 Workers each run their own
 * {@link Lb} on the same listen addresses through `SO_REUSEPORT` (the kernel
 * spreads new connections over the listeners), which needs Deno's
 * `--unstable-net` (`"unstable": ["net"]` in deno.json, `--unstable-net`
 * when compiling).
 *
 * One balancer across threads:
 * - shared counts (`SharedCounters`, a `SharedArrayBuffer`): the
 *   `--max-conns` gate and each backend's open connections, so `--max-conns`
 *   and `maxconn` hold exactly and `leastconn`/`p2c` compare global counts;
 * - decided in the main thread and passed on at once: health (checked once
 *   there; a worker sends its failed connects), an operator's drain and
 *   enable, and reloads, all or none: every worker plans the new config and
 *   answers, and only when all could does any apply it (two phases);
 * - gathered by the main thread: the access log (one writer: workers send
 *   whole lines) and each worker's counters for the admin's one view (a
 *   worker that died leaves its counters, so none goes backwards).
 *
 * Still per worker: the idle sweep, and each drains its own connections on
 * SIGTERM (told by the main thread, within the same drain timeout). The main
 * thread restarts a worker that dies (its part of the shared counts is taken
 * back first), and one that started while a reload was under way, unless lb
 * is stopping; it starts without one that cannot start.
 *
 * This file is the main thread's side: {@link Workers}. The Worker entry is
 * `worker.ts`; what they say to each other is in `messages.ts`.
 * @module
 */
import type { Config } from "../config/config.ts";
import { describe } from "../common/errors.ts";
import type { Lb } from "../lb/lb.ts";
import type { Logger } from "../observability/log.ts";
import { addTallies, departedPart, type Tally } from "../observability/metrics.ts";
import type { SharedCounters } from "../common/shared_counters.ts";
import { expandedConfig, type ReloadPeers } from "../lb/reload.ts";
import type { Helpers } from "../lb/serve.ts";
import type { SourceVerdict } from "../connection/admission.ts";
import {
  backendsWithId,
  boundPorts,
  type ControlMessage,
  frontendsOf,
  healthMessage,
  type StartMessage,
  workerConfig,
  type WorkerReply,
} from "./messages.ts";

/** Options for {@link Workers.start}. */
export interface WorkersOptions {
  /** Where warnings and restarts are logged. */
  logger: Logger;
  /** The counters every thread shares; the main thread is thread 0. */
  counters: SharedCounters;
  /** The Worker module. @default this module (the compile task includes it) */
  module?: URL;
  /** Wait before restarting a worker that died. @default 1000 */
  restartDelayMs?: number;
  /** Longest wait for a worker's answer to a reload (then it is refused). @default 10000 */
  prepareTimeoutMs?: number;
  /** Longest wait for a worker's counters (then its last ones are shown). @default 1000 */
  tallyTimeoutMs?: number;
  /** Takes a worker's access-log lines (whole lines): the main thread is the one writer. */
  onAccessLog?: (lines: string) => void;
}

/** The longest delay `setTimeout` keeps (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Longest wait between two tries to restart a worker that does not start. */
const MAX_RESTART_DELAY_MS = 30_000;

/** A question to every live worker, answered by each (or given up on). */
interface _Ask<T> {
  waiting: Set<number>;
  answers: Map<number, T>;
  done: () => void;
}

/**
 * The other accept loops, from the main thread's side: starts them, restarts
 * one that dies (its connections are lost, nobody else's), passes on what
 * the main thread decides (health, drain and enable, reloads, all or none)
 * and gathers their counters for the admin. A worker that cannot start (a
 * compiled binary without the worker module, say) leaves lb serving with the
 * loops it has, with one warning naming the cause: never a failed start.
 */
export class Workers implements Helpers {
  readonly #lb: Lb;
  readonly #args: string[];
  readonly #options: WorkersOptions;
  readonly #live = new Map<number, Worker>();
  /** Each worker's latest generation (0 at the start, one more at each restart). */
  readonly #generations = new Map<number, number>();
  /** Workers started and not yet ready (or gone). */
  readonly #starting = new Set<Worker>();
  /** The stop signal, once the main thread has received it. */
  #stopSignal: Deno.Signal | undefined;
  #stopping = false;
  #restarts = 0;
  #onStopped: (() => void) | undefined;
  /** Each live worker's latest counters, and what dead ones left. */
  readonly #last = new Map<number, Tally>();
  #departed: Tally | undefined;
  #asks = 0;
  readonly #tallyAsks = new Map<number, _Ask<Tally>>();
  readonly #prepareAsks = new Map<number, _Ask<string | undefined>>();
  readonly #appliedAsks = new Map<number, _Ask<true>>();
  readonly #killedAsks = new Map<number, _Ask<true>>();
  /** Per worker, the sources its open connections hold in the per-source table. */
  readonly #admitted = new Map<number, Map<string, number>>();
  /** Workers holding the plan of the reload in progress, waiting for `decide`. */
  #deciding: { reload: number; workers: Worker[] } | undefined;
  /** Workers told to apply the reload being committed; see `peers.committed`. */
  #applied: Set<Worker> | undefined;

  private constructor(lb: Lb, args: string[], options: WorkersOptions) {
    this.#lb = lb;
    this.#args = args;
    this.#options = options;
  }

  /** Workers serving now (beside the main thread). */
  get running(): number {
    return this.#live.size;
  }

  /** Workers restarted after dying. */
  get restarts(): number {
    return this.#restarts;
  }

  /**
   * Starts `config.workers - 1` Workers serving `lb`'s frontends (on the
   * ports `lb` bound) and waits until each listens or fails. Never throws.
   *
   * @param args The command line (a worker reads the same flags).
   */
  static async start(
    config: Config,
    lb: Lb,
    args: string[],
    options: WorkersOptions,
  ): Promise<Workers> {
    const workers = new Workers(lb, args, options);
    // Health is checked once, here; every worker follows each change at once.
    lb.health.watch((backend) => workers.#post(healthMessage(backend, frontendsOf(lb, backend))));
    lb.health.watchFailing((backend, failing) =>
      workers.#post({
        type: "failing",
        id: backend.id,
        frontends: frontendsOf(lb, backend),
        failing,
      })
    );
    const indexes = Array.from({ length: config.workers - 1 }, (_, i) => i + 1);
    const failures = (await Promise.all(indexes.map((index) => workers.#spawn(index, 0))))
      .filter((why) => why !== undefined);
    if (failures.length > 0) {
      options.logger.log(
        "lb",
        `warning: ${failures.length} worker(s) did not start (${failures[0]}): serving with ` +
          `${workers.running + 1} accept loop(s)`,
      );
    }
    return workers;
  }

  /** A reload reaches every worker, all or none (see `ReloadPeers`). */
  readonly peers: ReloadPeers = {
    prepare: async (next, ports) => {
      const reload = ++this.#asks;
      const config = workerConfig(next, ports);
      const answers = await this.#ask(
        this.#prepareAsks,
        reload,
        { type: "prepare", reload, config },
        this.#options.prepareTimeoutMs ?? 10_000,
      );
      // The workers that answered, as they are now: one that died since is not among them.
      const workers = [...answers.keys()].flatMap((index) => this.#live.get(index) ?? []);
      this.#deciding = { reload, workers };
      for (const [index, error] of answers) {
        if (error !== undefined) throw new Error(`worker ${index}: ${error}`);
      }
      const silent = [...this.#live.keys()].filter((index) => !answers.has(index));
      if (silent.length > 0) throw new Error(`worker ${silent[0]} did not answer`);
    },
    decide: (apply) => {
      const deciding = this.#deciding;
      this.#deciding = undefined;
      for (const worker of deciding?.workers ?? []) {
        worker.postMessage(
          { type: "decide", reload: deciding!.reload, apply } satisfies ControlMessage,
        );
      }
      this.#applied = apply ? new Set(deciding?.workers) : undefined;
    },
    committed: () => {
      const applied = this.#applied;
      this.#applied = undefined;
      // A worker that became ready while the reload was under way never planned it.
      for (const [index, worker] of this.#live) {
        if (applied?.has(worker)) continue;
        this.#end(index, worker);
        this.#restart(index, "started during a reload, on the old config");
      }
    },
  };

  /** Every worker's counters now (a slow one's latest), and what dead ones left. */
  async tallies(): Promise<Tally[]> {
    const request = ++this.#asks;
    const answers = await this.#ask(
      this.#tallyAsks,
      request,
      { type: "tally", request },
      this.#options.tallyTimeoutMs ?? 1000,
    );
    for (const [index, tally] of answers) this.#last.set(index, tally);
    return [...this.#last.values(), ...(this.#departed ? [this.#departed] : [])];
  }

  /**
   * Drains or enables backend `id` in every worker (the admin did it here);
   * resolves once each has applied it (or died, or 1 s passed).
   */
  async backendAction(
    id: string,
    action: "drain" | "enable",
    frontends: readonly string[],
  ): Promise<void> {
    const request = ++this.#asks;
    const message: ControlMessage = { type: "backend", id, action, frontends, request };
    await this.#ask(this.#appliedAsks, request, message, this.#options.tallyTimeoutMs ?? 1000);
  }

  #post(message: ControlMessage): void {
    for (const worker of this.#live.values()) worker.postMessage(message);
  }

  /** Asks every live worker; resolves with the answers when all have answered, died, or `timeoutMs` passed. */
  #ask<T>(
    asks: Map<number, _Ask<T>>,
    id: number,
    message: ControlMessage,
    timeoutMs: number,
  ): Promise<Map<number, T>> {
    const ask: _Ask<T> = {
      waiting: new Set(this.#live.keys()),
      answers: new Map(),
      done: () => {},
    };
    if (ask.waiting.size === 0) return Promise.resolve(ask.answers);
    asks.set(id, ask);
    const answered = new Promise<void>((resolve) => ask.done = resolve);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
    this.#post(message);
    return Promise.race([answered, timeout]).then(() => {
      clearTimeout(timer);
      asks.delete(id);
      return ask.answers;
    });
  }

  /** Records `index`'s answer to question `id`; false when nobody waits for it any more. */
  #answer<T>(asks: Map<number, _Ask<T>>, id: number, index: number, answer: T): boolean {
    const ask = asks.get(id);
    if (!ask) return false;
    ask.answers.set(index, answer);
    ask.waiting.delete(index);
    if (ask.waiting.size === 0) ask.done();
    return true;
  }

  /**
   * A worker is gone: no question waits for it any more, and what it already
   * answered counts for nothing (its counters are in `#departed`; a reload
   * it planned died with it).
   */
  #forget(index: number): void {
    const all = [this.#tallyAsks, this.#prepareAsks, this.#appliedAsks, this.#killedAsks];
    for (const asks of all as Map<number, _Ask<unknown>>[]) {
      for (const ask of asks.values()) {
        ask.answers.delete(index);
        ask.waiting.delete(index);
        if (ask.waiting.size === 0) ask.done();
      }
    }
  }

  /** Starts worker `index`; resolves undefined once it listens, or why it could not start. */
  #spawn(index: number, generation: number): Promise<string | undefined> {
    const module = this.#options.module ?? new URL("./worker.ts", import.meta.url);
    let worker: Worker;
    try {
      worker = new Worker(module, { type: "module" });
    } catch (error) {
      return Promise.resolve(describe(error));
    }
    this.#starting.add(worker);
    this.#generations.set(index, generation);
    return new Promise((resolve) => {
      let ready = false;
      const gone = (why: string) => {
        this.#starting.delete(worker);
        this.#end(index, worker);
        this.#checkStopped();
        if (!ready) return resolve(why);
        this.#restart(index, `died (${why})`);
      };
      worker.onmessage = (event: MessageEvent<WorkerReply>) => {
        const reply = event.data;
        if (reply.type === "ready") {
          ready = true;
          this.#starting.delete(worker);
          if (startedWith !== this.#lb.config) {
            // A reload applied while it started, without it: start it again on the new config,
            // once this one has surely stopped counting (as after a death).
            this.#end(index, worker);
            if (this.#stopping) {
              this.#checkStopped();
              return resolve(undefined);
            }
            return void setTimeout(() => {
              if (this.#stopping) return resolve(undefined);
              this.#options.counters.reclaim(index);
              this.#spawn(index, generation + 1).then(resolve);
            }, this.#options.restartDelayMs ?? 1000);
          }
          this.#live.set(index, worker);
          // Start from the main thread's view: names' addresses, health and drain state.
          worker.postMessage(
            { type: "pools", config: this.#workerConfig() } satisfies ControlMessage,
          );
          this.#sync(worker);
          // Started during the shutdown: it drains too.
          if (this.#stopSignal) worker.postMessage({ type: "stop", signal: this.#stopSignal });
          resolve(undefined);
        } else if (reply.type === "sync") {
          this.#sync(worker);
        } else if (reply.type === "log") {
          this.#options.onAccessLog?.(reply.lines);
        } else if (reply.type === "connect-failed") {
          // Passive health across threads: the main thread decides, once.
          for (const backend of backendsWithId(this.#lb, reply.id, reply.frontends)) {
            this.#lb.health.report(backend, false, reply.why);
          }
        } else if (reply.type === "connect-ok") {
          for (const backend of backendsWithId(this.#lb, reply.id, reply.frontends)) {
            this.#lb.health.report(backend, true);
          }
        } else if (reply.type === "tally") {
          this.#answer(this.#tallyAsks, reply.request, index, reply.tally);
        } else if (reply.type === "admit") {
          const verdict = this.#admit(index, reply.host);
          worker.postMessage(
            { type: "admitted", request: reply.request, verdict } satisfies ControlMessage,
          );
        } else if (reply.type === "release") {
          this.#release(index, reply.key);
        } else if (reply.type === "applied") {
          this.#answer(this.#appliedAsks, reply.request, index, true);
        } else if (reply.type === "killed") {
          this.#answer(this.#killedAsks, reply.request, index, true);
        } else if (reply.type === "prepared") {
          if (!this.#answer(this.#prepareAsks, reply.reload, index, reply.error)) {
            // Too late: that reload was already refused (or applied without it). Drop the plan.
            worker.postMessage(
              { type: "decide", reload: reply.reload, apply: false } satisfies ControlMessage,
            );
          }
        } else if (reply.type === "failed") {
          gone(reply.message);
        } else {
          this.#live.delete(index);
          this.#forget(index);
          this.#checkStopped();
        }
      };
      worker.onerror = (event) => {
        event.preventDefault();
        gone(event.message);
      };
      // Names are looked up in the main thread only: a worker gets their addresses.
      const startedWith = this.#lb.config;
      const config = this.#workerConfig();
      const shared = this.#options.counters.buffer;
      const message: StartMessage = { index, generation, args: this.#args, config, shared };
      worker.postMessage(message);
    });
  }

  /** Sends `worker` every backend's health and drain state, as the main thread sees them. */
  #sync(worker: Worker): void {
    for (const frontend of this.#lb.frontends) {
      for (const backend of frontend.pool.backends) {
        worker.postMessage(healthMessage(backend, [frontend.name]));
        if (backend.health.failStreak > 0) {
          worker.postMessage(
            {
              type: "failing",
              id: backend.id,
              frontends: [frontend.name],
              failing: true,
            } satisfies ControlMessage,
          );
        }
        const action = backend.drained ? "drain" : "enable";
        worker.postMessage(
          {
            type: "backend",
            id: backend.id,
            action,
            frontends: [frontend.name],
          } satisfies ControlMessage,
        );
      }
    }
  }

  /** A second stop signal: every worker ends its connections (`killed`) and sends their lines. */
  async kill(timeoutMs: number): Promise<void> {
    const request = ++this.#asks;
    await this.#ask(this.#killedAsks, request, { type: "kill", request }, timeoutMs);
  }

  /** The names' addresses changed here: every worker takes the new pools, then syncs. */
  followPools(): void {
    this.#post({ type: "pools", config: this.#workerConfig() });
  }

  /** The config a worker runs now: the main thread's, names expanded, on its ports. */
  #workerConfig(): Config {
    return workerConfig(expandedConfig(this.#lb), boundPorts(this.#lb));
  }

  /** A worker's connection asks the one per-source table, here; what it let in is counted per worker. */
  #admit(index: number, host: string): SourceVerdict {
    const verdict = this.#lb.sources.admit(host) as SourceVerdict; // the main thread's own table
    if ("key" in verdict) {
      const keys = this.#admitted.get(index) ?? new Map<string, number>();
      keys.set(verdict.key, (keys.get(verdict.key) ?? 0) + 1);
      this.#admitted.set(index, keys);
    }
    return verdict;
  }

  #release(index: number, key: string): void {
    const keys = this.#admitted.get(index);
    const n = keys?.get(key) ?? 0;
    if (n === 0) return;
    if (n === 1) keys!.delete(key);
    else keys!.set(key, n - 1);
    this.#lb.sources.release(key);
  }

  /**
   * What a worker that is gone leaves: its part of the shared counts and of
   * the per-source table (its connections are closed) is taken back, and its
   * counters stay in the sum so that none goes backwards.
   */
  #leftBehind(index: number): void {
    this.#options.counters.reclaim(index);
    for (const [key, n] of this.#admitted.get(index) ?? []) {
      for (let i = 0; i < n; i++) this.#lb.sources.release(key);
    }
    this.#admitted.delete(index);
    const last = this.#last.get(index);
    this.#last.delete(index);
    if (last) {
      const part = departedPart(last);
      this.#departed = this.#departed ? addTallies(this.#departed, part) : part;
    }
    this.#forget(index);
  }

  /** Ends `worker` (number `index`) at once: terminated, and what it leaves taken back. */
  #end(index: number, worker: Worker): void {
    worker.onmessage = worker.onerror = null;
    worker.terminate();
    if (this.#live.get(index) === worker) this.#live.delete(index);
    this.#leftBehind(index);
  }

  /** Worker `index` has ended (`why`): logged, started again after a pause unless lb is stopping. */
  #restart(index: number, why: string, delay = this.#options.restartDelayMs ?? 1000): void {
    if (this.#stopping) return void this.#options.logger.log("lb", `worker ${index} ${why}`);
    const generation = (this.#generations.get(index) ?? 0) + 1;
    this.#options.logger.log("lb", `worker ${index} ${why}; restarting in ${delay}ms`);
    setTimeout(async () => {
      if (this.#stopping) return;
      // Again, now that the thread has surely stopped: anything it counted after
      // the first reclaim (it may run on briefly after `terminate`) is taken back.
      this.#options.counters.reclaim(index);
      const failed = await this.#spawn(index, generation);
      this.#restarts++;
      // It may not start for a while (certificates half-written, no descriptors): again, later.
      if (failed) {
        this.#restart(
          index,
          `did not restart (${failed})`,
          Math.min(2 * delay, MAX_RESTART_DELAY_MS),
        );
      }
    }, delay);
  }

  /** Lets `stopped` return once every worker has stopped (or died, or failed to start) during the shutdown. */
  #checkStopped(): void {
    if (this.#stopping && this.#live.size === 0 && this.#starting.size === 0) this.#onStopped?.();
  }

  /**
   * The main thread received `signal` (SIGINT/SIGTERM): every worker stops
   * accepting and drains, as the main thread does, and none is restarted
   * from now on. A worker gets the signal from the OS too, but one started
   * since (a restart) would not: each is told.
   */
  stop(signal: Deno.Signal): void {
    this.#stopping = true;
    this.#stopSignal = signal;
    this.#post({ type: "stop", signal });
  }

  /**
   * Waits until every worker has drained (see `stop`), then ends any left;
   * gives up after `timeoutMs`.
   */
  async stopped(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // One still starting is told to stop once ready, and waited for too.
    if (this.#live.size > 0 || this.#starting.size > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.#onStopped = resolve),
        // A timer fires at once past 2^31-1 ms: a wait that long is a wait for the workers.
        timeoutMs < MAX_TIMER_MS
          ? new Promise((resolve) => timer = setTimeout(resolve, timeoutMs))
          : new Promise(() => {}),
      ]);
    }
    clearTimeout(timer);
    for (const worker of [...this.#live.values(), ...this.#starting]) worker.terminate();
    this.#live.clear();
    this.#starting.clear();
  }
}
