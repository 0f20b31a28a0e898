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
 * Still per worker: the round-robin position, per-source limits, DNS
 * lookups, the idle sweep and the drain on SIGTERM. The main thread restarts
 * a worker that dies (its part of the shared counts is taken back first) and
 * starts without one that cannot start.
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import type { Config } from "../config/config.ts";
import { describe } from "../common/errors.ts";
import { parseFlags } from "../config/flags.ts";
import type { Lb } from "../lb/lb.ts";
import { serve } from "../lb/serve.ts";
import { Logger, stderrSink } from "../observability/log.ts";
import { addTallies, departedPart, type Metrics, type Tally } from "../observability/metrics.ts";
import { SharedCounters } from "../common/shared_counters.ts";
import { expandedConfig, followPools, reload, type ReloadPeers } from "../lb/reload.ts";
import type { Helpers } from "../lb/serve.ts";
import type { RemoteSources, SourceVerdict } from "../connection/admission.ts";

/**
 * The config a worker runs: `config` with each frontend that asks for port 0
 * on the port the main thread got for it (by frontend name).
 */
export function workerConfig(config: Config, bound: ReadonlyMap<string, number>): Config {
  const copy = structuredClone(config);
  for (const frontend of copy.frontends) {
    if (frontend.listen.port === 0) frontend.listen.port = bound.get(frontend.name) ?? 0;
  }
  return copy;
}

/** Each frontend's bound port, by name. */
function _bound(lb: Lb): Map<string, number> {
  return new Map(lb.frontends.map((f) => [f.name, f.listener.addr.port]));
}

/** What the main thread sends a worker first. */
export interface StartMessage {
  index: number;
  /** 0 for the first start of this index, then one more per restart. */
  generation: number;
  args: string[];
  config: Config;
  /** The counters every thread shares (`SharedCounters.buffer`). */
  shared: SharedArrayBuffer;
}

/** What the main thread sends a worker after the start. */
export type ControlMessage =
  /** A backend's health changed (checked once, in the main thread). */
  | { type: "health"; id: string; up: boolean }
  /** An operator drained or enabled a backend (admin); answer `applied` when `request` is set. */
  | {
    type: "backend";
    id: string;
    action: "drain" | "enable";
    frontends: readonly string[];
    request?: number;
  }
  /** Send your counters (`Tally`) for the admin's one view. */
  | { type: "tally"; request: number }
  /** Plan this config (reload, first phase); answer `prepared`. */
  | { type: "prepare"; reload: number; config: Config }
  /** Apply (true) or drop the plan of reload `reload` (second phase). */
  | { type: "decide"; reload: number; apply: boolean }
  /** The main thread's per-source table let a connection in, or not. */
  | { type: "admitted"; request: number; verdict: SourceVerdict }
  /** Names changed addresses: the pools of this config (names expanded) apply. */
  | { type: "pools"; config: Config };

/** What a worker sends back. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | { type: "log"; lines: string }
  | { type: "connect-failed"; id: string; why: string | undefined }
  | { type: "tally"; request: number; tally: Tally }
  | { type: "prepared"; reload: number; error?: string }
  | { type: "applied"; request: number }
  /** May a connection from `host` come in (per-source limits, the main thread's table)? */
  | { type: "admit"; request: number; host: string }
  /** A connection `admitted` let in has ended. */
  | { type: "release"; key: string }
  /** The pools changed here (reload, DNS): send every backend's health and drain state. */
  | { type: "sync" }
  | { type: "stopped" };

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
  /** Per worker, the sources its open connections hold in the per-source table. */
  readonly #admitted = new Map<number, Map<string, number>>();
  /** Workers holding the plan of the reload in progress, waiting for `decide`. */
  #deciding: { reload: number; workers: number[] } | undefined;

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
    lb.health.watch((backend) => workers.#post(_health(backend)));
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
      this.#deciding = { reload, workers: [...answers.keys()] };
      for (const [index, error] of answers) {
        if (error !== undefined) throw new Error(`worker ${index}: ${error}`);
      }
      const silent = [...this.#live.keys()].filter((index) => !answers.has(index));
      if (silent.length > 0) throw new Error(`worker ${silent[0]} did not answer`);
    },
    decide: (apply) => {
      const deciding = this.#deciding;
      this.#deciding = undefined;
      for (const index of deciding?.workers ?? []) {
        this.#live.get(index)?.postMessage(
          { type: "decide", reload: deciding!.reload, apply } satisfies ControlMessage,
        );
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

  /** A worker is gone: no question waits for it any more. */
  #forget(index: number): void {
    const all = [this.#tallyAsks, this.#prepareAsks, this.#appliedAsks];
    for (const asks of all as Map<number, _Ask<unknown>>[]) {
      for (const ask of asks.values()) {
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
    return new Promise((resolve) => {
      let ready = false;
      const gone = (why: string) => {
        worker.terminate();
        if (this.#live.get(index) === worker) this.#live.delete(index);
        this.#leftBehind(index);
        if (!ready) return resolve(why);
        this.#died(index, generation, why);
      };
      worker.onmessage = (event: MessageEvent<WorkerReply>) => {
        const reply = event.data;
        if (reply.type === "ready") {
          ready = true;
          if (startedWith !== this.#lb.config) {
            // A reload applied while it started, without it: start it again on the new config.
            worker.onmessage = worker.onerror = null;
            worker.terminate();
            this.#leftBehind(index);
            return void this.#spawn(index, generation + 1).then(resolve);
          }
          this.#live.set(index, worker);
          // Start from the main thread's view: names' addresses, health and drain state.
          worker.postMessage(
            { type: "pools", config: this.#workerConfig() } satisfies ControlMessage,
          );
          this.#sync(worker);
          resolve(undefined);
        } else if (reply.type === "sync") {
          this.#sync(worker);
        } else if (reply.type === "log") {
          this.#options.onAccessLog?.(reply.lines);
        } else if (reply.type === "connect-failed") {
          // Passive health across threads: the main thread decides, once.
          for (const backend of _backends(this.#lb, reply.id)) {
            this.#lb.health.report(backend, false, reply.why);
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
          if (this.#live.size === 0) this.#onStopped?.();
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
        worker.postMessage(_health(backend));
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

  /** The names' addresses changed here: every worker takes the new pools, then syncs. */
  followPools(): void {
    this.#post({ type: "pools", config: this.#workerConfig() });
  }

  /** The config a worker runs now: the main thread's, names expanded, on its ports. */
  #workerConfig(): Config {
    return workerConfig(expandedConfig(this.#lb), _bound(this.#lb));
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

  /** A worker died after it started: logged, restarted after a pause unless lb is stopping. */
  #died(index: number, generation: number, why: string): void {
    if (this.#stopping) return;
    const delay = this.#options.restartDelayMs ?? 1000;
    this.#options.logger.log("lb", `worker ${index} died (${why}); restarting in ${delay}ms`);
    setTimeout(async () => {
      if (this.#stopping) return;
      // Again, now that the thread has surely stopped: anything it counted after
      // the first reclaim (it may run on briefly after `terminate`) is taken back.
      this.#options.counters.reclaim(index);
      const failed = await this.#spawn(index, generation + 1);
      this.#restarts++;
      if (failed) this.#options.logger.log("lb", `worker ${index} did not restart: ${failed}`);
    }, delay);
  }

  /**
   * Waits until every worker has drained after SIGINT/SIGTERM (each handles
   * the signal itself), then ends them; gives up after `timeoutMs`.
   */
  async stopped(timeoutMs: number): Promise<void> {
    this.#stopping = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (this.#live.size > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.#onStopped = resolve),
        new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
      ]);
    }
    clearTimeout(timer);
    for (const worker of this.#live.values()) worker.terminate();
    this.#live.clear();
  }
}

/** Every backend with `id` in any of `lb`'s frontends. */
function _backends(lb: Lb, id: string): Backend[] {
  return lb.frontends.flatMap((f) => f.pool.backends.filter((b) => b.id === id));
}

function _health(backend: Backend): ControlMessage {
  return { type: "health", id: backend.id, up: backend.healthy };
}

/** The worker's own lb and metrics, once open: the main thread's messages apply to them. */
let _lb: Lb | undefined;
let _metrics: Metrics | undefined;
/** The reload the main thread asked for, planned here and waiting for its decision. */
let _deciding: { reload: number; decide: (apply: boolean) => void } | undefined;
/** A plan no decision reaches in this long is dropped (the main thread gave up on it). */
const DECIDE_TIMEOUT_MS = 30_000;

/** A worker: serves like the main thread (see `serve`), without admin or workers of its own. */
async function _work(start: StartMessage): Promise<void> {
  const post = (reply: WorkerReply) => _scope.postMessage(reply);
  const logger = new Logger((line) => stderrSink(line.replace(" ", ` worker${start.index} `)));
  await serve(start.config, {
    flags: parseFlags(start.args),
    logger,
    main: false,
    counters: SharedCounters.attach(start.shared, start.index),
    remoteSources: _remoteSources,
    onReady: () => post({ type: "ready" }),
    forwardAccessLog: (lines) => post({ type: "log", lines }),
    followHealth: (backend, why) => post({ type: "connect-failed", id: backend.id, why }),
    onLb: (lb, metrics) => {
      _lb = lb;
      _metrics = metrics;
    },
    onFailure: (message) => post({ type: "failed", message: `worker ${start.index}: ${message}` }),
  });
  post({ type: "stopped" });
  _scope.close();
}

/** Applies one of the main thread's messages to this worker's lb. */
function _control(lb: Lb, message: ControlMessage): void {
  const post = (reply: WorkerReply) => _scope.postMessage(reply);
  switch (message.type) {
    case "health":
      for (const backend of _backends(lb, message.id)) backend.health.follow(message.up);
      break;
    case "backend":
      for (const frontend of lb.frontends) {
        if (!message.frontends.includes(frontend.name)) continue;
        for (const backend of frontend.pool.backends) {
          if (backend.id !== message.id) continue;
          if (message.action === "drain") backend.drain();
          else backend.enable();
        }
      }
      if (message.request !== undefined) post({ type: "applied", request: message.request });
      break;
    case "tally":
      post({ type: "tally", request: message.request, tally: _metrics!.tally(lb) });
      break;
    case "prepare": {
      const reloadId = message.reload;
      // Plans here, says so, and applies or drops the plan as the main thread decides.
      const peers: ReloadPeers = {
        prepare: async () => {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const apply = await new Promise<boolean>((decide) => {
            _deciding = { reload: reloadId, decide };
            timer = setTimeout(() => decide(false), DECIDE_TIMEOUT_MS);
            post({ type: "prepared", reload: reloadId });
          });
          clearTimeout(timer);
          if (!apply) throw new Error("refused by another thread");
        },
        decide: () => {},
      };
      reload(lb, message.config, peers).then(() => post({ type: "sync" }), (error) => {
        // Planning failed before `prepare`: say why; after it, the main thread already knows.
        if (_deciding?.reload !== reloadId) {
          post({ type: "prepared", reload: reloadId, error: describe(error) });
        }
      }).finally(() => {
        if (_deciding?.reload === reloadId) _deciding = undefined;
      });
      break;
    }
    case "pools":
      void followPools(lb, message.config).then(() => post({ type: "sync" }));
      break;
    case "decide":
      if (_deciding?.reload === message.reload) _deciding.decide(message.apply);
      break;
    case "admitted":
      _admissions.get(message.request)?.(message.verdict);
      _admissions.delete(message.request);
      break;
  }
}

/** Admissions asked of the main thread's per-source table, by request. */
const _admissions = new Map<number, (verdict: SourceVerdict) => void>();
let _admissionId = 0;

/** The per-source table, the main thread's (one table over every thread). */
const _remoteSources: RemoteSources = {
  admit(host) {
    const request = ++_admissionId;
    return new Promise((resolve) => {
      _admissions.set(request, resolve);
      _scope.postMessage({ type: "admit", request, host });
    });
  },
  release(key) {
    _scope.postMessage({ type: "release", key });
  },
};

/** The worker side of `self` (the main thread's types know only Window). */
const _scope = globalThis as unknown as {
  postMessage(message: WorkerReply): void;
  onmessage: ((event: MessageEvent<StartMessage | ControlMessage>) => void) | null;
  close(): void;
};

if ("WorkerGlobalScope" in globalThis) {
  // As in main.ts: a stray rejection belongs to one connection, not to the worker.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    stderrSink(`lb: internal error: ${describe(event.reason)}`);
  });
  _scope.onmessage = (event: MessageEvent<StartMessage | ControlMessage>) => {
    const message = event.data;
    if (!("type" in message)) return void _work(message);
    if (_lb) _control(_lb, message);
  };
}
