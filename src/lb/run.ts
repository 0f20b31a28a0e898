import { ConfigError } from "../common/errors.ts";
import { VERSION } from "../common/version.ts";
import type { Config } from "../config/config.ts";
import { type Flags, parseFlags, USAGE } from "../config/flags.ts";
import { loadConfig } from "../config/load.ts";
import { readAdminToken } from "../observability/admin_guard.ts";
import { Logger, stderrSink } from "../observability/log.ts";
import { Workers } from "../workers/supervisor.ts";
import { SharedCounters } from "../common/shared_counters.ts";
import { checkNames } from "./discovered.ts";
import { serve } from "./serve.ts";
import { CertError, CertStore, readCaCerts } from "../tls/certs.ts";

const encoder = new TextEncoder();

function print(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

/**
 * Runs lb as a program: parses `args`, loads the config, and serves it until
 * SIGINT/SIGTERM (see {@link serve}). A second signal exits at once.
 *
 * @param args Command-line arguments.
 * @returns The exit status: 0 after a clean stop (or `--help`, `--version`,
 * `--check`), 1 when a listener, the access log or a worker cannot start, 2
 * on bad flags or config (an unreadable config or admin token file
 * included, and with `--check` a backend name that does not resolve). (A forced exit on a second signal is 1; an internal error is
 * 70, set by main.ts.)
 */
export async function run(args: string[]): Promise<number> {
  let flags: Flags | undefined;
  let config: Config;
  let adminToken: string | undefined;
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
    config = await loadConfig(flags);
    if (config.admin && config.adminTokenFile !== null) {
      adminToken = await readAdminToken(config.adminTokenFile);
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // One line (the usage text only where the seed printed it: no backends).
    const fromFile = flags?.config !== undefined;
    const hint = error.showUsage || fromFile ? "" : " (lb --help for usage)";
    stderrSink(`lb: ${error.message}${hint}`);
    if (error.showUsage && !fromFile) stderrSink(`\n${USAGE}`);
    return 2;
  }
  if (flags.check) {
    // A name that does not resolve is an error here only: lb itself starts and keeps trying.
    let names: { names: number; addresses: number };
    try {
      // Certificates and keys (paired) and --tls-ca, as lb would read them at start.
      for (const frontend of config.frontends) if (frontend.tls) CertStore.load(frontend.tls.certs);
      readCaCerts(config.tlsCa);
      names = await checkNames(config);
    } catch (error) {
      if (!(error instanceof ConfigError) && !(error instanceof CertError)) throw error;
      stderrSink(`lb: ${error.message}`);
      return 2;
    }
    const backends = config.frontends.reduce((n, f) => n + f.backends.length, 0);
    const what = flags.config ?? "configuration";
    const resolved = names.names === 0
      ? ""
      : `, ${names.names} name(s) resolved to ${names.addresses} address(es)`;
    print(
      `lb: ${what} is valid (${config.frontends.length} frontend(s), ${backends} backend(s)${resolved})`,
    );
    return 0;
  }
  const logger = new Logger();
  const counters = config.workers > 1 ? SharedCounters.create(config.workers) : undefined;
  return await serve(config, {
    flags,
    logger,
    adminToken,
    counters,
    ...(counters
      ? {
        startWorkers: (lb, accessLog) =>
          Workers.start(config, lb, args, {
            logger,
            counters,
            onAccessLog: (lines) => accessLog.recordLines(lines),
          }),
      }
      : {}),
  });
}
