/** Bytes counted by one direction of a connection, updated on every read. */
export interface Meter {
  bytes: number;
}

/** Read buffer of an idle or lightly used direction: small, so an idle connection holds little memory. */
export const MIN_BUFFER = 1024;
/** Read buffer once a read fills the small one; taken from a shared free list and given back. */
export const MID_BUFFER = 64 * 1024;
/**
 * Read buffer once a read fills the middle one. A read or a write costs far
 * more per call than per byte, so bulk data moves with fewer, larger ones: one
 * bulk stream ran 1.5-1.8x faster than with 64 KiB, at under half the CPU per
 * GB (bench/README.md).
 */
export const MAX_BUFFER = 1024 * 1024;
/**
 * Most `MAX_BUFFER` buffers in existence per event loop, in use or spare
 * (8 MiB); when all are in use, a pump stays at `MID_BUFFER`.
 */
export const MAX_BUFFER_COUNT = 8;

/** A read issued before the pump started, into a buffer of at least {@link MIN_BUFFER}. */
export interface EarlyRead {
  buf: Uint8Array<ArrayBuffer>;
  read: Promise<number | null>;
}

/** Middle buffers not in use, reused instead of allocated (at most `SPARE_MID`, 1 MiB). */
const spareMid: Uint8Array<ArrayBuffer>[] = [];
const SPARE_MID = 16;
/** Largest buffers not in use. They are never dropped, so never garbage for the GC to find. */
const spareMax: Uint8Array<ArrayBuffer>[] = [];
let maxBuffers = 0;

/**
 * The buffer to read into after a read filled `buf`: the next size up, or
 * `buf` when none is free. `small` is the pump's own buffer, never shared.
 */
function grow(buf: Uint8Array<ArrayBuffer>, small: Uint8Array): Uint8Array<ArrayBuffer> {
  if (buf === small) return spareMid.pop() ?? new Uint8Array(MID_BUFFER);
  if (buf.length === MAX_BUFFER) return buf;
  let larger = spareMax.pop();
  if (larger === undefined && maxBuffers < MAX_BUFFER_COUNT) {
    larger = new Uint8Array(MAX_BUFFER);
    maxBuffers++;
  }
  if (larger === undefined) return buf;
  release(buf);
  return larger;
}

/** Gives a shared buffer back to its free list. */
function release(buf: Uint8Array<ArrayBuffer>): void {
  if (buf.length === MAX_BUFFER) spareMax.push(buf);
  else if (spareMid.length < SPARE_MID) spareMid.push(buf);
}

/**
 * Copies bytes from `src` to `dst` until `src` ends, then half-closes `dst`
 * (`closeWrite`: a FIN) so that the peer sees EOF while the other direction
 * keeps flowing. Partial writes are finished before the next read. Deno reads
 * a connection reset as end of stream, so a reset source also ends in a FIN.
 *
 * Reads go into 1 KiB; a read that fills its buffer moves the next one to
 * 64 KiB, then 1 MiB (when one of the shared ones is free); a read that does
 * not fill it goes back to 1 KiB, so an idle connection holds 1 KiB.
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
      // A full read means more is waiting: read into a larger buffer. A short
      // one means the socket is drained: give the shared buffer back while idle.
      if (n === buf.length) buf = grow(buf, small);
      else if (buf !== small) {
        release(buf);
        buf = small;
      }
    }
  } finally {
    if (buf !== small) release(buf);
  }
  await dst.closeWrite();
}
