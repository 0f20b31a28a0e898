import { formatHostPort, type HostPort } from "../common/address.ts";
import type { BackendConfig } from "../config/config.ts";

/** A backend server at run time: its options, health state and counters. */
export class Backend {
  /** `host:port`, unique within a pool; used in logs, metrics and admin URLs. */
  readonly id: string;
  readonly addr: HostPort;
  weight: number;
  backup: boolean;
  maxConn: number;
  /** Health state: false after `fall` failed checks or connects in a row. */
  healthy = true;
  /** Set by an operator (admin drain) or a reload that removed it: no new connections. */
  drained = false;
  /** Connections open to this backend now, counting connects in flight. */
  active = 0;
  /** Connections ever opened to this backend. */
  total = 0;
  /** Bytes sent to the backend (client → backend). */
  bytesOut = 0;
  /** Bytes received from the backend (backend → client). */
  bytesIn = 0;
  /** Connects that failed or timed out. */
  connectFailures = 0;
  /** Consecutive failed checks or connects (health bookkeeping). */
  failStreak = 0;
  /** Consecutive successful checks (health bookkeeping). */
  okStreak = 0;
  /** Duration of the last health check, ms (-1 before the first). */
  lastCheckMs = -1;

  constructor(config: BackendConfig) {
    this.addr = { hostname: config.hostname, port: config.port };
    this.id = formatHostPort(this.addr);
    this.weight = config.weight;
    this.backup = config.backup;
    this.maxConn = config.maxConn;
  }

  /** Whether a new connection may go here now. */
  get available(): boolean {
    return this.healthy && !this.drained && (this.maxConn === 0 || this.active < this.maxConn);
  }
}
