/**
 * `--workers N`: N accept loops on the same ports. The main thread serves as
 * before; N-1 Workers each run their own {@link Lb} on the same listen
 * addresses through `SO_REUSEPORT` (the kernel spreads new connections over
 * the listeners), which needs Deno's `--unstable-net` (`"unstable": ["net"]`
 * in deno.json, `--unstable-net` when compiling).
 *
 * What is per worker: the pools (round-robin position, connection counts),
 * passive and active health (each worker checks every backend itself), the
 * `--max-conns` gate (each worker admits its share, ceil(max-conns / N)), the
 * idle sweep, the access log writer, and the drain on SIGTERM. Each worker
 * runs the same start/stop sequence as the main thread (`serve`) and re-reads
 * the config on SIGHUP itself. The admin endpoint would see only the main
 * thread's share, so `--workers` above 1 with `--admin` is refused
 * (`validateConfig`).
 * @module
 */
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
interface StartMessage {
  index: number;
  args: string[];
  config: Config;
}

/** What a worker sends back. */
type WorkerReply = { type: "ready" } | { type: "failed"; message: string } | { type: "stopped" };

/** The running workers, from the main thread's side. */
export class Workers {
  #workers: Worker[];
  #stopped: Promise<void>;

  private constructor(workers: Worker[], stopped: Promise<void>) {
    this.#workers = workers;
    this.#stopped = stopped;
  }

  /** How many Workers run beside the main thread. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Starts `config.workers - 1` Workers serving `lb`'s frontends (on the
   * ports `lb` bound) and waits until each listens.
   *
   * @param args The command line, re-read by each worker on SIGHUP.
   * @throws {Error} When a worker cannot start or listen; those started are terminated.
   */
  static async start(config: Config, lb: Lb, args: string[]): Promise<Workers> {
    const bound = _bound(lb);
    const workers: Worker[] = [];
    const ready: Promise<void>[] = [];
    const stopped: Promise<void>[] = [];
    for (let index = 1; index < config.workers; index++) {
      const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      workers.push(worker);
      let onReady!: () => void;
      let onFailed!: (error: Error) => void;
      ready.push(
        new Promise<void>((resolve, reject) => {
          onReady = resolve;
          onFailed = reject;
        }),
      );
      stopped.push(
        new Promise<void>((resolve) => {
          worker.onmessage = (event: MessageEvent<WorkerReply>) => {
            const reply = event.data;
            if (reply.type === "ready") onReady();
            else if (reply.type === "failed") onFailed(new Error(reply.message));
            else resolve();
          };
          worker.onerror = (event) => {
            event.preventDefault();
            const error = new Error(`worker ${index}: ${event.message}`);
            onFailed(error);
            stderrSink(`lb: ${error.message}`);
            resolve();
          };
        }),
      );
      const message: StartMessage = { index, args, config: workerConfig(config, bound) };
      worker.postMessage(message);
    }
    try {
      await Promise.all(ready);
    } catch (error) {
      for (const worker of workers) worker.terminate();
      throw error;
    }
    return new Workers(workers, Promise.all(stopped).then(() => {}));
  }

  /**
   * Waits until every worker has drained after SIGINT/SIGTERM (each handles
   * the signal itself), then ends them; gives up after `timeoutMs`.
   */
  async stopped(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#stopped,
      new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
    for (const worker of this.#workers) worker.terminate();
  }
}

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
    onFailure: (message) => post({ type: "failed", message: `worker ${start.index}: ${message}` }),
  });
  post({ type: "stopped" });
  _scope.close();
}

/** The worker side of `self` (the main thread's types know only Window). */
const _scope = globalThis as unknown as {
  postMessage(message: WorkerReply): void;
  onmessage: ((event: MessageEvent<StartMessage>) => void) | null;
  close(): void;
};

if ("WorkerGlobalScope" in globalThis) {
  // As in main.ts: a stray rejection belongs to one connection, not to the worker.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    stderrSink(`lb: internal error: ${describe(event.reason)}`);
  });
  _scope.onmessage = (event) => void _work(event.data);
}
