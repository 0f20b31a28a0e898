/**
 * `--accept-proxy`: a frontend that requires a PROXY protocol header (v1 or
 * v2) before anything else. The header is read once into a bounded buffer;
 * the real client it names replaces the peer everywhere (access log,
 * `--balance source`, a header lb sends on), and bytes that came after it
 * are kept to be sent to the backend first.
 * @module
 */
import { CidrList, parseCidr } from "../admission/cidr.ts";
import { formatHostPort } from "../common/address.ts";
import { unmapIPv4 } from "../common/address.ts";
import type { AcceptProxyConfig } from "../config/config.ts";
import type { Logger } from "../observability/log.ts";
import { ProxyHeaderError, readProxyHeader } from "../proxy_protocol/mod.ts";
import type { Session } from "./session.ts";

/** A frontend's `--accept-proxy` settings, ready for the connection path. */
export interface AcceptProxy {
  timeoutMs: number;
  /** Peers allowed to send a header; null allows any. */
  from: CidrList | null;
}

/** Compiles the config (CIDRs already validated). */
export function acceptProxy(config: AcceptProxyConfig): AcceptProxy {
  const from = config.from.length === 0
    ? null
    : new CidrList(config.from.map((cidr) => parseCidr(cidr, "--proxy-from")));
  return { timeoutMs: config.timeout, from };
}

/**
 * Reads the PROXY header that must start `session`'s client stream and takes
 * the client it names. On anything wrong (an untrusted peer, a malformed,
 * too long or too slow header, EOF) the connection is refused before any
 * backend is dialled: one rate-limited log line names the client and the
 * reason, and `session.refusal` (`proxy-REASON`) feeds the metrics.
 *
 * @returns Whether the connection may go on.
 */
export async function acceptProxyHeader(
  session: Session,
  accept: AcceptProxy,
  logger: Logger,
): Promise<boolean> {
  const refuse = (reason: string, why: string) => {
    session.refuse(`proxy-${reason}`, `PROXY header refused (${why})`, logger);
    return false;
  };
  if (accept.from && !accept.from.has(session.clientHost)) {
    return refuse("untrusted", "peer not in --proxy-from");
  }
  let header;
  let rest;
  try {
    ({ header, rest } = await readProxyHeader(session.client, {
      timeoutMs: accept.timeoutMs,
      signal: session.signal,
    }));
  } catch (error) {
    if (session.closed) return false; // shutdown or the idle sweep: not the client's fault
    if (error instanceof ProxyHeaderError) return refuse(error.reason, error.message);
    throw error;
  }
  session.peerAddr = session.clientAddr;
  if (header.command === "PROXY" && header.source && header.destination) {
    const { hostname, port } = header.source;
    session.clientHost = unmapIPv4(hostname);
    session.clientPort = port;
    session.clientAddr = formatHostPort({ hostname: session.clientHost, port });
    session.localAddr = { transport: "tcp", ...header.destination };
  }
  session.authority = header.authority;
  session.uniqueId = header.uniqueId;
  if (rest.length > 0) session.prefetch = rest;
  return true;
}
