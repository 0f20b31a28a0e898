/**
 * Loopback helpers: a free port, and waiting for a listener to accept.
 * @module
 */

/** A port free on 127.0.0.1 now (bound on port 0, then released). */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/**
 * Waits until `127.0.0.1:port` accepts a connection.
 *
 * @throws {Deno.errors.TimedOut} When nothing accepts within `timeoutMs`.
 */
export async function waitListening(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Deno.errors.TimedOut(`nothing listening on 127.0.0.1:${port}: ${error}`);
      }
      await sleep(50);
    }
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
