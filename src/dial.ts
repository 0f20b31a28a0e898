import type { HostPort } from "./address.ts";

/** Options for {@link dial}. */
export interface DialOptions {
  /** Cancels the connect (the client went away, shutdown); it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Opens a TCP connection, giving up after `timeoutMs` or when `options.signal` aborts.
 *
 * @param addr Where to connect.
 * @param timeoutMs Bound on the connect, ms.
 * @param options A signal that cancels the connect.
 * @returns The connection, with Nagle's algorithm off.
 * @throws {Deno.errors.TimedOut} When the connect takes longer than `timeoutMs`;
 * the signal's reason when it aborts; otherwise what `Deno.connect` throws
 * (refused, unreachable, ...).
 */
export async function dial(
  addr: HostPort,
  timeoutMs: number,
  options: DialOptions = {},
): Promise<Deno.TcpConn> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Deno.errors.TimedOut(`connect timed out after ${timeoutMs}ms`)),
    Math.min(timeoutMs, 2 ** 31 - 1), // past that a timer fires at once
  );
  const signal = options.signal
    ? AbortSignal.any([controller.signal, options.signal])
    : controller.signal;
  try {
    signal.throwIfAborted();
    const conn = await Deno.connect({ hostname: addr.hostname, port: addr.port, signal });
    conn.setNoDelay(true);
    return conn;
  } catch (error) {
    throw signal.aborted ? signal.reason : error;
  } finally {
    clearTimeout(timer);
  }
}
