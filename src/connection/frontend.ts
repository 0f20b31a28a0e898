import { formatAddr } from "../common/address.ts";
import type { FrontendConfig } from "../config/config.ts";
import type { Gate } from "./gate.ts";
import { Pool } from "../balancing/pool.ts";
import { describe, outOfFds } from "../common/errors.ts";
import { acceptProxy } from "./accept_proxy.ts";
import { accessPolicy } from "./admission.ts";
import type { FrontListener, StreamConn } from "./listen.ts";
import type { Termination } from "../tls/termination.ts";
import { proxy, type ProxyContext } from "./proxy.ts";
import { Session } from "./session.ts";
import { Cell, type SharedCounters } from "../common/shared_counters.ts";

/** Called once per finished connection (access log, metrics). */
export type SessionHook = (session: Session) => void;

/** What a frontend shares with the rest of lb. */
export interface FrontendContext extends Omit<ProxyContext, "pool"> {
  gate: Gate;
  onEnd: SessionHook;
  /**
   * Counters shared with the other threads (`--workers`): each backend's open
   * connections are counted there, by frontend name and backend id.
   * @default none: this thread counts alone
   */
  counters?: SharedCounters | undefined;
}

/** A listener, its pool, and the connections it has open. */
export class Frontend {
  readonly name: string;
  /** Replaced when a reload moves the frontend (see `relisten`). */
  listener: FrontListener;
  addr: string;
  /** Connections open now in this thread. */
  readonly sessions = new Set<Session>();
  /** Connections ever accepted. */
  total = 0;
  /** Bytes of finished connections, client → backend and back. */
  bytesIn = 0;
  bytesOut = 0;
  /** The certificates a TLS listener presents; undefined on a plain TCP frontend. */
  termination: Termination | undefined;
  #ctx: FrontendContext;
  #proxyCtx: ProxyContext;
  #accepting: Promise<void> | undefined;
  /** Connections open now in every thread (by frontend name, `--workers`). */
  readonly #open: Cell;
  #stopped = false;

  constructor(
    config: FrontendConfig,
    listener: FrontListener,
    ctx: FrontendContext,
    termination?: Termination,
  ) {
    this.name = config.name;
    this.listener = listener;
    this.termination = termination;
    this.addr = formatAddr(listener.addr);
    this.#ctx = ctx;
    this.#open = ctx.counters?.cell(`frontend\0${this.name}`) ?? Cell.local();
    this.#proxyCtx = { ...ctx, pool: new Pool(config.balance, config.backends) };
    this.#share(this.pool);
    this.configureFrontend(config);
  }

  /** Connections open now, over every thread. */
  get open(): number {
    return this.#open.value;
  }

  /** The backends new connections go to; replaced on reload. */
  get pool(): Pool {
    return this.#proxyCtx.pool;
  }

  set pool(pool: Pool) {
    this.#share(pool);
    this.#proxyCtx = { ...this.#proxyCtx, pool };
  }

  /** Counts each backend's open connections with the other threads' (no-op without workers). */
  #share(pool: Pool): void {
    const counters = this.#ctx.counters;
    if (!counters) return;
    for (const backend of pool.backends) {
      backend.share(counters.cell(`backend\0${this.name}\0${backend.id}`));
    }
    pool.strategy.share?.(counters.cell(`turn\0${this.name}`));
    if (counters.fullNews()) {
      this.#ctx.logger.log(
        "lb",
        `warning: the table of shared counters is full (${counters.slots} names): backends ` +
          `new from now on count their connections per thread (maxconn, leastconn per thread)`,
      );
    }
  }

  /** Replaces the connect settings new connections use (on reload). */
  configure(
    settings: Pick<ProxyContext, "connectTimeout" | "sniTimeout" | "caCerts" | "retries">,
  ): void {
    this.#proxyCtx = { ...this.#proxyCtx, ...settings };
  }

  /**
   * Moves to `listener` (a reload changed the address): accepts there at
   * once, then closes the old listener. Open connections go on.
   */
  async relisten({ listener, tls }: { listener: FrontListener; tls: Termination | undefined }) {
    const old = this.listener;
    const oldLoop = this.#accepting;
    this.listener = listener;
    this.termination = tls;
    this.addr = formatAddr(listener.addr);
    if (this.#stopped) {
      listener.close();
      return;
    }
    this.#accepting = this.#acceptLoop();
    try {
      old.close();
    } catch {
      // Already closed.
    }
    this.#ctx.gate.wakeAll(); // an old loop waiting on a full gate re-checks and ends
    await oldLoop;
  }

  /**
   * Takes the per-frontend settings of `config` (start, reload): `--accept-proxy`
   * and the allow/deny lists (the global ones already filled in where the
   * frontend has none: `frontendWithDefaults`).
   */
  configureFrontend(config: FrontendConfig): void {
    const accept = config.acceptProxy ? acceptProxy(config.acceptProxy) : undefined;
    this.#proxyCtx = { ...this.#proxyCtx, acceptProxy: accept, policy: accessPolicy(config) };
  }

  /** One line for the log: `frontend NAME listening on ADDR -> BACKENDS (STRATEGY)`. */
  describe(): string {
    const backends = this.pool.backends.map((b) => b.id).join(", ");
    return `frontend ${this.name} listening on ${this.addr} -> ${backends} (${this.pool.balance})`;
  }

  /** Starts the accept loop; `stop()` ends it. */
  start(): void {
    this.#accepting ??= this.#acceptLoop();
  }

  /** Stops accepting (closes the listener); open connections go on. */
  async stop(): Promise<void> {
    if (!this.#stopped) {
      this.#stopped = true;
      try {
        this.listener.close();
      } catch {
        // Already closed.
      }
    }
    // A loop waiting on a full gate would otherwise wait for a connection to end.
    this.#ctx.gate.wakeAll();
    await this.#accepting;
  }

  async #acceptLoop(): Promise<void> {
    const { gate, logger } = this.#ctx;
    const listener = this.listener;
    while (!this.#stopped && listener === this.listener) {
      const full = gate.wait();
      if (full) {
        await full;
        continue;
      }
      let conn: StreamConn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#stopped || listener !== this.listener) return;
        // A client that reset before accept (ENOTCONN, ECONNABORTED), or out of descriptors:
        // the loop goes on. Only the latter waits, for a descriptor to free; a wait after
        // each reset would let a burst of resets hold up every client queued behind it.
        const fds = outOfFds(error);
        const hint = fds ? " (raise the soft limit, ulimit -n: 2 per connection)" : "";
        logger.limited(`accept:${this.name}`, "accept", `${this.addr}: ${describe(error)}${hint}`);
        if (fds) await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      if (!gate.tryEnter() && !await this.#hold(conn, listener)) return;
      this.#serve(conn);
    }
  }

  /**
   * Another loop (another frontend or thread) took the last place between
   * this loop's check and its accept: the client waits, connected and unread,
   * as it would have in the backlog, until a place frees. Closes it and
   * returns false when the frontend stops or moves first.
   */
  async #hold(conn: StreamConn, listener: FrontListener): Promise<boolean> {
    const { gate } = this.#ctx;
    // Until the frontend stops or moves (a reload waits for this loop to end).
    while (!this.#stopped && listener === this.listener) {
      await gate.wait();
      if (gate.tryEnter()) return true;
    }
    try {
      conn.close();
    } catch { /* already closed */ }
    return false;
  }

  #serve(conn: StreamConn): void {
    const { gate } = this.#ctx;
    this.total++;
    let session: Session;
    try {
      if ("setNoDelay" in conn) conn.setNoDelay(true);
      session = new Session(conn, this.name);
    } catch {
      // Reset between accept and here: nothing to proxy.
      gate.leave();
      try {
        conn.close();
      } catch { /* already closed */ }
      return;
    }
    this.sessions.add(session);
    this.#open.add();
    void proxy(session, this.#proxyCtx, this.#done);
  }

  /** Counts a connection out once `proxy` is done with it: one function for every connection. */
  readonly #done = (session: Session): void => {
    this.sessions.delete(session);
    this.#open.sub();
    this.bytesIn += session.up.bytes;
    this.bytesOut += session.down.bytes;
    this.#ctx.gate.leave();
    this.#ctx.onEnd(session);
  };
}
