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
import { MIN_BUFFER, pump } from "./pump.ts";
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
 * Never throws; on return both sockets are closed and `session.end` is set.
 */
export async function proxy(session: Session, ctx: ProxyContext): Promise<void> {
  if (ctx.acceptProxy && !await acceptProxyHeader(session, ctx.acceptProxy, ctx.logger)) return;
  const admitted = admit(session, ctx.policy, ctx.sources, ctx.logger);
  const source = admitted instanceof Promise ? await admitted : admitted; // a worker asks the main thread
  if (source === undefined) return;
  try {
    const tls = "handshake" in session.client;
    if (tls && !await handshakeClient(session, ctx.sniTimeout, ctx.logger)) return;
    await _proxy(session, ctx);
  } finally {
    if (source !== "") ctx.sources!.release(source);
  }
}

/** The connection once admitted: route, pick and connect, say hello, pump. */
async function _proxy(session: Session, ctx: ProxyContext): Promise<void> {
  let among: ReadonlySet<Backend> | undefined;
  if (ctx.pool.routesBySni()) {
    among = await routeBySni(session, ctx.pool, ctx.sniTimeout, ctx.logger);
    if (!among) return;
  }
  // Where a header is sent, the client's first read runs while the backend is
  // dialled: bytes there by then go out with the header in one write.
  const early = ctx.pool.sendsProxy() ? _readEarly(session.client) : undefined;
  const upstream = await connectBackend(session, ctx, among);
  if (!upstream) return session.abort(session.end ?? "no-backend");
  const backend = session.backend!;
  const fail = () => session.abort("reset");
  try {
    // What goes before the client's stream, in one write: our PROXY header,
    // bytes read before the pumps (after a PROXY header we accepted, or
    // during the dial).
    let first = early;
    const extra = early?.n ? early.buf.subarray(0, early.n) : undefined;
    const hello = helloFor(session, backend, extra);
    if (extra) first = undefined; // consumed: the pump starts with a fresh read
    if (hello) {
      await writeAll(upstream, hello).catch(fail);
      session.up.bytes += (session.prefetch?.length ?? 0) + (extra?.length ?? 0);
    }
    if (early?.n === null) first = { buf: early.buf, read: Promise.resolve(null) };
    await Promise.all([
      pump(session.client, upstream, session.up, first).catch(fail),
      pump(upstream, session.client, session.down).catch(fail),
    ]);
    session.abort("eof");
  } finally {
    backend.closed(session.up.bytes, session.down.bytes);
  }
}

/** A read of the client started now; `n` is set once it has completed (null: EOF). */
interface _Early {
  buf: Uint8Array<ArrayBuffer>;
  read: Promise<number | null>;
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
