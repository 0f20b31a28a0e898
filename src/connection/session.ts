import { formatAddr } from "../common/address.ts";
import type { Backend } from "../balancing/backend.ts";
import type { StreamConn } from "./listen.ts";
import type { Logger } from "../observability/log.ts";
import type { Meter } from "./pump.ts";

/**
 * How a connection can end, as the access log and `/metrics` name it: both
 * sides closed, a reset, the idle timeout, no backend could take it, closed by
 * the end of a drain, cut by a forced exit (a second signal), or refused
 * before any backend was dialled (a bad PROXY header; `refusal` says why).
 */
export const END_REASONS = [
  "eof",
  "reset",
  "timeout",
  "no-backend",
  "drained",
  "killed",
  "refused",
] as const;

/** How a connection ended; see {@link END_REASONS}. */
export type EndReason = (typeof END_REASONS)[number];

/**
 * One client connection and, once dialled, its backend connection. Closing is
 * idempotent: the first `abort` closes both sockets, which also ends any read
 * or write pending on them.
 */
export class Session {
  readonly client: StreamConn;
  /** The client, `host:port`: the peer, or the address an accepted PROXY header gave. */
  clientAddr: string;
  /** The client's address, for hashing and allow lists. */
  clientHost: string;
  /** The client's port. */
  clientPort: number;
  /** The address the client connected to (from an accepted PROXY header, else our socket). */
  localAddr: Deno.NetAddr;
  /** The peer that sent an accepted PROXY header, `host:port`; undefined without one. */
  peerAddr: string | undefined;
  /** PP2 AUTHORITY and UNIQUE_ID from an accepted v2 header, for the access log. */
  authority: string | undefined;
  uniqueId: string | undefined;
  /**
   * Bytes read from the client before the pumps start (after a PROXY header):
   * sent to the backend first, then the rest of the stream.
   */
  prefetch: Uint8Array | undefined;
  /** The TLS server name of the ClientHello, on a frontend that routes by SNI. */
  serverName: string | undefined;
  /** The SNI route taken: the matched `sni=` name, or `default`. */
  sniRoute: string | undefined;
  /** Why a `refused` connection was refused, a metrics label (e.g. `proxy-timeout`). */
  refusal: string | undefined;
  readonly frontend: string;
  readonly started = Date.now();
  /** Client → backend: the connection's `bytesIn` in logs and metrics. */
  readonly up: Meter = { bytes: 0 };
  /** Backend → client: the connection's `bytesOut` in logs and metrics. */
  readonly down: Meter = { bytes: 0 };
  backend: Backend | undefined;
  upstream: StreamConn | undefined;
  end: EndReason | undefined;
  /** Bytes seen at the last idle sweep; see `Lb`'s idle sweep. */
  idleMark = -1;
  idleSince = 0;
  #closed = false;
  /** Made on first use of `signal`: most connections never need one. */
  #closing: AbortController | undefined;
  /** The backend connect in flight, aborted by `close`; set by the proxy while it dials. */
  connecting: AbortController | undefined;

  constructor(client: StreamConn, frontend: string) {
    this.client = client;
    this.frontend = frontend;
    const remote = client.remoteAddr as Deno.NetAddr;
    this.clientAddr = formatAddr(remote);
    this.clientHost = remote.hostname;
    this.clientPort = remote.port;
    this.localAddr = client.localAddr as Deno.NetAddr;
  }

  /**
   * Ends the connection before any backend is dialled: `reason` (a metrics
   * label) is kept in `refusal`, and one rate-limited line per frontend and
   * reason says `why`.
   */
  refuse(reason: string, why: string, logger: Logger): void {
    this.refusal ??= reason;
    this.abort("refused");
    logger.limited(
      `refused:${this.frontend}:${reason}`,
      "proxy",
      `${this.clientAddr} -> ${this.frontend}: ${why}, closing client`,
    );
  }

  /** Aborts when the session closes: ends a wait for the client's first bytes. */
  get signal(): AbortSignal {
    this.#closing ??= new AbortController();
    if (this.#closed) this.#closing.abort(_closedReason());
    return this.#closing.signal;
  }

  /** Whether both sockets are closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Ends the connection now, recording why (the first reason wins). */
  abort(reason: EndReason): void {
    this.end ??= reason;
    this.close();
  }

  /** Closes both sockets, once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing?.abort(_closedReason());
    this.connecting?.abort(_closedReason());
    closeQuietly(this.client);
    if (this.upstream) closeQuietly(this.upstream);
  }
}

function _closedReason(): Error {
  return new Deno.errors.Interrupted("connection closed");
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed by the runtime: nothing to release.
  }
}
