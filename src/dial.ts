import type { HostPort } from "./address.ts";

/**
 * Opens a TCP connection, giving up after `timeoutMs`.
 *
 * @param addr Where to connect.
 * @param timeoutMs Bound on the connect, ms.
 * @returns The connection, with Nagle's algorithm off.
 * @throws {Deno.errors.TimedOut} When the connect takes longer than `timeoutMs`;
 * otherwise what `Deno.connect` throws (refused, unreachable, ...).
 */
export async function dial(addr: HostPort, timeoutMs: number): Promise<Deno.TcpConn> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Deno.errors.TimedOut(`connect timed out after ${timeoutMs}ms`)),
    Math.min(timeoutMs, 2 ** 31 - 1), // past that a timer fires at once
  );
  try {
    const conn = await Deno.connect({
      hostname: addr.hostname,
      port: addr.port,
      signal: controller.signal,
    });
    conn.setNoDelay(true);
    return conn;
  } catch (error) {
    throw controller.signal.aborted ? controller.signal.reason : error;
  } finally {
    clearTimeout(timer);
  }
}
