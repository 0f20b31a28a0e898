/**
 * `--workers N`: N accept loops on the same ports. The main thread serves as
 * before; N-1 Workers each run their own {@link Lb} on the same listen
 * addresses through `SO_REUSEPORT` (the kernel spreads new connections over
 * the listeners), which needs Deno's `--unstable-net` (`"unstable": ["net"]`
 * in deno.json, `--unstable-net` when compiling).
 *
 * Shared through the main thread: health (checked once, there; a worker
 * sends its failed connects and follows every state change at once, so a
 * change is logged once) and the access log (one writer: workers send whole
 * lines). The main thread also restarts a worker that dies and starts
 * without one that cannot start.
 *
 * Still per worker: the pools (round-robin position, connection counts), the
 * `--max-conns` gate (each admits its share, ceil(max-conns / N)), per-source
 * limits, DNS lookups, the idle sweep and the drain on SIGTERM. Each worker
 * runs the same start/stop sequence as the main thread (`serve`) and re-reads
 * the config on SIGHUP itself. The admin endpoint would see only the main
 * thread's counters, so `--workers` above 1 with `--admin` is refused
 * (`validateConfig`) until one view lands (issue #9).
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import type { Config } from "../config/config.ts";
import { describe } from "../common/errors.ts";
import { parseFlags } from "../config/flags.ts";
import type { Lb } from "../lb/lb.ts";
import { serve } from "../lb/serve.ts";
import { Logger, stderrSink } from "../observability/log.ts";

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

/** What the main thread sends a worker. */
export interface StartMessage {
  index: number;
  /** 0 for the first start of this index, then one more per restart. */
  generation: number;
  args: string[];
  config: Config;
}

/** What a worker sends back. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | { type: "log"; lines: string }
  | { type: "connect-failed"; id: string; why: string | undefined }
  | { type: "stopped" };

/** What the main thread sends a worker after the start: a backend's health changed. */
export interface HealthMessage {
  type: "health";
  id: string;
  up: boolean;
}

/** Options for {@link Workers.start}. */
export interface WorkersOptions {
  /** Where warnings and restarts are logged. */
  logger: Logger;
  /** The Worker module. @default this module (the compile task includes it) */
  module?: URL;
  /** Wait before restarting a worker that died. @default 1000 */
  restartDelayMs?: number;
  /** Takes a worker's access-log lines (whole lines): the main thread is the one writer. */
  onAccessLog?: (lines: string) => void;
}

/**
 * The other accept loops, from the main thread's side: starts them, restarts
 * one that dies (its connections are lost, nobody else's), and waits for
 * them to drain on SIGINT/SIGTERM. A worker that cannot start (a compiled
 * binary without the worker module, say) leaves lb serving with the loops it
 * has, with one warning naming the cause: never a failed start.
 */
export class Workers {
  readonly #lb: Lb;
  readonly #args: string[];
  readonly #options: WorkersOptions;
  readonly #live = new Map<number, Worker>();
  readonly #stoppedOnes = new Set<number>();
  #stopping = false;
  #restarts = 0;
  #onStopped: (() => void) | undefined;

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
   * @param args The command line, re-read by each worker on SIGHUP.
   */
  static async start(
    config: Config,
    lb: Lb,
    args: string[],
    options: WorkersOptions,
  ): Promise<Workers> {
    const workers = new Workers(lb, args, options);
    // Health is checked once, here; every worker follows each change at once.
    lb.health.watch((backend) => {
      for (const worker of workers.#live.values()) worker.postMessage(_health(backend));
    });
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
        this.#live.delete(index);
        if (!ready) return resolve(why);
        this.#died(index, generation, why);
      };
      worker.onmessage = (event: MessageEvent<WorkerReply>) => {
        const reply = event.data;
        if (reply.type === "ready") {
          ready = true;
          this.#live.set(index, worker);
          for (const frontend of this.#lb.frontends) { // start from the main thread's view
            for (const backend of frontend.pool.backends) {
              worker.postMessage(_health(backend));
            }
          }
          resolve(undefined);
        } else if (reply.type === "log") {
          this.#options.onAccessLog?.(reply.lines);
        } else if (reply.type === "connect-failed") {
          // Passive health across threads: the main thread decides, once.
          for (const backend of _backends(this.#lb, reply.id)) {
            this.#lb.health.report(backend, false, reply.why);
          }
        } else if (reply.type === "failed") {
          gone(reply.message);
        } else {
          this.#stoppedOnes.add(index);
          this.#live.delete(index);
          if (this.#live.size === 0) this.#onStopped?.();
        }
      };
      worker.onerror = (event) => {
        event.preventDefault();
        gone(event.message);
      };
      const config = workerConfig(this.#lb.config as Config, _bound(this.#lb));
      const message: StartMessage = { index, generation, args: this.#args, config };
      worker.postMessage(message);
    });
  }

  /** A worker died after it started: logged, restarted after a pause unless lb is stopping. */
  #died(index: number, generation: number, why: string): void {
    if (this.#stopping) return;
    const delay = this.#options.restartDelayMs ?? 1000;
    this.#options.logger.log("lb", `worker ${index} died (${why}); restarting in ${delay}ms`);
    setTimeout(async () => {
      if (this.#stopping) return;
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

function _health(backend: Backend): HealthMessage {
  return { type: "health", id: backend.id, up: backend.healthy };
}

/** The worker's own lb, once open: health messages apply to it. */
let _lb: Lb | undefined;

/** A worker: serves like the main thread (see `serve`), without admin or workers of its own. */
async function _work(start: StartMessage): Promise<void> {
  const post = (reply: WorkerReply) => _scope.postMessage(reply);
  const logger = new Logger((line) => stderrSink(line.replace(" ", ` worker${start.index} `)));
  const bound = new Map(start.config.frontends.map((f) => [f.name, f.listen.port]));
  await serve(start.config, {
    flags: parseFlags(start.args),
    logger,
    main: false,
    adjust: (config) => workerConfig(config, bound),
    onReady: () => post({ type: "ready" }),
    forwardAccessLog: (lines) => post({ type: "log", lines }),
    followHealth: (backend, why) => post({ type: "connect-failed", id: backend.id, why }),
    onLb: (lb) => _lb = lb,
    onFailure: (message) => post({ type: "failed", message: `worker ${start.index}: ${message}` }),
  });
  post({ type: "stopped" });
  _scope.close();
}

/** The worker side of `self` (the main thread's types know only Window). */
const _scope = globalThis as unknown as {
  postMessage(message: WorkerReply): void;
  onmessage: ((event: MessageEvent<StartMessage | HealthMessage>) => void) | null;
  close(): void;
};

if ("WorkerGlobalScope" in globalThis) {
  // As in main.ts: a stray rejection belongs to one connection, not to the worker.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    stderrSink(`lb: internal error: ${describe(event.reason)}`);
  });
  _scope.onmessage = (event: MessageEvent<StartMessage | HealthMessage>) => {
    const message = event.data;
    if (!("type" in message)) return void _work(message);
    if (_lb) {
      for (const backend of _backends(_lb, message.id)) backend.health.follow(message.up);
    }
  };
}
