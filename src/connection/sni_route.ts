/**
 * SNI routing with passthrough: on a frontend where backends have `sni=`
 * names, the ClientHello is read into a bounded buffer, its server name picks
 * the backends, and every byte read is replayed to the backend unchanged (lb
 * never decrypts: the client and the backend do the TLS handshake).
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import type { Pool } from "../balancing/pool.ts";
import type { Logger } from "../observability/log.ts";
import { ClientHelloError, readClientHello } from "../tls/mod.ts";
import type { Session } from "./session.ts";

/**
 * Reads the ClientHello that must start `session`'s stream and picks the
 * backends for its server name. Not TLS, malformed, too large or too slow, or
 * a name nothing serves: the connection is refused before any dial, with one
 * rate-limited log line and `session.refusal` (`tls-REASON`, `no-route`).
 *
 * @returns The backends the connection may go to, or undefined when refused.
 */
export async function routeBySni(
  session: Session,
  pool: Pool,
  timeoutMs: number,
  logger: Logger,
): Promise<ReadonlySet<Backend> | undefined> {
  const refuse = (reason: string, why: string) => {
    session.refuse(reason, why, logger);
    return undefined;
  };
  let hello;
  let bytes;
  try {
    // Bytes after an accepted PROXY header are the start of the ClientHello.
    ({ hello, bytes } = await readClientHello(session.client, {
      timeoutMs,
      signal: session.signal,
      initial: session.prefetch,
    }));
  } catch (error) {
    if (session.closed) return undefined; // shutdown or the idle sweep
    if (error instanceof ClientHelloError) {
      return refuse(`tls-${error.reason}`, `TLS ClientHello refused (${error.message})`);
    }
    throw error;
  }
  session.serverName = hello.serverName ?? undefined;
  session.prefetch = bytes; // the prefetched bytes and what followed, replayed in order
  const { route, backends } = pool.route(hello.serverName);
  session.sniRoute = route;
  if (backends.size === 0) {
    return refuse("no-route", `no backend serves server name ${hello.serverName ?? "(none)"}`);
  }
  return backends;
}
