/** Bytes counted by one direction of a connection, updated on every read. */
export interface Meter {
  bytes: number;
}

/** First read buffer: small, so an idle connection holds little memory. */
export const MIN_BUFFER = 4 * 1024;
/** Largest read buffer, reached by doubling while reads fill the buffer. */
export const MAX_BUFFER = 64 * 1024;

/**
 * Copies bytes from `src` to `dst` until `src` ends, then half-closes `dst`
 * (`closeWrite`: a FIN) so that the peer sees EOF while the other direction
 * keeps flowing. Partial writes are finished before the next read.
 *
 * @param src Where to read.
 * @param dst Where to write.
 * @param meter Counts the bytes read.
 * @throws Whatever a read, write or `closeWrite` throws (reset, broken pipe,
 * or the socket closed under it); the caller closes both sockets then.
 */
export async function pump(src: Deno.Conn, dst: Deno.Conn, meter: Meter): Promise<void> {
  let buf = new Uint8Array(MIN_BUFFER);
  for (;;) {
    const n = await src.read(buf);
    if (n === null) break;
    meter.bytes += n;
    for (let written = 0; written < n;) {
      written += await dst.write(buf.subarray(written, n));
    }
    // A full read means more is waiting: grow, up to MAX_BUFFER.
    if (n === buf.length && buf.length < MAX_BUFFER) buf = new Uint8Array(buf.length * 2);
  }
  await dst.closeWrite();
}
