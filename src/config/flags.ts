import { ANY_HOST } from "../connection/listen.ts";
import { parseArgs } from "node:util";
import { formatHostPort, parseHostPort, parsePort } from "../common/address.ts";
import { parseBackendSpec, wholeNumber } from "./backend_spec.ts";
import { STRATEGY_NAMES } from "../balancing/strategies/mod.ts";
import { type Config, DEFAULT_FRONTEND_PORT, type LogFormat } from "./config.ts";
import { parseDuration } from "./duration.ts";
import { ConfigError } from "../common/errors.ts";

/** The usage text `lb --help` prints. */
export const USAGE = `Usage: lb [options] -p BACKEND [-p BACKEND ...]

A TCP (layer-4) load balancer.

Options:
  -f, --frontend [HOST:]PORT   listen address (default: all interfaces, port ${DEFAULT_FRONTEND_PORT})
  -p, --backend BACKEND        backend PORT (on 127.0.0.1), HOST:PORT or [IPv6]:PORT, repeatable;
                               options after commas: weight=N, backup, maxconn=N
  -b, --balance NAME           ${STRATEGY_NAMES.join(", ")} (default: roundrobin)
      --health-interval DUR    time between TCP health checks, 0 disables (default: 2s)
      --health-timeout DUR     bound on one health check (default: 1s)
      --rise N                 successes in a row that bring a backend up (default: 2)
      --fall N                 failures in a row that take a backend down (default: 3)
      --retries N              other backends tried after a failed connect (default: all)
      --connect-timeout DUR    bound on one backend connect (default: 5s)
      --idle-timeout DUR       close connections idle this long, 0 is off (default: 0)
      --max-conns N            most client connections at once, 0 is no limit (default: 0)
      --drain-timeout DUR      on SIGTERM, wait this long for open connections (default: 30s)
      --admin [HOST:]PORT      admin HTTP endpoint: /metrics, /stats, stats page (default: off)
      --log FORMAT             access log: text, json or off (default: text)
      --log-file PATH          write the access log to PATH instead of stdout
      --config PATH            read a JSON (JSONC) config file; flags override it
      --check                  validate the configuration and exit
      --workers N              accept loops sharing the port (default: 1)
  -h, --help                   print this help
  -v, --version                print the version

Durations: 500ms, 2s, 5m, 1h.
Signals: SIGHUP re-reads --config (flags still override it, a bad file is
refused and the running config kept); SIGTERM stops accepting and drains.

Examples:
  lb -f 8080 -p 8101 -p 8102 -p 8103
  lb -f 127.0.0.1:9000 -p 10.0.0.5:80,weight=3 -p 10.0.0.6:80 -p 10.0.0.7:80,backup
  lb -p 8101 -p 8102 --balance leastconn --idle-timeout 5m --admin 9090`;

const OPTIONS = {
  frontend: { type: "string", short: "f" },
  backend: { type: "string", short: "p", multiple: true },
  balance: { type: "string", short: "b" },
  "health-interval": { type: "string" },
  "health-timeout": { type: "string" },
  rise: { type: "string" },
  fall: { type: "string" },
  retries: { type: "string" },
  "connect-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  "max-conns": { type: "string" },
  "drain-timeout": { type: "string" },
  admin: { type: "string" },
  log: { type: "string" },
  "log-file": { type: "string" },
  config: { type: "string" },
  check: { type: "boolean" },
  workers: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

type FlagName = keyof typeof OPTIONS;

/** The command line, parsed but not yet applied to a config. */
export interface Flags {
  help: boolean;
  version: boolean;
  check: boolean;
  config: string | undefined;
  values: Partial<Record<FlagName, string | string[] | boolean>>;
}

/**
 * Parses the command line. Knows every flag; checks names and values are present.
 *
 * @param args The arguments after the program name.
 * @returns The parsed flags.
 * @throws {ConfigError} On an unknown flag, a missing value or a stray argument.
 */
export function parseFlags(args: string[]): Flags {
  const { values, tokens } = parseArgs({
    args,
    options: OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind === "positional") {
      throw new ConfigError(`unexpected argument ${JSON.stringify(token.value)}`);
    }
    if (token.kind !== "option") continue;
    if (!Object.hasOwn(OPTIONS, token.name)) {
      throw new ConfigError(`unknown flag ${JSON.stringify(token.rawName)}`);
    }
    const type = OPTIONS[token.name as FlagName].type;
    if (type === "string" && token.value === undefined) {
      throw new ConfigError(`${token.rawName} needs a value`);
    }
    if (type === "boolean" && token.value !== undefined) {
      throw new ConfigError(`${token.rawName} takes no value`);
    }
  }
  const typed = values as Flags["values"];
  return {
    help: typed.help === true,
    version: typed.version === true,
    check: typed.check === true,
    config: typeof typed.config === "string" ? typed.config : undefined,
    values: typed,
  };
}

/**
 * Applies flags on top of `base` (defaults or a config file): flags override.
 * `-f` and `-p` set the first frontend's listener and backends.
 *
 * @returns The merged config; `base` is not changed.
 * @throws {ConfigError} On a bad value, naming the flag.
 */
export function applyFlags(base: Config, flags: Flags): Config {
  const config = structuredClone(base);
  const v = flags.values;
  const str = (name: FlagName) => v[name] as string | undefined;
  if (config.frontends.length === 0) {
    config.frontends.push({
      name: "main",
      listen: { hostname: ANY_HOST, port: DEFAULT_FRONTEND_PORT },
      balance: "roundrobin",
      backends: [],
    });
  }
  const first = config.frontends[0]!;
  const frontend = str("frontend");
  if (frontend !== undefined) {
    first.listen = parseHostPort(frontend, "-f/--frontend", ANY_HOST, true);
  }
  const backends = v.backend as string[] | undefined;
  if (backends) first.backends = backends.map((b) => parseBackendSpec(b, "-p/--backend"));
  const balance = str("balance");
  if (balance !== undefined) first.balance = balance;

  const duration = (name: FlagName) => {
    const text = str(name);
    return text === undefined ? undefined : parseDuration(text, `--${name}`);
  };
  const count = (name: FlagName, min: number, max: number) => {
    const text = str(name);
    return text === undefined ? undefined : wholeNumber(text, `--${name}`, min, max);
  };
  config.health.interval = duration("health-interval") ?? config.health.interval;
  config.health.timeout = duration("health-timeout") ?? config.health.timeout;
  config.health.rise = count("rise", 1, 1000) ?? config.health.rise;
  config.health.fall = count("fall", 1, 1000) ?? config.health.fall;
  config.retries = count("retries", 0, 1000) ?? config.retries;
  config.connectTimeout = duration("connect-timeout") ?? config.connectTimeout;
  config.idleTimeout = duration("idle-timeout") ?? config.idleTimeout;
  config.maxConns = count("max-conns", 0, 10_000_000) ?? config.maxConns;
  config.drainTimeout = duration("drain-timeout") ?? config.drainTimeout;
  config.workers = count("workers", 1, 256) ?? config.workers;
  const admin = str("admin");
  if (admin !== undefined) config.admin = parseHostPort(admin, "--admin", "127.0.0.1", true);
  const log = str("log");
  if (log !== undefined) config.log = log as LogFormat;
  const logFile = str("log-file");
  if (logFile !== undefined) config.logFile = logFile;
  return config;
}

/**
 * Checks a merged config for what neither flags nor files may leave out.
 *
 * @throws {ConfigError} On the first problem found.
 */
export function validateConfig(config: Config): Config {
  config.frontends.forEach((frontend, i) => {
    const where = config.frontends.length === 1 ? "" : `frontends[${i}] `;
    if (frontend.backends.length === 0) {
      throw new ConfigError(`${where}no backends given: use -p PORT at least once`, {
        showUsage: true,
      });
    }
    if (!STRATEGY_NAMES.includes(frontend.balance)) {
      throw new ConfigError(
        `${where}--balance must be one of ${STRATEGY_NAMES.join(", ")}: got ${
          JSON.stringify(frontend.balance)
        }`,
      );
    }
    parsePort(frontend.listen.port, `${where}--frontend port`, true);
    // A backend's `host:port` is its id in metrics, admin URLs and reloads.
    const ids = frontend.backends.map((b) => formatHostPort(b));
    const twice = ids.find((id, k) => ids.indexOf(id) !== k);
    if (twice !== undefined) {
      throw new ConfigError(`${where}-p/--backend ${twice} is given twice: list each backend once`);
    }
  });
  if (!["text", "json", "off"].includes(config.log)) {
    throw new ConfigError(`--log must be text, json or off: got ${JSON.stringify(config.log)}`);
  }
  if (config.health.interval > 0 && config.health.timeout === 0) {
    throw new ConfigError(`--health-timeout must be more than 0 when checks are on`);
  }
  if (config.connectTimeout === 0) throw new ConfigError(`--connect-timeout must be more than 0`);
  return config;
}
