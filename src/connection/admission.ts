/**
 * The front door on the connection path: the allow/deny lists of a frontend
 * and the per-source limits shared by all frontends. Checked on the real
 * client (after an accepted PROXY header) before any backend is dialled.
 * @module
 */
import { AccessPolicy } from "../admission/policy.ts";
import { parseCidr, sourceKey } from "../admission/cidr.ts";
import { SourceTable } from "../admission/source_table.ts";
import type { Config, FrontendConfig } from "../config/config.ts";
import type { Logger } from "../observability/log.ts";
import type { Session } from "./session.ts";

/** A frontend's allow/deny lists, or undefined when it has none (everyone is let in). */
export function accessPolicy(config: FrontendConfig): AccessPolicy | undefined {
  const allow = (config.allow ?? []).map((cidr) => parseCidr(cidr, "--allow"));
  const deny = (config.deny ?? []).map((cidr) => parseCidr(cidr, "--deny"));
  const policy = new AccessPolicy({ allow, deny });
  return policy.enabled ? policy : undefined;
}

/** What {@link SourceLimits.admit} decides. */
export type SourceVerdict = { key: string } | { refused: "too-many-open" | "too-fast" };

/**
 * The one table of another thread, asked instead of a table of this
 * thread's own: a worker asks the main thread (`--workers`), so that a
 * source's limits hold over every thread.
 */
export interface RemoteSources {
  admit(host: string): Promise<SourceVerdict>;
  release(key: string): void;
}

/**
 * `--max-conns-per-source` and `--conn-rate-per-source` over every frontend:
 * one bounded table of client sources (an IPv4 address, or an IPv6 prefix of
 * `--source-ipv6-prefix` bits), owned by the running lb (the main thread's:
 * with `remote`, each admission is asked there).
 */
export class SourceLimits {
  readonly #table: SourceTable;
  readonly #prefix: number;
  readonly #remote: RemoteSources | undefined;
  #enabled = false;

  constructor(config: Config, remote?: RemoteSources) {
    this.#table = new SourceTable({ capacity: config.sourceTableSize });
    this.#prefix = config.sourceIPv6Prefix;
    this.#remote = remote;
    this.configure(config);
  }

  /** Takes new limits (reload); what the table knows of each source is kept. */
  configure(config: Config): void {
    this.#table.configure({ maxOpen: config.maxConnsPerSource, rate: config.connRatePerSource });
    this.#enabled = config.maxConnsPerSource > 0 || config.connRatePerSource !== null;
  }

  /** Whether any per-source limit is set. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** Sources tracked now. */
  get size(): number {
    return this.#table.size;
  }

  /** Sources dropped to stay within `--source-table-size`. */
  get evictions(): number {
    return this.#table.evictions;
  }

  /**
   * Counts a new connection from `host` in.
   *
   * @returns The source key to {@link release} when the connection ends, or
   * why it is refused.
   */
  admit(host: string): SourceVerdict | Promise<SourceVerdict> {
    if (this.#remote) return this.#remote.admit(host);
    const key = sourceKey(host, this.#prefix);
    const result = this.#table.admit(key);
    return result === "ok" ? { key } : { refused: result };
  }

  /** Counts a connection `admit` let in out. */
  release(key: string): void {
    if (this.#remote) this.#remote.release(key);
    else this.#table.release(key);
  }
}

/**
 * Lets `session` in or refuses it (closing it, one rate-limited log line,
 * `session.refusal` for the metrics).
 *
 * @returns The source key to release when the connection ends ("" when no
 * per-source limit applies), or undefined when refused.
 */
export function admit(
  session: Session,
  policy: AccessPolicy | undefined,
  sources: SourceLimits | undefined,
  logger: Logger,
): string | undefined | Promise<string | undefined> {
  const decision = policy?.check(session.clientHost) ?? "allowed";
  if (decision !== "allowed") return _refuse(session, decision, logger);
  if (!sources?.enabled) return "";
  const verdict = sources.admit(session.clientHost);
  return verdict instanceof Promise
    ? verdict.then((v) => _admitted(session, sources, v, logger))
    : _admitted(session, sources, verdict, logger);
}

/** Lets the connection in with its source key, or refuses it. */
function _admitted(
  session: Session,
  sources: SourceLimits,
  verdict: SourceVerdict,
  logger: Logger,
): string | undefined {
  if ("refused" in verdict) return _refuse(session, verdict.refused, logger);
  if (session.closed) { // ended (shutdown, idle sweep) while the main thread answered
    sources.release(verdict.key);
    return undefined;
  }
  return verdict.key;
}

function _refuse(session: Session, reason: string, logger: Logger): undefined {
  session.refuse(reason, `refused (${reason})`, logger);
  return undefined;
}
