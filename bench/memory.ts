/**
 * Memory per idle proxied connection: RSS growth of the proxy's process tree
 * over N idle connections, divided by N.
 * @module
 */
import { sleep } from "./net.ts";
import { fdCount, rssKiB } from "./proc.ts";

/** What {@link idleMemory} measured. */
export interface IdleMemoryResult {
  /** RSS growth per connection, bytes. */
  bytesPerConn: number;
  /** RSS before and with the connections open, KiB. */
  baseKiB: number;
  loadedKiB: number;
  /** Connections that opened. */
  opened: number;
  /** File descriptors of the proxy's processes before and with the connections open. */
  baseFds: number;
  loadedFds: number;
}

/**
 * Opens `count` idle connections to 127.0.0.1:port (in batches), waits
 * `settleMs` for the proxy to dial its backends, reads the RSS of `pids()`,
 * then closes them all.
 *
 * @throws {Error} When fewer than 90% of the connections open.
 */
export async function idleMemory(
  port: number,
  pids: () => number[],
  count: number,
  settleMs: number,
): Promise<IdleMemoryResult> {
  const baseKiB = rssKiB(pids());
  const baseFds = fdCount(pids());
  const conns: Deno.TcpConn[] = [];
  try {
    const batch = 100;
    for (let i = 0; i < count; i += batch) {
      const settled = await Promise.allSettled(
        Array.from(
          { length: Math.min(batch, count - i) },
          () => Deno.connect({ hostname: "127.0.0.1", port }),
        ),
      );
      for (const s of settled) if (s.status === "fulfilled") conns.push(s.value);
    }
    if (conns.length < count * 0.9) {
      throw new Error(`only ${conns.length} of ${count} idle connections opened`);
    }
    await sleep(settleMs);
    const loadedKiB = rssKiB(pids());
    const loadedFds = fdCount(pids());
    return {
      bytesPerConn: ((loadedKiB - baseKiB) * 1024) / conns.length,
      baseKiB,
      loadedKiB,
      opened: conns.length,
      baseFds,
      loadedFds,
    };
  } finally {
    for (const conn of conns) conn.close();
  }
}
