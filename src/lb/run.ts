import { AccessLog } from "../observability/access_log.ts";
import { formatHostPort } from "../common/address.ts";
import { Admin } from "../observability/admin.ts";
import { defaultConfig } from "../config/config.ts";
import { ConfigError } from "../common/errors.ts";
import { checkFdLimit } from "./fd_limit.ts";
import { loadConfigFile } from "../config/file.ts";
import { applyFlags, type Flags, parseFlags, USAGE, validateConfig } from "../config/flags.ts";
import { Lb } from "./lb.ts";
import { reloadFromFile } from "./reload.ts";
import { Logger, stderrSink } from "../observability/log.ts";
import { Metrics } from "../observability/metrics.ts";
import { describe } from "../connection/proxy.ts";
import { VERSION } from "../common/version.ts";
import { checkWorkers, Workers } from "../workers/worker.ts";

const encoder = new TextEncoder();

function print(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

/**
 * Runs lb as a program: parses `args`, starts the frontends, and on
 * SIGINT/SIGTERM stops accepting, drains and returns. A second signal exits
 * at once.
 *
 * @param args Command-line arguments.
 * @returns The exit status: 0 after a clean stop, 1 when a listener cannot
 * open, 2 on bad flags or config.
 */
export async function run(args: string[]): Promise<number> {
  let config;
  let check = false;
  let flags: Flags;
  let fromFile = false;
  try {
    flags = parseFlags(args);
    if (flags.help) {
      print(USAGE);
      return 0;
    }
    if (flags.version) {
      print(`lb ${VERSION}`);
      return 0;
    }
    check = flags.check;
    fromFile = flags.config !== undefined;
    const base = flags.config === undefined ? defaultConfig() : await loadConfigFile(flags.config);
    config = validateConfig(applyFlags(base, flags));
    checkWorkers(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // One line (the usage text only where the seed printed it: no backends).
    const hint = error.showUsage || fromFile ? "" : " (lb --help for usage)";
    stderrSink(`lb: ${error.message}${hint}`);
    if (error.showUsage && !fromFile) stderrSink(`\n${USAGE}`);
    return 2;
  }
  if (check) {
    const backends = config.frontends.reduce((n, f) => n + f.backends.length, 0);
    const what = flags.config === undefined ? "configuration" : flags.config;
    print(`lb: ${what} is valid (${config.frontends.length} frontend(s), ${backends} backend(s))`);
    return 0;
  }

  const logger = new Logger();
  // SIGHUP re-reads the config file (flags still override it). Registered
  // before the first await: Deno only starts listening once the event loop
  // turns, and a SIGHUP right after "listening on" must not be lost.
  let reloadable: Lb | undefined = undefined;
  Deno.addSignalListener("SIGHUP", () => {
    if (reloadable) void reloadFromFile(reloadable, flags.config, flags);
  });
  // SIGINT/SIGTERM too, for the same reason: a signal right after
  // "listening on" would otherwise kill lb without a drain.
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const stopSignal = new Promise<Deno.Signal>((resolve) => {
    for (const signal of signals) Deno.addSignalListener(signal, () => resolve(signal));
  });
  checkFdLimit(config.maxConns, logger);
  let accessLog: AccessLog;
  try {
    accessLog = await AccessLog.open({ format: config.log, file: config.logFile });
  } catch (error) {
    stderrSink(`lb: cannot open access log ${config.logFile}: ${describe(error)}`);
    return 1;
  }
  const metrics = new Metrics();
  let lb: Lb;
  try {
    lb = Lb.start(config, logger, (session) => {
      metrics.observe(session);
      accessLog.record(session);
    });
  } catch (error) {
    const where = config.frontends.map((f) => formatHostPort(f.listen)).join(", ");
    stderrSink(`lb: cannot listen on ${where}: ${describe(error)}`);
    await accessLog.close();
    return 1;
  }
  reloadable = lb;
  // POST /reload on the admin port.
  const reload = async () => {
    const result = await reloadFromFile(lb, flags.config, flags);
    if (!result.ok) throw new Error(result.message);
    return result.message;
  };
  let admin: Admin | undefined;
  try {
    if (config.admin) admin = Admin.start(config.admin, { lb, metrics, logger, reload });
  } catch (error) {
    stderrSink(`lb: cannot listen on admin ${formatHostPort(config.admin!)}: ${describe(error)}`);
    await lb.shutdown(0);
    await accessLog.close();
    return 1;
  }

  let workers: Workers | undefined;
  if (config.workers > 1) {
    try {
      workers = await Workers.start(config, lb, args);
    } catch (error) {
      stderrSink(`lb: cannot start workers: ${describe(error)}`);
      await lb.shutdown(0);
      await accessLog.close();
      return 1;
    }
  }

  const received = await stopSignal;
  const again = () => {
    logger.log("lb", `second signal: exiting now`);
    accessLog.flushSync();
    Deno.exit(1);
  };
  for (const signal of signals) Deno.addSignalListener(signal, again);
  // Deno closes a listener's socket once its pending accept has ended: wait
  // for that, so that "stopped accepting" is true when it is logged.
  await Promise.all(lb.frontends.map((frontend) => frontend.stop()));
  logger.log("lb", `${received}: stopped accepting on ${lb.describe()}`);
  await lb.shutdown(lb.config.drainTimeout);
  await workers?.stopped(5000); // each drained beside us: allow a little more
  await admin?.shutdown();
  await accessLog.close();
  logger.log("lb", "stopped");
  return 0;
}
