/**
 * The start/stop sequence, written once for the main thread and for each
 * worker: open every listener (access log, frontends, admin) first, announce
 * only when all are open, reload on SIGHUP, drain on SIGINT/SIGTERM (after
 * `--drain-delay`, during which `/ready` says 503 and lb still accepts). The
 * names backends are given by are looked up first, and followed after.
 * @module
 */
import { formatHostPort } from "../common/address.ts";
import { describe } from "../common/errors.ts";
import type { Config } from "../config/config.ts";
import type { Flags } from "../config/flags.ts";
import { AccessLog } from "../observability/access_log.ts";
import { Admin } from "../observability/admin.ts";
import { type Logger, stderrSink } from "../observability/log.ts";
import { Metrics, type Tally } from "../observability/metrics.ts";
import { checkFdLimit } from "./fd_limit.ts";
import { Lb } from "./lb.ts";
import type { Backend } from "../balancing/backend.ts";
import { CertError } from "../tls/certs.ts";
import { DiscoveredBackends } from "./discovered.ts";
import { followDiscovery, reloadFromFlags, type ReloadPeers } from "./reload.ts";
import type { SharedCounters } from "../common/shared_counters.ts";
import type { RemoteSources } from "../connection/admission.ts";

/** Threads started beside the main one, from the main thread's side. */
export interface Helpers {
  /** The main thread received the stop signal: each of them stops accepting and drains too. */
  stop(signal: Deno.Signal): void;
  /** Waits for them to drain after `stop` (each drains itself), up to `timeoutMs`. */
  stopped(timeoutMs: number): Promise<void>;
  /** A reload applies to every thread or to none. */
  readonly peers: ReloadPeers;
  /** Their counters now, for the admin's one view (a thread that died leaves its counters). */
  tallies(): Promise<Tally[]>;
  /** The names' addresses changed here: every thread takes the new pools. */
  followPools(): void;
  /**
   * A second stop signal: each ends its connections now (`killed`) and sends
   * their access-log lines; resolves once all have, or after `timeoutMs`.
   */
  kill(timeoutMs: number): Promise<void>;
  /** An operator's drain or enable (admin), passed on to every thread; resolves once all applied it. */
  backendAction(
    id: string,
    action: "drain" | "enable",
    frontends: readonly string[],
  ): Promise<void>;
}

/** Options for {@link serve}. */
export interface ServeOptions {
  /** The command line lb started with: SIGHUP re-reads the config the same way. */
  flags: Flags;
  logger: Logger;
  /**
   * The main thread: checks the fd limit, serves `--admin`, starts the other
   * workers, and exits at once on a second signal. @default true
   */
  main?: boolean;
  /** Starts the other workers once lb's listeners are open (main thread, `--workers` > 1). */
  startWorkers?: (lb: Lb, accessLog: AccessLog) => Promise<Helpers>;
  /** A worker: send access-log lines to the main thread, the one writer. */
  forwardAccessLog?: (lines: string) => void;
  /** A worker: health is the main thread's; failed connects go there (see `LbOptions`). */
  followHealth?: (backend: Backend, ok: boolean, why: string | undefined) => void;
  /** Called with the lb once it is open (a worker applies the main thread's messages to it). */
  onLb?: (lb: Lb, metrics: Metrics, accessLog: AccessLog) => void;
  /** Counters shared by every thread (`--workers` above 1). @default none */
  counters?: SharedCounters | undefined;
  /** A worker: per-source limits are asked of the main thread's table (see `LbOptions`). */
  remoteSources?: RemoteSources;
  /** Called once every listener is open and announced. */
  onReady?: () => void;
  /**
   * A worker: the main thread's word to stop, as a stop signal would (a
   * worker started after the signal never sees it).
   */
  stop?: Promise<Deno.Signal>;
  /** Where the one line goes when something cannot start. @default `lb: LINE` on stderr */
  onFailure?: (message: string) => void;
  /** The admin token read from `--admin-token-file` (main thread). @default none needed */
  adminToken?: string | undefined;
}

const STOP_SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];

/** How much longer than its own drain the main thread waits for the workers' (their last log lines). */
const WORKER_STOP_MARGIN_MS = 2000;

/**
 * Serves `config` until SIGINT or SIGTERM, then stops accepting and drains.
 *
 * @returns The exit status: 0 after a clean stop, 1 when a listener, the
 * access log or a worker cannot start (one line on stderr says which).
 */
export async function serve(config: Config, options: ServeOptions): Promise<number> {
  const { logger } = options;
  const main = options.main ?? true;
  // Signals are registered before the first await: Deno only starts
  // listening for them once the event loop turns, and a signal right after
  // "listening on" must not be lost (nor kill lb without a drain).
  // A worker reloads when the main thread tells it to, never on its own.
  let reloadable: (() => Promise<unknown>) | undefined;
  const onHup = () => void reloadable?.();
  if (main) Deno.addSignalListener("SIGHUP", onHup);
  let onStop!: (signal: Deno.Signal) => void;
  const stopSignal = new Promise<Deno.Signal>((resolve) => onStop = resolve);
  void options.stop?.then(onStop);
  const stopHandlers = STOP_SIGNALS.map((signal) => [signal, () => onStop(signal)] as const);
  for (const [signal, handler] of stopHandlers) Deno.addSignalListener(signal, handler);
  try {
    if (main) checkFdLimit(config.maxConns, logger);
    return await _serve(config, options, stopSignal, (reload) => reloadable = reload);
  } finally {
    if (main) Deno.removeSignalListener("SIGHUP", onHup);
    for (const [signal, handler] of stopHandlers) Deno.removeSignalListener(signal, handler);
  }
}

async function _serve(
  config: Config,
  options: ServeOptions,
  stopSignal: Promise<Deno.Signal>,
  serving: (reload: () => Promise<unknown>) => void,
): Promise<number> {
  const { flags, logger } = options;
  const main = options.main ?? true;
  const fail = (message: string) => {
    (options.onFailure ?? ((line) => stderrSink(`lb: ${line}`)))(message);
    return 1;
  };

  let log: AccessLog;
  try {
    log = await AccessLog.open({
      format: config.log,
      file: config.logFile,
      ...(options.forwardAccessLog ? { forward: options.forwardAccessLog } : {}),
    });
  } catch (error) {
    return fail(`cannot open access log ${config.logFile}: ${describe(error)}`);
  }
  await using accessLog = log;
  const metrics = new Metrics(options.counters?.thread ?? 0);
  // Names are looked up before the listeners open, so that the first
  // connections find their backends; a name that does not answer is logged
  // and retried, and lb starts all the same.
  const discovery = await DiscoveredBackends.start(config, logger);
  let opened: Lb;
  try {
    opened = Lb.open(config, logger, (session) => {
      metrics.observe(session);
      accessLog.record(session);
    }, {
      discovery,
      joinsPorts: !main,
      ...(options.followHealth ? { followHealth: options.followHealth } : {}),
      ...(options.counters ? { counters: options.counters } : {}),
      ...(options.remoteSources ? { remoteSources: options.remoteSources } : {}),
    });
  } catch (error) {
    await discovery.stop();
    if (error instanceof CertError) return fail(error.message);
    const where = config.frontends.map((f) => formatHostPort(f.listen)).join(", ");
    return fail(`cannot listen on ${where}: ${describe(error)}`);
  }
  await using lb = opened;
  options.onLb?.(lb, metrics, accessLog);
  for (const frontend of config.frontends) {
    for (const backend of frontend.backends) {
      if (backend.tls && backend.tlsVerify === false) {
        logger.log(
          "lb",
          `warning: backend ${backend.id ?? formatHostPort(backend)} is reached over TLS without ` +
            `checking its host name (tls-verify=off)`,
        );
      }
    }
  }
  discovery.follow(() => void followDiscovery(lb).then(() => workers?.followPools()));
  let workers: Helpers | undefined;
  const reload = () => reloadFromFlags(lb, flags, workers?.peers);
  let admin: Admin | undefined;
  if (main && config.admin) {
    try {
      admin = Admin.start(config.admin, {
        lb,
        metrics,
        logger,
        reload,
        token: options.adminToken,
        others: () => workers?.tallies() ?? Promise.resolve([]),
        onBackendAction: (id, action, frontends) => workers?.backendAction(id, action, frontends),
      });
    } catch (error) {
      return fail(`cannot listen on admin ${formatHostPort(config.admin)}: ${describe(error)}`);
    }
  }
  await using _admin = admin;
  if (options.startWorkers) {
    try {
      workers = await options.startWorkers(lb, accessLog);
    } catch (error) {
      return fail(`cannot start workers: ${describe(error)}`);
    }
  }

  lb.start();
  admin?.announce();
  serving(reload);
  options.onReady?.();

  const received = await stopSignal;
  admin?.draining(`${received} received`); // /ready answers 503 from now on
  if (main) _exitOnSecondSignal(lb, accessLog, logger, workers);
  const delay = lb.config.drainDelay;
  // The workers drain beside this thread, within the same delay and timeout.
  const workersDone = Date.now() + delay + lb.config.drainTimeout + WORKER_STOP_MARGIN_MS;
  workers?.stop(received);
  if (delay > 0) {
    logger.log(
      "lb",
      `${received}: /ready answers 503, still accepting for ${delay}ms (drain delay)`,
    );
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  // Deno closes a listener's socket once its pending accept has ended: wait
  // for that, so that "stopped accepting" is true when it is logged.
  await Promise.all(lb.frontends.map((frontend) => frontend.stop()));
  logger.log("lb", `${received}: stopped accepting on ${lb.describe()}`);
  await lb.shutdown(lb.config.drainTimeout);
  await workers?.stopped(Math.max(0, workersDone - Date.now()));
  await admin?.shutdown();
  await accessLog.close();
  logger.log("lb", "stopped");
  return 0;
}

/** Longest wait on a second signal for this thread's connections to end, then for the workers'. */
const KILL_WAIT_MS = 500;

/**
 * A second SIGINT/SIGTERM exits at once with status 1, after one access-log
 * line (end `killed`) for each connection still open, in every thread (the
 * workers' are waited for up to {@link KILL_WAIT_MS}).
 */
function _exitOnSecondSignal(
  lb: Lb,
  accessLog: AccessLog,
  logger: Logger,
  workers: Helpers | undefined,
): void {
  const again = async () => {
    logger.log("lb", `second signal: exiting now`);
    const killed = workers?.kill(2 * KILL_WAIT_MS);
    await lb.kill(KILL_WAIT_MS); // each connection's line is recorded as it ends
    await killed;
    accessLog.flushSync();
    Deno.exit(1);
  };
  for (const signal of STOP_SIGNALS) Deno.addSignalListener(signal, again);
}
