/** Bytes counted by one direction of a connection, updated on every read. */
export interface Meter {
  bytes: number;
}

/** Read buffer of an idle or lightly used direction: small, so an idle connection holds little memory. */
export const MIN_BUFFER = 1024;
/** Read buffer while reads keep filling the small one; taken from a shared free list and given back. */
export const MAX_BUFFER = 64 * 1024;

/** A read issued before the pump started, into a buffer of at least {@link MIN_BUFFER}. */
export interface EarlyRead {
  buf: Uint8Array<ArrayBuffer>;
  read: Promise<number | null>;
}

/** Large buffers not in use, reused instead of allocated (at most `SPARE_MAX`, 1 MiB). */
const spare: Uint8Array<ArrayBuffer>[] = [];
const SPARE_MAX = 16;

function release(buf: Uint8Array<ArrayBuffer>): void {
  if (spare.length < SPARE_MAX) spare.push(buf);
}

/**
 * Copies bytes from `src` to `dst` until `src` ends, then half-closes `dst`
 * (`closeWrite`: a FIN) so that the peer sees EOF while the other direction
 * keeps flowing. Partial writes are finished before the next read. Deno reads
 * a connection reset as end of stream, so a reset source also ends in a FIN.
 *
 * @param src Where to read.
 * @param dst Where to write.
 * @param meter Counts the bytes read.
 * @param first A read of `src` already under way into `first.buf` (issued while
 * the backend was dialled), taken as the loop's first read.
 * @throws Whatever a read, write or `closeWrite` throws (reset, broken pipe,
 * or the socket closed under it); the caller closes both sockets then.
 */
export async function pump(
  src: Deno.Conn,
  dst: Deno.Conn,
  meter: Meter,
  first?: EarlyRead,
): Promise<void> {
  const small = first?.buf ?? new Uint8Array(MIN_BUFFER);
  let buf = small;
  let pending = first?.read;
  try {
    for (;;) {
      const n = await (pending ?? src.read(buf));
      pending = undefined;
      if (n === null) break;
      meter.bytes += n;
      for (let written = 0; written < n;) {
        written += await dst.write(buf.subarray(written, n));
      }
      // A full read means more is waiting: read into a large buffer. A short
      // one means the socket is drained: give the large buffer back while idle.
      if (n === buf.length) {
        if (buf === small) buf = spare.pop() ?? new Uint8Array(MAX_BUFFER);
      } else if (buf !== small) {
        release(buf);
        buf = small;
      }
    }
  } finally {
    if (buf !== small) release(buf);
  }
  await dst.closeWrite();
}
