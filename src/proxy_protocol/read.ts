/**
 * Reads a PROXY protocol header off a connection, bounded in bytes and time.
 *
 * @module
 */
import type { ProxyHeader, ProxyHeaderErrorReason } from "./header.ts";
import { MAX_HEADER_BYTES, parseProxyHeader } from "./parse.ts";
import { readPrefix } from "../common/read_prefix.ts";

/**
 * A connection that does not start with a valid PROXY header in time. Catch
 * it by class and branch on {@linkcode ProxyHeaderError.reason}, a short
 * label fit for metrics; the message is for logs.
 */
export class ProxyHeaderError extends Error {
  override name = "ProxyHeaderError";
  /** Why the header was refused. */
  readonly reason: ProxyHeaderErrorReason;

  /**
   * @param reason Why the header was refused.
   * @param message What happened, for logs.
   * @param options `cause`: the read error behind a `closed` reason.
   */
  constructor(reason: ProxyHeaderErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

/** Options for {@linkcode readProxyHeader}. */
export interface ReadProxyHeaderOptions {
  /** Milliseconds the whole header may take to arrive, 1 to 2^31 - 1 (the spec suggests at least 3000). */
  timeoutMs: number;
  /** Stops waiting when aborted: the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** A header read off a connection. */
export interface ReadProxyHeaderResult {
  /** The decoded header. */
  header: ProxyHeader;
  /** Bytes that followed the header in the same reads: the start of the data, to forward first. */
  rest: Uint8Array<ArrayBuffer>;
}

/**
 * Reads the PROXY header (v1 or v2) that must start `conn`. Reads go into a
 * buffer that starts at 1 KiB and grows only as a header needs, never past
 * {@linkcode MAX_HEADER_BYTES}; each read is parsed at once, so no read is
 * made after the header is complete and an invalid header is refused as soon
 * as its bytes show it. Bytes after the header that arrived in the same reads
 * come back as `rest`.
 *
 * On a rejection a read may still be pending on `conn`: the caller must close
 * `conn` (which it does anyway, as the connection is unusable), and that ends
 * the read.
 *
 * @param conn The accepted connection; nothing has been read from it yet.
 * @param options The time limit and an optional abort signal.
 * @returns The header and the bytes after it.
 * @throws {ProxyHeaderError} When the bytes are not a valid header (the
 * reasons of `parseProxyHeader`), the time is up (`timeout`), or the peer
 * closes or the read fails first (`closed`, with the read error as `cause`).
 * @throws {RangeError} When `timeoutMs` is not an integer 1 to 2^31 - 1.
 * @throws The signal's `reason` when `signal` is aborted.
 * @example
 * ```ts
 * const conn = await listener.accept();
 * try {
 *   const { header, rest } = await readProxyHeader(conn, { timeoutMs: 3000 });
 *   const client = header.source ?? conn.remoteAddr;
 *   // forward `rest`, then pump the rest of `conn`
 * } catch (error) {
 *   conn.close();
 *   if (error instanceof ProxyHeaderError) metrics.refused(error.reason);
 * }
 * ```
 */
export async function readProxyHeader(
  conn: Deno.Conn,
  options: ReadProxyHeaderOptions,
): Promise<ReadProxyHeaderResult> {
  const { timeoutMs, signal } = options;
  const { value, bytes } = await readPrefix(conn, {
    parse: (buf) => {
      const result = parseProxyHeader(buf);
      if (result.status === "incomplete") return result;
      if (result.status === "error") {
        return { status: "error", error: new ProxyHeaderError(result.reason, result.message) };
      }
      return { status: "ok", value: result };
    },
    maxBytes: MAX_HEADER_BYTES,
    timeoutMs,
    signal,
    timeout: () =>
      new ProxyHeaderError("timeout", `No complete PROXY header within ${timeoutMs} ms`),
    closed: (filled, cause) =>
      cause === undefined
        ? new ProxyHeaderError(
          "closed",
          `Cannot read PROXY header as the peer closed after ${filled} bytes`,
        )
        : new ProxyHeaderError("closed", "Cannot read PROXY header as the read failed", { cause }),
  });
  return { header: value.header, rest: bytes.slice(value.length) };
}
