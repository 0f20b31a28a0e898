import { describe } from "../common/errors.ts";
import { dial } from "./dial.ts";
import type { Backend } from "../balancing/backend.ts";
import type { Logger } from "../observability/log.ts";
import type { Pool } from "../balancing/pool.ts";
import { writeAll } from "../common/bytes.ts";
import { helloFor } from "./hello.ts";
import { type AcceptProxy, acceptProxyHeader } from "./accept_proxy.ts";
import { admit, type SourceLimits } from "./admission.ts";
import type { AccessPolicy } from "../admission/policy.ts";
import { type EarlyRead, MIN_BUFFER, pump } from "./pump.ts";
import { routeBySni } from "./sni_route.ts";
import { handshakeClient, startBackendTls } from "./tls_hop.ts";
import type { StreamConn } from "./listen.ts";
import type { Session } from "./session.ts";

/** What proxying one connection needs from the rest of lb. */
export interface ProxyContext {
  pool: Pool;
  /** Require a PROXY header first (`--accept-proxy`); undefined is off. */
  acceptProxy?: AcceptProxy | undefined;
  /** The frontend's allow/deny lists; undefined lets everyone in. */
  policy?: AccessPolicy | undefined;
  /** Per-source limits over all frontends; undefined (or not enabled) is none. */
  sources?: SourceLimits | undefined;
  logger: Logger;
  /** Bound on one backend connect, ms. */
  connectTimeout: number;
  /** Bound on the wait for a ClientHello where the pool routes by SNI, ms. */
  sniTimeout: number;
  /** CA certificates (PEM) trusted for `tls` backends besides the system's (`--tls-ca`). */
  caCerts: readonly string[];
  /** Other backends tried after a failed connect; null is every other backend once. */
  retries: number | null;
  /** Told of every connect attempt, for passive health; `why` says what failed. */
  onConnect(backend: Backend, ok: boolean, why?: string): void;
}

/**
 * Proxies one client connection: picks a backend (trying others when a connect
 * fails), then copies bytes both ways until both directions end or one fails.
 * Never throws (a bug on one connection's path closes that connection, with a
 * log line); on return both sockets are closed and `session.end` is set, and
 * `done` has been called.
 *
 * While the bytes flow only this frame and the two pumps' wait: an idle
 * connection holds no more (the steps before are in `_link`, whose frame is
 * gone by then).
 */
export async function proxy(
  session: Session,
  ctx: ProxyContext,
  done?: (session: Session) => void,
): Promise<void> {
  let source: string | undefined;
  try {
    if (ctx.acceptProxy && !await acceptProxyHeader(session, ctx.acceptProxy, ctx.logger)) return;
    const admitted = admit(session, ctx.policy, ctx.sources, ctx.logger);
    source = admitted instanceof Promise ? await admitted : admitted; // a worker asks the main thread
    if (source === undefined) return;
    const link = await _link(session, ctx);
    if (!link) return;
    try {
      await Promise.all([
        pump(session.client, link.upstream, session.up, link.first),
        pump(link.upstream, session.client, session.down),
      ]);
      session.abort("eof");
    } catch {
      session.abort("reset"); // the first failure closes both sockets
    } finally {
      link.backend.closed(session.up.bytes, session.down.bytes);
    }
  } catch (error) {
    session.abort("reset");
    ctx.logger.limited(
      `internal:${session.frontend}`,
      "proxy",
      `${session.clientAddr} -> ${session.frontend}: internal error: ${describe(error)}`,
    );
  } finally {
    if (source) ctx.sources!.release(source);
    done?.(session);
  }
}

/** A connection linked to its backend, ready to pump. */
interface _Link {
  upstream: StreamConn;
  backend: Backend;
  /** A read of the client already under way, for the client → backend pump. */
  first: EarlyRead | undefined;
}

/**
 * The connection once admitted: the TLS handshake where lb terminates, the
 * route by server name, pick and connect, and the hello (PROXY header, bytes
 * read early). Undefined when it went no further (`session.end` says why).
 */
async function _link(session: Session, ctx: ProxyContext): Promise<_Link | undefined> {
  const tls = "handshake" in session.client;
  if (tls && !await handshakeClient(session, ctx.sniTimeout, ctx.logger)) return undefined;
  let among: ReadonlySet<Backend> | undefined;
  if (ctx.pool.routesBySni()) {
    among = await routeBySni(session, ctx.pool, ctx.sniTimeout, ctx.logger);
    if (!among) return undefined;
  }
  // Where a header is sent, the client's first read runs while the backend is
  // dialled: bytes there by then go out with the header in one write.
  const early = ctx.pool.sendsProxy() ? _readEarly(session.client) : undefined;
  const upstream = await connectBackend(session, ctx, among);
  if (!upstream) {
    session.abort(session.end ?? "no-backend");
    return undefined;
  }
  const backend = session.backend!;
  try {
    return { upstream, backend, first: await _hello(session, upstream, backend, early) };
  } catch (error) {
    backend.closed(session.up.bytes, session.down.bytes); // counted in by the connect
    throw error;
  }
}

/**
 * Writes what goes before the client's stream, in one write: our PROXY
 * header, bytes read before the pumps (after a PROXY header we accepted, or
 * during the dial). A failed write ends the session.
 *
 * @returns The read the client → backend pump starts with, if one is under way.
 */
async function _hello(
  session: Session,
  upstream: StreamConn,
  backend: Backend,
  early: _Early | undefined,
): Promise<EarlyRead | undefined> {
  let first: EarlyRead | undefined = early;
  const extra = early?.n ? early.buf.subarray(0, early.n) : undefined;
  const hello = helloFor(session, backend, extra);
  if (extra) first = undefined; // consumed: the pump starts with a fresh read
  if (hello) {
    try {
      await writeAll(upstream, hello);
    } catch {
      session.abort("reset");
    }
    session.up.bytes += (session.prefetch?.length ?? 0) + (extra?.length ?? 0);
  }
  if (early?.n === null) first = { buf: early.buf, read: Promise.resolve(null) };
  return first;
}

/** A read of the client started now; `n` is set once it has completed (null: EOF). */
interface _Early extends EarlyRead {
  n?: number | null;
}

function _readEarly(client: Deno.Conn): _Early {
  const early: _Early = { buf: new Uint8Array(MIN_BUFFER), read: Promise.resolve(null) };
  early.read = client.read(early.buf);
  early.read.then((n) => early.n = n, () => {}); // a failure is seen again by the pump
  return early;
}

async function connectBackend(
  session: Session,
  ctx: ProxyContext,
  among?: ReadonlySet<Backend>,
): Promise<StreamConn | undefined> {
  const tried = new Set<Backend>();
  const attempts = ctx.retries === null ? Infinity : ctx.retries + 1;
  let dials = 0;
  while (dials < attempts) {
    const backend = ctx.pool.pick(session.clientHost, tried, among);
    if (!backend) break;
    tried.add(backend);
    if (!backend.picked()) continue; // full since the pick (another thread): not a try
    dials++;
    try {
      // The session's close aborts the connect in flight (shutdown, idle sweep).
      const controller = session.connecting = new AbortController();
      if (session.closed) controller.abort(new Deno.errors.Interrupted("connection closed"));
      let tcp: Deno.TcpConn;
      try {
        tcp = await dial(backend.addr, ctx.connectTimeout, { controller });
      } finally {
        session.connecting = undefined;
      }
      const conn = backend.tls
        ? await startBackendTls(tcp, backend, ctx.caCerts, ctx.connectTimeout)
        : tcp;
      ctx.onConnect(backend, true);
      if (session.closed) { // aborted (shutdown) while dialling
        backend.connectFailed(false);
        conn.close();
        return undefined;
      }
      backend.connected();
      session.backend = backend;
      session.upstream = conn;
      return conn;
    } catch (error) {
      // Cancelled (shutdown, idle sweep): not the backend's failure.
      backend.connectFailed(!session.closed);
      if (session.closed) return undefined;
      ctx.onConnect(backend, false, describe(error));
      ctx.logger.limited(
        `dial:${backend.id}`,
        "proxy",
        `for incoming conn ${session.clientAddr}, error dialing ${backend.id}: ${describe(error)}`,
      );
    }
  }
  ctx.logger.limited(
    `nobackend:${session.frontend}`,
    "proxy",
    `${session.clientAddr} -> ${session.frontend}: no backend available${
      tried.size ? ` (${tried.size} tried)` : ""
    }, closing client`,
  );
  return undefined;
}
