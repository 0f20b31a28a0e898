import { formatAddr } from "../common/address.ts";
import type { Backend } from "../balancing/backend.ts";
import type { Meter } from "./pump.ts";

/**
 * How a connection can end, as the access log and `/metrics` name it: both
 * sides closed, a reset, the idle timeout, no backend could take it, closed by
 * the end of a drain, or cut by a forced exit (a second signal).
 */
export const END_REASONS = ["eof", "reset", "timeout", "no-backend", "drained", "killed"] as const;

/** How a connection ended; see {@link END_REASONS}. */
export type EndReason = (typeof END_REASONS)[number];

/**
 * One client connection and, once dialled, its backend connection. Closing is
 * idempotent: the first `abort` closes both sockets, which also ends any read
 * or write pending on them.
 */
export class Session {
  readonly client: Deno.TcpConn;
  readonly clientAddr: string;
  readonly clientHost: string;
  readonly frontend: string;
  readonly started = Date.now();
  /** Client → backend: the connection's `bytesIn` in logs and metrics. */
  readonly up: Meter = { bytes: 0 };
  /** Backend → client: the connection's `bytesOut` in logs and metrics. */
  readonly down: Meter = { bytes: 0 };
  backend: Backend | undefined;
  upstream: Deno.TcpConn | undefined;
  end: EndReason | undefined;
  /** Bytes seen at the last idle sweep; see `Lb`'s idle sweep. */
  idleMark = -1;
  idleSince = 0;
  #closed = false;
  #closing = new AbortController();

  constructor(client: Deno.TcpConn, frontend: string) {
    this.client = client;
    this.frontend = frontend;
    const remote = client.remoteAddr as Deno.NetAddr;
    this.clientAddr = formatAddr(remote);
    this.clientHost = remote.hostname;
  }

  /** Aborts when the session closes: cancels a backend connect in flight. */
  get signal(): AbortSignal {
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
    this.#closing.abort(new Deno.errors.Interrupted("connection closed"));
    closeQuietly(this.client);
    if (this.upstream) closeQuietly(this.upstream);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed by the runtime: nothing to release.
  }
}
