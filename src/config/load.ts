/**
 * The config pipeline, the same at start, on reload and in every worker:
 * defaults or the config file, then the flags on top, then one validation.
 * @module
 */
import { ANY_HOST } from "../common/address.ts";
import { parseResolver } from "./backend_entry.ts";
import { parseBackendSpec } from "./backend_spec.ts";
import {
  type Config,
  DEFAULT_FRONTEND_PORT,
  defaultAcceptProxy,
  defaultConfig,
  type LogFormat,
} from "./config.ts";
import { ConfigError } from "../common/errors.ts";
import { readRate } from "./rate.ts";
import { parseDuration } from "./duration.ts";
import { loadConfigFile } from "./file.ts";
import type { FlagName, Flags } from "./flags.ts";
import { parseHostPort } from "./host_port.ts";
import { LIMITS, readInt, readWorkers } from "./limits.ts";
import { FieldNames, validateConfig } from "./validate.ts";

/**
 * Builds the config lb runs on from the command line: reads `flags.config`
 * when given (else starts from the defaults), applies the flags, validates.
 *
 * @param flags The parsed command line.
 * @returns The validated config.
 * @throws {ConfigError} On an unreadable or invalid file, a bad flag value, or
 * an invalid result; the message names the flag or the file and field.
 * @example
 * ```ts
 * const config = await loadConfig(parseFlags(Deno.args));
 * ```
 */
export async function loadConfig(flags: Flags): Promise<Config> {
  const base = flags.config === undefined ? defaultConfig() : await loadConfigFile(flags.config);
  const names = new FieldNames(flags.config);
  return validateConfig(applyFlags(base, flags, names), names);
}

/**
 * Applies flags on top of `base` (defaults or a config file): flags override.
 * `-f`, `-p` and `--balance` set the first frontend's listener, backends and
 * strategy. Each value is read (type and range) here; the whole is validated
 * by {@link validateConfig}.
 *
 * @param base The config to start from; not changed.
 * @param flags The parsed command line.
 * @param names Records which fields the flags set, for error messages.
 * @returns The merged config.
 * @throws {ConfigError} On a bad value, naming the flag.
 */
export function applyFlags(base: Config, flags: Flags, names = new FieldNames()): Config {
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
    names.setByFlag("frontends[0].listen", "-f/--frontend");
  }
  const backends = v.backend as string[] | undefined;
  if (backends) {
    first.backends = backends.map((b) => parseBackendSpec(b, "-p/--backend"));
    names.setByFlag("frontends[0].backends", "-p/--backend");
  }
  const resolvers = v.resolver as string[] | undefined;
  if (resolvers) {
    config.resolvers = resolvers.map((text) => parseResolver(text, "--resolver"));
    names.setByFlag("resolvers", "--resolver");
  }
  for (const list of ["allow", "deny"] as const) {
    const cidrs = v[list] as string[] | undefined;
    if (!cidrs) continue;
    config[list] = cidrs;
    names.setByFlag(list, `--${list}`);
  }
  if (v["accept-proxy"] === true) {
    first.acceptProxy ??= defaultAcceptProxy();
    names.setByFlag("frontends[0].acceptProxy", "--accept-proxy");
  }
  const proxyTimeout = str("proxy-timeout");
  const proxyFrom = v["proxy-from"] as string[] | undefined;
  if ((proxyTimeout !== undefined || proxyFrom) && !first.acceptProxy) {
    throw new ConfigError(`--proxy-timeout and --proxy-from need --accept-proxy`);
  }
  if (proxyTimeout !== undefined) {
    first.acceptProxy!.timeout = parseDuration(proxyTimeout, "--proxy-timeout");
    names.setByFlag("frontends[0].acceptProxy.timeout", "--proxy-timeout");
  }
  if (proxyFrom) {
    first.acceptProxy!.from = proxyFrom;
    names.setByFlag("frontends[0].acceptProxy.from", "--proxy-from");
  }
  const certs = v["tls-cert"] as string[] | undefined;
  const keys = v["tls-key"] as string[] | undefined;
  if (certs || keys) {
    if ((certs?.length ?? 0) !== (keys?.length ?? 0)) {
      throw new ConfigError(
        `--tls-cert and --tls-key go in pairs: got ${certs?.length ?? 0} and ${keys?.length ?? 0}`,
      );
    }
    first.tls = {
      certs: certs!.map((cert, i) => ({ cert, key: keys![i]! })),
      alpn: first.tls?.alpn ?? [],
    };
    names.setByFlag("frontends[0].tls", "--tls-cert");
  }
  const alpn = str("tls-alpn");
  if (alpn !== undefined) {
    if (!first.tls) throw new ConfigError(`--tls-alpn needs --tls-cert and --tls-key`);
    first.tls.alpn = alpn.split(",").map((p) => p.trim()).filter((p) => p !== "");
  }
  const balance = str("balance");
  if (balance !== undefined) {
    first.balance = balance;
    names.setByFlag("frontends[0].balance", "--balance");
  }

  // Each remaining flag sets one field: [flag, field path, how to read it].
  const duration = (text: string, flag: string) => parseDuration(text, flag);
  const int = (limit: (typeof LIMITS)[keyof typeof LIMITS]) => (text: string, flag: string) =>
    readInt(text, flag, limit);
  const fields: [FlagName, string, (text: string, flag: string) => unknown][] = [
    ["health-interval", "health.interval", duration],
    ["health-timeout", "health.timeout", duration],
    ["rise", "health.rise", int(LIMITS.rise)],
    ["fall", "health.fall", int(LIMITS.fall)],
    ["retries", "retries", int(LIMITS.retries)],
    ["connect-timeout", "connectTimeout", duration],
    ["idle-timeout", "idleTimeout", duration],
    ["max-conns", "maxConns", int(LIMITS.maxConns)],
    ["drain-timeout", "drainTimeout", duration],
    ["drain-delay", "drainDelay", duration],
    ["resolve-interval", "resolveInterval", duration],
    ["workers", "workers", (text, flag) => readWorkers(text, flag)],
    ["max-conns-per-source", "maxConnsPerSource", int(LIMITS.maxConnsPerSource)],
    ["sni-timeout", "sniTimeout", duration],
    ["tls-ca", "tlsCa", (text) => text],
    ["conn-rate-per-source", "connRatePerSource", readRate],
    ["source-table-size", "sourceTableSize", int(LIMITS.sourceTableSize)],
    ["source-ipv6-prefix", "sourceIPv6Prefix", int(LIMITS.sourceIPv6Prefix)],
    ["admin", "admin", (text, flag) => parseHostPort(text, flag, "127.0.0.1", true)],
    ["admin-token-file", "adminTokenFile", (text) => text],
    ["log", "log", (text) => text as LogFormat],
    ["log-file", "logFile", (text) => text],
  ];
  for (const [flag, path, read] of fields) {
    const text = str(flag);
    if (text === undefined) continue;
    _set(config, path, read(text, `--${flag}`));
    names.setByFlag(path, `--${flag}`);
  }
  if (v["admin-insecure"] === true) {
    config.adminInsecure = true;
    names.setByFlag("adminInsecure", "--admin-insecure");
  }
  return config;
}

/** Sets the field at a dotted `path` ("health.rise") of `config`. */
function _set(config: Config, path: string, value: unknown): void {
  const keys = path.split(".");
  const last = keys.pop()!;
  let target = config as unknown as Record<string, unknown>;
  for (const key of keys) target = target[key] as Record<string, unknown>;
  target[last] = value;
}
