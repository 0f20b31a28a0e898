/**
 * The command line: every flag, the usage text, and `parseFlags`, which only
 * turns the arguments into named values (`applyFlags` in load.ts reads them).
 * @module
 */
import { parseArgs } from "node:util";
import { STRATEGY_NAMES } from "../balancing/strategies/mod.ts";
import { ConfigError } from "../common/errors.ts";
import { DEFAULT_FRONTEND_PORT } from "./config.ts";

/** The usage text `lb --help` prints. */
export const USAGE = `Usage: lb [options] -p BACKEND [-p BACKEND ...]

A TCP (layer-4) load balancer.

Options:
  -f, --frontend [HOST:]PORT   listen address (default: all interfaces, port ${DEFAULT_FRONTEND_PORT})
  -p, --backend BACKEND        backend PORT (on 127.0.0.1), HOST:PORT or [IPv6]:PORT, repeatable;
                               a HOST name, or srv:_SERVICE._PROTO.NAME, is followed through DNS;
                               options after commas: weight=N, backup, maxconn=N,
                               proxy=v1|v2 (send a PROXY protocol header),
                               sni=NAME (route TLS by server name; *.example.com, repeatable),
                               tls, tls-name=NAME, tls-verify=off (connect over TLS)
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
      --drain-delay DUR        on SIGTERM, keep accepting this long while /ready says 503,
                               then drain (default: 0)
      --resolver IP[:PORT]     DNS server for backends given by name, repeatable
                               (default: the system's)
      --resolve-interval DUR   time between lookups of those names, 0 resolves once
                               (default: 10s)
      --admin [HOST:]PORT      admin HTTP endpoint: /metrics, /stats, stats page (default: off)
      --admin-token-file PATH  admin requests need "Authorization: Bearer TOKEN", TOKEN the
                               file's content; required when --admin is not loopback
      --admin-insecure         allow --admin on a non-loopback address without a token
      --log FORMAT             access log: text, json or off (default: text)
      --log-file PATH          write the access log to PATH instead of stdout
      --config PATH            read a JSON (JSONC) config file; flags override it
      --check                  validate the configuration and exit
      --workers N|auto         accept loops sharing the port; auto: one per core (default: auto)
      --tls-cert FILE          terminate TLS with this certificate (PEM), repeatable with --tls-key;
                               with several, the client's server name picks one
      --tls-key FILE           the private key (PEM) of the --tls-cert at the same position
      --tls-alpn LIST          ALPN protocols to advertise, comma-separated (e.g. h2,http/1.1)
      --tls-ca FILE            CA certificates (PEM) trusted for backends with -p ...,tls
      --sni-timeout DUR        bound on the wait for a TLS ClientHello where backends have sni=
                               (default: 5s)
      --accept-proxy           require a PROXY protocol v1/v2 header on every connection
      --proxy-timeout DUR      bound on the wait for that header (default: 3s)
      --proxy-from CIDR        peers allowed to send it, repeatable (default: any)
      --allow CIDR             let in only clients in these ranges, repeatable (default: any)
      --deny CIDR              refuse clients in these ranges, repeatable; wins over --allow
      --max-conns-per-source N  most open connections from one client (default: 0, no limit)
      --conn-rate-per-source N/DUR  most new connections from one client per window, e.g. 20/1s
      --source-table-size N    most clients tracked for those two limits (default: 100000)
      --source-ipv6-prefix N   IPv6 clients in one /N count as one client (default: 64)
  -h, --help                   print this help
  -v, --version                print the version

Durations: 500ms, 2s, 5m, 1h.
Signals: SIGHUP re-reads --config (flags still override it, a bad file is
refused and the running config kept); SIGTERM stops accepting and drains.

Examples:
  lb -f 8080 -p 8101 -p 8102 -p 8103
  lb -f 127.0.0.1:9000 -p 10.0.0.5:80,weight=3 -p 10.0.0.6:80 -p 10.0.0.7:80,backup
  lb -p 8101 -p 8102 --balance leastconn --idle-timeout 5m --admin 9090
  lb -p backend.example:8080 -p srv:_http._tcp.spare.example --resolver 10.0.0.2`;

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
  "drain-delay": { type: "string" },
  resolver: { type: "string", multiple: true },
  "resolve-interval": { type: "string" },
  admin: { type: "string" },
  "admin-token-file": { type: "string" },
  "admin-insecure": { type: "boolean" },
  log: { type: "string" },
  "log-file": { type: "string" },
  config: { type: "string" },
  check: { type: "boolean" },
  workers: { type: "string" },
  "accept-proxy": { type: "boolean" },
  "sni-timeout": { type: "string" },
  "tls-cert": { type: "string", multiple: true },
  "tls-key": { type: "string", multiple: true },
  "tls-alpn": { type: "string" },
  "tls-ca": { type: "string" },
  allow: { type: "string", multiple: true },
  deny: { type: "string", multiple: true },
  "max-conns-per-source": { type: "string" },
  "conn-rate-per-source": { type: "string" },
  "source-table-size": { type: "string" },
  "source-ipv6-prefix": { type: "string" },
  "proxy-timeout": { type: "string" },
  "proxy-from": { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

/** A long flag name, without the dashes. */
export type FlagName = keyof typeof OPTIONS;

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
