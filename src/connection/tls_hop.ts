/**
 * TLS on either side of a connection: the handshake with a client where lb
 * terminates TLS, and TLS to a backend marked `tls` (verified by default).
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import { describe } from "../common/errors.ts";
import type { Logger } from "../observability/log.ts";
import type { StreamConn } from "./listen.ts";
import type { Session } from "./session.ts";

/**
 * Completes the TLS handshake with the client before any backend is dialled.
 * A failure or a client slower than `timeoutMs` closes that client only:
 * one rate-limited log line, `session.refusal` `tls-handshake` or
 * `tls-handshake-timeout`.
 *
 * @returns Whether the connection may go on.
 */
export async function handshakeClient(
  session: Session,
  timeoutMs: number,
  logger: Logger,
): Promise<boolean> {
  const client = session.client;
  if (!("handshake" in client)) return true;
  try {
    await _within(client.handshake(), timeoutMs);
    return true;
  } catch (error) {
    if (session.closed) return false;
    if (error instanceof Deno.errors.TimedOut) {
      session.refuse("tls-handshake-timeout", `no TLS handshake in ${timeoutMs}ms`, logger);
    } else {
      session.refuse("tls-handshake", `TLS handshake failed: ${describe(error)}`, logger);
    }
    return false;
  }
}

/**
 * Starts TLS over a connected backend socket: sends and verifies the
 * backend's `tls-name` (else its host), trusting `caCerts` besides the
 * system's roots; `tls-verify=off` skips only the host name check (Deno has
 * no per-connection switch for the chain).
 *
 * @throws What the handshake throws (an unknown CA, a wrong name, a reset),
 * or a `TimedOut` after `timeoutMs`; `conn` is closed then.
 */
export async function startBackendTls(
  conn: Deno.TcpConn,
  backend: Backend,
  caCerts: readonly string[],
  timeoutMs: number,
): Promise<StreamConn> {
  let tls: Deno.TlsConn;
  try {
    tls = await Deno.startTls(conn, {
      hostname: backend.tlsName ?? backend.addr.hostname,
      caCerts: [...caCerts],
      unsafelyDisableHostnameVerification: !backend.tlsVerify,
    });
  } catch (error) {
    _close(conn); // not taken over: still ours to close
    throw error;
  }
  try {
    await _within(tls.handshake(), timeoutMs);
    return tls;
  } catch (error) {
    _close(tls);
    throw error;
  }
}

/** `promise`, or a `TimedOut` rejection after `ms`. */
async function _within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Deno.errors.TimedOut(`TLS handshake timed out after ${ms}ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function _close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
