/**
 * The config file (`--config lb.json`): JSON with comments (JSONC), checked
 * field by field (type and range) with errors naming the exact path, turned
 * into a {@link Config}. `loadConfig` (load.ts) applies the flags on top and
 * validates the whole.
 *
 * @example
 * ```jsonc
 * {
 *   // one listener, three backends
 *   "frontends": [{
 *     "name": "web",
 *     "listen": "[::]:8080",
 *     "backends": [{ "port": 8101, "weight": 3 }, "127.0.0.1:8102", "127.0.0.1:8103,backup"],
 *   }],
 *   "drainTimeout": "30s",
 * }
 * ```
 * @module
 */
import { ANY_HOST, type HostPort } from "../common/address.ts";
import { ConfigError, describe, describeFileError } from "../common/errors.ts";
import { parseResolver, srvName } from "./backend_entry.ts";
import { parseBackendSpec } from "./backend_spec.ts";
import {
  type AcceptProxyConfig,
  type BackendConfig,
  type Config,
  defaultAcceptProxy,
  defaultConfig,
  type FrontendConfig,
  type LogFormat,
  type ProxyVersion,
  type TlsTerminationConfig,
} from "./config.ts";
import { parseDuration } from "./duration.ts";
import { parseHostPort } from "./host_port.ts";
import { LIMITS, readInt, readWorkers } from "./limits.ts";
import { readRate } from "./rate.ts";

/**
 * Turns JSONC into JSON: `//` and `/* *\/` comments become spaces (newlines
 * kept) and a comma before `]` or `}` becomes a space, so every other
 * character keeps its offset and `JSON.parse` positions still point into the
 * original text. Strings, with their escapes, are left alone.
 *
 * @param text JSON with comments and trailing commas.
 * @returns Plain JSON text of the same length.
 * @example
 * ```ts
 * JSON.parse(stripJsonComments('{"a": 1, // one\n}')); // { a: 1 }
 * ```
 */
export function stripJsonComments(text: string): string {
  const out = text.split("");
  let lastComma = -1; // index of a comma after a value, with only blanks/comments since
  let previous = ""; // the last character outside comments and blanks
  let i = 0;
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== "\n" && out[k] !== "\r") out[k] = " ";
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      lastComma = -1;
      previous = c;
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === "\\") i++;
      }
      i++;
    } else if (c === "/" && text[i + 1] === "/") {
      const end = text.indexOf("\n", i);
      const to = end === -1 ? text.length : end;
      blank(i, to);
      i = to;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      const to = end === -1 ? text.length : end + 2;
      blank(i, to);
      i = to;
    } else {
      if (c === ",") lastComma = "{[,:".includes(previous) ? -1 : i;
      else if ((c === "]" || c === "}") && lastComma !== -1) out[lastComma] = " ";
      if (!/\s/.test(c) && c !== ",") lastComma = -1;
      if (!/\s/.test(c)) previous = c;
      i++;
    }
  }
  return out.join("");
}

/**
 * Reads and checks a config file.
 *
 * @param path The file to read.
 * @returns The config the file describes, with defaults for what it leaves out.
 * @throws {ConfigError} When the file cannot be read, is not JSON(C), or a
 * field is wrong; the message starts with the path and names the field.
 * @example
 * ```ts
 * const config = await loadConfigFile("lb.json");
 * ```
 */
export async function loadConfigFile(path: string): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError(`${path}: cannot read config file: ${describeFileError(error)}`, {
      cause: error,
    });
  }
  return parseConfigText(text, path);
}

/**
 * Parses the text of a config file.
 *
 * @param text JSONC text.
 * @param source Named at the start of error messages (the file path).
 * @returns The config, with defaults for what the text leaves out.
 * @throws {ConfigError} On a syntax error or a wrong field, naming it:
 * `lb.json: frontends[0].backends[2].port must be 1-65535: got 70000`.
 */
export function parseConfigText(text: string, source: string): Config {
  let data: unknown;
  const json = stripJsonComments(text);
  try {
    data = JSON.parse(json);
  } catch (error) {
    throw new ConfigError(`${source}: not valid JSON: ${_where(text, json, describe(error))}`, {
      cause: error,
    });
  }
  try {
    return _config(data);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new ConfigError(`${source}: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/**
 * V8's message, with the line and column of the error when V8 names none
 * ("Unexpected token"): found as the shortest prefix of `json` that already
 * fails for a reason other than ending early.
 */
function _where(text: string, json: string, message: string): string {
  if (/line \d+/.test(message)) return message;
  const failsWithin = (length: number) => {
    try {
      JSON.parse(json.slice(0, length));
      return false;
    } catch (error) {
      const why = error instanceof Error ? error.message : "";
      const at = /position (\d+)/.exec(why);
      if (at) return Number(at[1]) < length;
      return !/Unexpected end/.test(why);
    }
  };
  let low = 0;
  let high = json.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (failsWithin(mid)) high = mid;
    else low = mid + 1;
  }
  const before = text.slice(0, Math.max(0, low - 1)).split("\n");
  const short = message.replace(/, (\.\.\.)?".*$/s, "");
  return `${short} (line ${before.length} column ${before.at(-1)!.length + 1})`;
}

type Json = Record<string, unknown>;

const TOP_KEYS = [
  "$schema",
  "frontends",
  "health",
  "retries",
  "connectTimeout",
  "idleTimeout",
  "maxConns",
  "drainTimeout",
  "drainDelay",
  "resolvers",
  "resolveInterval",
  "admin",
  "adminTokenFile",
  "adminInsecure",
  "allow",
  "deny",
  "maxConnsPerSource",
  "connRatePerSource",
  "sourceTableSize",
  "sniTimeout",
  "tlsCa",
  "sourceIPv6Prefix",
  "log",
  "logFile",
  "workers",
];
const FRONTEND_KEYS = [
  "name",
  "listen",
  "balance",
  "backends",
  "acceptProxy",
  "allow",
  "deny",
  "tls",
];
const ACCEPT_PROXY_KEYS = ["timeout", "from"];
const BACKEND_KEYS = [
  "host",
  "port",
  "weight",
  "backup",
  "maxConn",
  "proxy",
  "sni",
  "srv",
  "tls",
  "tlsName",
  "tlsVerify",
];
const TLS_KEYS = ["certs", "alpn"];
const CERT_KEYS = ["cert", "key"];
const HEALTH_KEYS = ["interval", "timeout", "rise", "fall"];

function _config(data: unknown): Config {
  const root = _object(data, "the top level");
  _known(root, TOP_KEYS, "");
  const config = defaultConfig();
  const has = (key: string) => root[key] !== undefined;

  if (has("frontends")) {
    const list = _array(root.frontends, "frontends");
    config.frontends = list.map((f, i) => _frontend(f, `frontends[${i}]`, i));
  }
  if (has("health")) {
    const health = _object(root.health, "health");
    _known(health, HEALTH_KEYS, "health.");
    if (health.interval !== undefined) {
      config.health.interval = _duration(health.interval, "health.interval");
    }
    if (health.timeout !== undefined) {
      config.health.timeout = _duration(health.timeout, "health.timeout");
    }
    if (health.rise !== undefined) config.health.rise = _int(health.rise, "health.rise", "rise");
    if (health.fall !== undefined) config.health.fall = _int(health.fall, "health.fall", "fall");
  }
  if (has("retries")) {
    config.retries = root.retries === null ? null : _int(root.retries, "retries", "retries");
  }
  if (has("connectTimeout")) {
    config.connectTimeout = _duration(root.connectTimeout, "connectTimeout");
  }
  if (has("idleTimeout")) config.idleTimeout = _duration(root.idleTimeout, "idleTimeout");
  if (has("maxConns")) config.maxConns = _int(root.maxConns, "maxConns", "maxConns");
  if (has("drainTimeout")) config.drainTimeout = _duration(root.drainTimeout, "drainTimeout");
  if (has("drainDelay")) config.drainDelay = _duration(root.drainDelay, "drainDelay");
  if (has("resolvers")) {
    config.resolvers = _strings(root.resolvers, "resolvers").map((text, i) =>
      parseResolver(text, `resolvers[${i}]`)
    );
  }
  if (has("resolveInterval")) {
    config.resolveInterval = _duration(root.resolveInterval, "resolveInterval");
  }
  if (has("admin")) {
    config.admin = root.admin === null ? null : _hostPort(root.admin, "admin", "127.0.0.1");
  }
  if (has("adminTokenFile")) {
    config.adminTokenFile = root.adminTokenFile === null
      ? null
      : _string(root.adminTokenFile, "adminTokenFile");
  }
  if (has("adminInsecure")) config.adminInsecure = _bool(root.adminInsecure, "adminInsecure");
  for (const list of ["allow", "deny"] as const) {
    if (has(list)) config[list] = _strings(root[list], list);
  }
  if (has("maxConnsPerSource")) {
    config.maxConnsPerSource = _int(
      root.maxConnsPerSource,
      "maxConnsPerSource",
      "maxConnsPerSource",
    );
  }
  if (has("connRatePerSource")) {
    config.connRatePerSource = root.connRatePerSource === null
      ? null
      : readRate(_string(root.connRatePerSource, "connRatePerSource"), "connRatePerSource");
  }
  if (has("sniTimeout")) config.sniTimeout = _duration(root.sniTimeout, "sniTimeout");
  if (has("tlsCa")) config.tlsCa = root.tlsCa === null ? null : _string(root.tlsCa, "tlsCa");
  if (has("sourceTableSize")) {
    config.sourceTableSize = _int(root.sourceTableSize, "sourceTableSize", "sourceTableSize");
  }
  if (has("sourceIPv6Prefix")) {
    config.sourceIPv6Prefix = _int(root.sourceIPv6Prefix, "sourceIPv6Prefix", "sourceIPv6Prefix");
  }
  if (has("log")) config.log = root.log as LogFormat; // checked with the rest in validateConfig
  if (has("logFile")) {
    config.logFile = root.logFile === null ? null : _string(root.logFile, "logFile");
  }
  if (has("workers")) config.workers = readWorkers(root.workers, "workers", false);
  return config;
}

function _frontend(data: unknown, path: string, index: number): FrontendConfig {
  const f = _object(data, path);
  _known(f, FRONTEND_KEYS, `${path}.`);
  const name = f.name === undefined ? (index === 0 ? "main" : `frontend${index}`) : _string(
    f.name,
    `${path}.name`,
  );
  if (!/^[A-Za-z0-9_.\-]+$/.test(name)) {
    throw new ConfigError(
      `${path}.name must be letters, digits, "_", "." or "-": got ${JSON.stringify(name)}`,
    );
  }
  if (f.listen === undefined) {
    throw new ConfigError(`${path}.listen is required: "HOST:PORT" or a port number`);
  }
  const listen = _hostPort(f.listen, `${path}.listen`, ANY_HOST, true);
  // A strategy name is checked with the rest in validateConfig.
  const balance = f.balance === undefined ? "roundrobin" : _string(f.balance, `${path}.balance`);
  const backends = f.backends === undefined
    ? []
    : _array(f.backends, `${path}.backends`).map((b, i) => _backend(b, `${path}.backends[${i}]`));
  const frontend: FrontendConfig = { name, listen, balance, backends };
  if (f.tls !== undefined) frontend.tls = _tls(f.tls, `${path}.tls`);
  if (f.allow !== undefined) frontend.allow = _strings(f.allow, `${path}.allow`);
  if (f.deny !== undefined) frontend.deny = _strings(f.deny, `${path}.deny`);
  if (f.acceptProxy !== undefined && f.acceptProxy !== false) {
    frontend.acceptProxy = _acceptProxy(f.acceptProxy, `${path}.acceptProxy`);
  }
  return frontend;
}

function _backend(data: unknown, path: string): BackendConfig {
  if (typeof data === "string") return parseBackendSpec(data, path);
  const b = _object(
    data,
    path,
    `an object like {"host": "127.0.0.1", "port": 8101} or "HOST:PORT"`,
  );
  _known(b, BACKEND_KEYS, `${path}.`);
  if (b.srv !== undefined) return _srvBackend(b, path);
  const hostname = b.host === undefined ? "127.0.0.1" : _host(b.host, `${path}.host`);
  if (b.port === undefined) throw new ConfigError(`${path}.port is required`);
  return {
    hostname,
    port: _int(b.port, `${path}.port`, "port"),
    weight: b.weight === undefined ? 1 : _int(b.weight, `${path}.weight`, "weight"),
    backup: b.backup === undefined ? false : _bool(b.backup, `${path}.backup`),
    maxConn: b.maxConn === undefined ? 0 : _int(b.maxConn, `${path}.maxConn`, "maxConn"),
    ...(b.proxy === undefined || b.proxy === null
      ? {}
      : { proxy: _proxyVersion(b.proxy, `${path}.proxy`) }),
    ...(b.sni === undefined ? {} : { sni: _strings(b.sni, `${path}.sni`) }),
    ...(b.tls === undefined ? {} : { tls: _bool(b.tls, `${path}.tls`) }),
    ...(b.tlsName === undefined
      ? {}
      : { tls: true, tlsName: _string(b.tlsName, `${path}.tlsName`) }),
    ...(b.tlsVerify === undefined ? {} : { tlsVerify: _bool(b.tlsVerify, `${path}.tlsVerify`) }),
  };
}

/** `{"srv": "_http._tcp.example.com", ...options}`: backends from SRV records. */
function _srvBackend(b: Json, path: string): BackendConfig {
  for (const key of ["host", "port", "weight"]) {
    if (b[key] !== undefined) {
      throw new ConfigError(
        `${path}.${key} cannot be given with srv: the SRV records give targets, ports and weights`,
      );
    }
  }
  const name = srvName(_string(b.srv, `${path}.srv`), `${path}.srv`);
  const { srv: _, ...options } = b;
  return { ..._backend({ ...options, port: 1 }, path), hostname: name, port: 0, srv: true };
}

/** `true`, or `{"timeout": "3s", "from": ["10.0.0.0/8"]}`. */
function _acceptProxy(data: unknown, path: string): AcceptProxyConfig {
  const accept = defaultAcceptProxy();
  if (data === true) return accept;
  const a = _object(data, path, `true, false or an object like {"timeout": "3s", "from": []}`);
  _known(a, ACCEPT_PROXY_KEYS, `${path}.`);
  if (a.timeout !== undefined) accept.timeout = _duration(a.timeout, `${path}.timeout`);
  if (a.from !== undefined) {
    accept.from = _array(a.from, `${path}.from`).map((c, i) => _string(c, `${path}.from[${i}]`));
  }
  return accept;
}

/** `{"certs": [{"cert": "a.pem", "key": "a.key"}], "alpn": ["h2"]}`. */
function _tls(data: unknown, path: string): TlsTerminationConfig {
  const t = _object(data, path, `an object like {"certs": [{"cert": "a.pem", "key": "a.key"}]}`);
  _known(t, TLS_KEYS, `${path}.`);
  const certs = _array(t.certs, `${path}.certs`).map((c, i) => {
    const pair = _object(
      c,
      `${path}.certs[${i}]`,
      `an object like {"cert": "a.pem", "key": "a.key"}`,
    );
    _known(pair, CERT_KEYS, `${path}.certs[${i}].`);
    return {
      cert: _string(pair.cert, `${path}.certs[${i}].cert`),
      key: _string(pair.key, `${path}.certs[${i}].key`),
    };
  });
  if (certs.length === 0) throw new ConfigError(`${path}.certs must list at least one certificate`);
  return { certs, alpn: t.alpn === undefined ? [] : _strings(t.alpn, `${path}.alpn`) };
}

/** An array of non-empty strings (CIDRs, checked in validateConfig). */
function _strings(data: unknown, path: string): string[] {
  return _array(data, path).map((item, i) => _string(item, `${path}[${i}]`));
}

function _proxyVersion(data: unknown, path: string): ProxyVersion {
  if (data !== "v1" && data !== "v2") {
    throw new ConfigError(`${path} must be "v1" or "v2": got ${JSON.stringify(data)}`);
  }
  return data;
}

function _hostPort(data: unknown, path: string, defaultHost: string, allowZero = false): HostPort {
  if (typeof data === "number") {
    const limit = allowZero ? { ...LIMITS.port, min: 0 } : LIMITS.port;
    return { hostname: defaultHost, port: readInt(data, path, limit, false) };
  }
  if (typeof data === "string") return parseHostPort(data, path, defaultHost, allowZero);
  throw new ConfigError(
    `${path} must be "HOST:PORT" or a port number: got ${JSON.stringify(data)}`,
  );
}

function _host(data: unknown, path: string): string {
  const host = _string(data, path);
  if (!/^[A-Za-z0-9.\-_:]+$/.test(host)) {
    throw new ConfigError(`${path} must be a host name or IP address: got ${JSON.stringify(host)}`);
  }
  return host;
}

function _duration(data: unknown, path: string): number {
  if (typeof data !== "string" && typeof data !== "number") {
    throw new ConfigError(
      `${path} must be a duration like "500ms", "2s" or a number of seconds: got ${
        JSON.stringify(data)
      }`,
    );
  }
  return Math.round(parseDuration(data, path));
}

/** A JSON number within the range {@link LIMITS} gives `field`. */
function _int(data: unknown, path: string, field: keyof typeof LIMITS): number {
  return readInt(data, path, LIMITS[field], false);
}

function _bool(data: unknown, path: string): boolean {
  if (typeof data !== "boolean") {
    throw new ConfigError(`${path} must be true or false: got ${JSON.stringify(data)}`);
  }
  return data;
}

function _string(data: unknown, path: string): string {
  if (typeof data !== "string" || data === "") {
    throw new ConfigError(`${path} must be a non-empty string: got ${JSON.stringify(data)}`);
  }
  return data;
}

function _object(data: unknown, path: string, what = "an object"): Json {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError(`${path} must be ${what}: got ${JSON.stringify(data)}`);
  }
  return data as Json;
}

function _array(data: unknown, path: string): unknown[] {
  if (!Array.isArray(data)) {
    throw new ConfigError(`${path} must be an array: got ${JSON.stringify(data)}`);
  }
  return data;
}

function _known(data: Json, keys: readonly string[], prefix: string): void {
  for (const key of Object.keys(data)) {
    if (!keys.includes(key)) {
      throw new ConfigError(
        `${prefix}${key} is not a known field (expected one of ${keys.join(", ")})`,
      );
    }
  }
}
