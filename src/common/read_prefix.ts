/**
 * Prefetch: read the first bytes of a connection into a bounded buffer until
 * a parser decides (a PROXY header, a ClientHello), within a time limit.
 * Nothing is read past the read that completes the decision, and every byte
 * read is returned, so the caller can replay or strip them.
 * @module
 */

/** What a parser says of the bytes read so far. */
export type PrefixVerdict<T> =
  | { status: "incomplete" }
  | { status: "ok"; value: T }
  | { status: "error"; error: Error };

/** Options for {@link readPrefix}. */
export interface ReadPrefixOptions<T> {
  /** Decides on every byte read so far (from offset 0). */
  parse(bytes: Uint8Array): PrefixVerdict<T>;
  /** The buffer never grows past this: `parse` must decide by then. */
  maxBytes: number;
  /** Milliseconds the whole prefix may take. */
  timeoutMs: number;
  /** Stops waiting when aborted: rejects with `signal.reason`. */
  signal?: AbortSignal | undefined;
  /** Bytes of the stream already read (after a PROXY header): parsed first, returned first. */
  initial?: Uint8Array | undefined;
  /** The error for a prefix still incomplete after `timeoutMs`. */
  timeout(): Error;
  /** The error for EOF (`cause` undefined) or a failed read before a decision. */
  closed(filled: number, cause?: unknown): Error;
}

/** Largest delay `setTimeout` honours (2^31 - 1 ms); longer ones fire at once. */
export const MAX_TIMEOUT_MS = 0x7fffffff;

/** The first read's size: most prefixes fit one read. */
const _FIRST_READ_BYTES = 1024;

/**
 * Reads `conn` until `options.parse` decides.
 *
 * On a rejection a read may still be pending on `conn`: the caller closes
 * `conn` (it is unusable anyway), which ends that read.
 *
 * @returns The parser's value and every byte read (the prefix and what came after it in the same reads).
 * @throws The parser's error, `timeout()`, `closed()`, or the signal's reason.
 */
export async function readPrefix<T>(
  conn: Deno.Conn,
  options: ReadPrefixOptions<T>,
): Promise<{ value: T; bytes: Uint8Array<ArrayBuffer> }> {
  const { signal, timeoutMs } = options;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new RangeError(
      `Cannot read a prefix as "timeoutMs" must be an integer 1-${MAX_TIMEOUT_MS}: current value is ${timeoutMs}`,
    );
  }
  signal?.throwIfAborted();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(options.timeout()), options.timeoutMs);
    onAbort = () => reject(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await _readUntilDecided(conn, options, stopped);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

async function _readUntilDecided<T>(
  conn: Deno.Conn,
  options: ReadPrefixOptions<T>,
  stopped: Promise<never>,
): Promise<{ value: T; bytes: Uint8Array<ArrayBuffer> }> {
  const initial = options.initial ?? new Uint8Array(0);
  let buf = new Uint8Array(Math.max(initial.length, Math.min(_FIRST_READ_BYTES, options.maxBytes)));
  buf.set(initial);
  let filled = initial.length;
  if (filled > 0) {
    const verdict = options.parse(buf.subarray(0, filled));
    if (verdict.status === "ok") return { value: verdict.value, bytes: buf.slice(0, filled) };
    if (verdict.status === "error") throw verdict.error;
  }
  for (;;) {
    if (filled === buf.length) {
      // The parser decides by maxBytes, so a full buffer is always below it.
      const bigger = new Uint8Array(Math.min(2 * buf.length, options.maxBytes));
      bigger.set(buf);
      buf = bigger;
    }
    const reading = conn.read(buf.subarray(filled)).catch((error: unknown) => {
      throw options.closed(filled, error);
    });
    const n = await Promise.race([reading, stopped]);
    if (n === null) throw options.closed(filled);
    filled += n;
    const verdict = options.parse(buf.subarray(0, filled));
    if (verdict.status === "ok") return { value: verdict.value, bytes: buf.slice(0, filled) };
    if (verdict.status === "error") throw verdict.error;
  }
}
