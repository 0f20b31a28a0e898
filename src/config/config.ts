import type { HostPort } from "../common/address.ts";
import { allCores } from "./limits.ts";

/** One backend server and its per-backend options (`-p HOST:PORT,weight=3,backup,maxconn=N`). */
export interface BackendConfig extends HostPort {
  /** Relative share of new connections. @default 1 */
  weight: number;
  /** Used only when no normal backend is available. @default false */
  backup: boolean;
  /** Most connections at once to this backend; 0 means no limit. @default 0 */
  maxConn: number;
  /** Send a PROXY protocol header of this version before the client's bytes. @default none */
  proxy?: ProxyVersion;
  /** Connect over TLS (`tls`): verify the backend's certificate for `tlsName` or its host. @default false */
  tls?: boolean;
  /** The name sent (SNI) and verified over TLS instead of the host (`tls-name=NAME`). */
  tlsName?: string;
  /** Skip the host name check over TLS (`tls-verify=off`); warned at start. @default true */
  tlsVerify?: boolean;
  /**
   * TLS server names this backend serves (`sni=api.example.com`, `sni=*.example.com`): a
   * frontend with any such backend routes by the ClientHello's name. @default none
   */
  sni?: string[] | undefined;
  /**
   * `hostname` is not an address but a name followed through DNS (A and AAAA, or with `srv`
   * its SRV records): see `src/lb/discovered.ts`. Set on the backends found that way: their id
   * in logs, `/stats` and `/metrics`, `NAME:PORT/ADDRESS`. @default `host:port`
   */
  id?: string;
  /**
   * `-p srv:_SERVICE._PROTO.NAME`: `hostname` is an SRV name whose records give the targets,
   * ports and weights (the lowest priority normal, higher ones backups); `port` is 0.
   * @default false
   */
  srv?: boolean;
}

/** A PROXY protocol version lb sends to a backend (`-p HOST:PORT,proxy=v2`). */
export type ProxyVersion = "v1" | "v2";

/** PROXY protocol headers a frontend requires from its clients (`--accept-proxy`). */
export interface AcceptProxyConfig {
  /** Bound on the wait for a complete header, ms. @default 3000 */
  timeout: number;
  /** CIDRs of the peers allowed to send headers; empty allows any. @default [] */
  from: string[];
}

/** One listener with its own pool and strategy. */
export interface FrontendConfig {
  /** Name used in logs and metrics. @default "main" */
  name: string;
  /** Where to listen. @default [::]:8080 (all interfaces, IPv4 and IPv6) */
  listen: HostPort;
  /** Balancing strategy name. @default "roundrobin" */
  balance: string;
  backends: BackendConfig[];
  /** Require a PROXY v1/v2 header on every connection; absent is off. */
  acceptProxy?: AcceptProxyConfig;
  /** Terminate TLS with these certificates (`--tls-cert`/`--tls-key`); absent passes bytes through. */
  tls?: TlsTerminationConfig;
  /** CIDRs let in (all others refused); absent uses the global `allow`. */
  allow?: string[];
  /** CIDRs refused (wins over allow); absent uses the global `deny`. */
  deny?: string[];
}

/** TLS termination on a frontend. */
export interface TlsTerminationConfig {
  /** Certificate and key files; the one whose names match the client's SNI is used, else the first. */
  certs: { cert: string; key: string }[];
  /** ALPN protocols to advertise (`--tls-alpn h2,http/1.1`). @default [] */
  alpn: string[];
}

/** New connections per window, as `--conn-rate-per-source 20/1s` gives it. */
export interface RateConfig {
  count: number;
  windowMs: number;
}

/** Active health checks (TCP connect), HAProxy's `check inter rise fall`. */
export interface HealthConfig {
  /** Time between checks in ms; 0 disables active checks. @default 2000 */
  interval: number;
  /** How long one check may take in ms. @default 1000 */
  timeout: number;
  /** Successes in a row that bring a down backend up. @default 2 */
  rise: number;
  /** Failures in a row that take an up backend down. @default 3 */
  fall: number;
}

/** Where access logs go and in what form. */
export type LogFormat = "text" | "json" | "off";

/** Everything lb runs on; built from flags, a config file, or both. */
export interface Config {
  frontends: FrontendConfig[];
  health: HealthConfig;
  /** Other backends tried after a failed connect; null means every other backend once. */
  retries: number | null;
  /** Bound on one backend connect, ms. @default 5000 */
  connectTimeout: number;
  /** Close a connection with no bytes either way for this long, ms; 0 is off. @default 0 */
  idleTimeout: number;
  /** Most client connections at once over all frontends; 0 is no limit. @default 0 */
  maxConns: number;
  /** How long SIGTERM waits for open connections, ms. @default 30000 */
  drainTimeout: number;
  /**
   * After SIGTERM, keep accepting this long while `/ready` answers 503, so that an
   * orchestrator stops sending first; then drain. ms. @default 0
   */
  drainDelay: number;
  /** DNS servers for backends given by name, tried in turn; empty uses the system's. @default [] */
  resolvers: HostPort[];
  /** Time between lookups of backends given by name, ms; 0 resolves once at start. @default 10000 */
  resolveInterval: number;
  /** Admin HTTP endpoint; null is off. @default null */
  admin: HostPort | null;
  /**
   * A file holding the token admin requests must carry (`Authorization:
   * Bearer TOKEN`); null needs none, allowed only on a loopback admin address. @default null
   */
  adminTokenFile: string | null;
  /** Allow a non-loopback admin address without a token file (warned at start). @default false */
  adminInsecure: boolean;
  /** CIDRs let in by frontends without their own `allow`; empty lets in any. @default [] */
  allow: string[];
  /** CIDRs refused by frontends without their own `deny`. @default [] */
  deny: string[];
  /** Most open connections from one client source; 0 is no limit. @default 0 */
  maxConnsPerSource: number;
  /** Most new connections from one client source per sliding window; null is no limit. @default null */
  connRatePerSource: RateConfig | null;
  /** A PEM file of CA certificates trusted for `tls` backends, besides the system's. @default null */
  tlsCa: string | null;
  /** Bound on the wait for a complete TLS ClientHello where backends route by `sni=`, ms. @default 5000 */
  sniTimeout: number;
  /** Most client sources tracked for the two limits above. @default 100000 */
  sourceTableSize: number;
  /** IPv6 clients within one prefix of this length count as one source. @default 64 */
  sourceIPv6Prefix: number;
  /** Access log format. @default "text" */
  log: LogFormat;
  /** Access log file instead of stdout. @default null */
  logFile: string | null;
  /** Accept loops (Workers) sharing the port; 1 runs in the main thread alone. @default the number of cores (`auto`) */
  workers: number;
}

/** The front-end port when none is given, like the seed's `-f` default. */
export const DEFAULT_FRONTEND_PORT = 8080;

/**
 * `frontend` with the global `allow`/`deny` lists where it has none of its
 * own: what the connection path applies.
 */
export function frontendWithDefaults(frontend: FrontendConfig, config: Config): FrontendConfig {
  return {
    ...frontend,
    allow: frontend.allow ?? config.allow,
    deny: frontend.deny ?? config.deny,
  };
}

/** `--accept-proxy`'s settings when only the flag is given. */
export function defaultAcceptProxy(): AcceptProxyConfig {
  return { timeout: 3000, from: [] };
}

/** A fresh config with every default and no frontends. */
export function defaultConfig(): Config {
  return {
    frontends: [],
    health: { interval: 2000, timeout: 1000, rise: 2, fall: 3 },
    retries: null,
    connectTimeout: 5000,
    idleTimeout: 0,
    maxConns: 0,
    drainTimeout: 30_000,
    drainDelay: 0,
    resolvers: [],
    resolveInterval: 10_000,
    admin: null,
    adminTokenFile: null,
    adminInsecure: false,
    allow: [],
    deny: [],
    maxConnsPerSource: 0,
    connRatePerSource: null,
    tlsCa: null,
    sniTimeout: 5000,
    sourceTableSize: 100_000,
    sourceIPv6Prefix: 64,
    log: "text",
    logFile: null,
    workers: allCores(),
  };
}
