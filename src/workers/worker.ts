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
 * re-reads the config on SIGHUP itself. The admin endpoint would see only the
 * main thread's share, so `--workers` above 1 with `--admin` is refused.
 * @module
 */
import type { Config } from "../config/config.ts";
import { AccessLog } from "../observability/access_log.ts";
import { loadConfigFile } from "../config/file.ts";
import { defaultConfig } from "../config/config.ts";
import { ConfigError } from "../common/errors.ts";
import { applyFlags, parseFlags, validateConfig } from "../config/flags.ts";
import { Lb } from "../lb/lb.ts";
import { Logger, stderrSink } from "../observability/log.ts";
import { describe } from "../connection/proxy.ts";

/**
 * Refuses combinations `--workers` cannot serve correctly.
 *
 * @throws {ConfigError} When `workers` > 1 and the admin endpoint is on.
 */
export function checkWorkers(config: Config): void {
  if (config.workers > 1 && config.admin) {
    throw new ConfigError(
      `--workers ${config.workers} cannot be combined with --admin: each worker keeps its own ` +
        `pools and counters, and the admin endpoint would show one worker's share`,
    );
  }
}

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

/** A worker's own copy of `run`: serve, reload on SIGHUP, drain on SIGINT/SIGTERM. */
async function _serve(start: StartMessage): Promise<void> {
  const post = (reply: WorkerReply) => _scope.postMessage(reply);
  const logger = new Logger((line) => stderrSink(line.replace(" ", ` worker${start.index} `)));
  let accessLog: AccessLog;
  let lb: Lb;
  try {
    accessLog = await AccessLog.open({ format: start.config.log, file: start.config.logFile });
    lb = Lb.start(start.config, logger, (session) => accessLog.record(session));
  } catch (error) {
    post({ type: "failed", message: `worker ${start.index}: ${describe(error)}` });
    return;
  }
  const bound = _bound(lb);
  Deno.addSignalListener("SIGHUP", async () => {
    try {
      const flags = parseFlags(start.args);
      const base = flags.config === undefined
        ? defaultConfig()
        : await loadConfigFile(flags.config);
      const summary = await lb.reload(workerConfig(validateConfig(applyFlags(base, flags)), bound));
      logger.log("reload", `applied ${flags.config ?? "flags"}: ${summary}`);
    } catch (error) {
      logger.log("reload", `rejected, old config kept: ${describe(error)}`);
    }
  });
  post({ type: "ready" });
  await new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, resolve);
  });
  await Promise.all(lb.frontends.map((frontend) => frontend.stop()));
  await lb.shutdown(lb.config.drainTimeout);
  await accessLog.close();
  logger.log("lb", "stopped");
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
  _scope.onmessage = (event) => void _serve(event.data);
}
