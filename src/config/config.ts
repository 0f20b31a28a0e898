import type { HostPort } from "../common/address.ts";

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
  /** Admin HTTP endpoint; null is off. @default null */
  admin: HostPort | null;
  /** Access log format. @default "text" */
  log: LogFormat;
  /** Access log file instead of stdout. @default null */
  logFile: string | null;
  /** Accept loops (Workers) sharing the port; 1 runs in the main thread. @default 1 */
  workers: number;
}

/** The front-end port when none is given, like the seed's `-f` default. */
export const DEFAULT_FRONTEND_PORT = 8080;

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
    admin: null,
    log: "text",
    logFile: null,
    workers: 1,
  };
}
