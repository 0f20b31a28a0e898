/**
 * Reads a TLS ClientHello off a connection, bounded in bytes and time,
 * without consuming it: every byte read comes back to be forwarded first
 * (caddy-l4's prefetch and rewind).
 *
 * @module
 */
import {
  type HelloErrorReason,
  type HelloOk,
  MAX_HELLO_RECORD_BYTES,
  parseClientHello,
} from "./client_hello.ts";
import { readPrefix } from "../common/read_prefix.ts";

/**
 * {@linkcode HelloErrorReason} plus what can go wrong on a socket: `timeout`
 * (no whole ClientHello in time) and `closed` (EOF or a read error first).
 */
export type ClientHelloErrorReason = HelloErrorReason | "timeout" | "closed";

/**
 * A connection that does not start with an acceptable ClientHello in time.
 * Catch it by class and branch on {@linkcode ClientHelloError.reason}, a
 * short label fit for metrics; the message is for logs.
 */
export class ClientHelloError extends Error {
  override name = "ClientHelloError";
  /** Why the connection was refused. */
  readonly reason: ClientHelloErrorReason;

  /**
   * @param reason Why the connection was refused.
   * @param message What happened, for logs.
   * @param options `cause`: the read error behind a `closed` reason.
   */
  constructor(reason: ClientHelloErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

/** Options for {@linkcode readClientHello}. */
export interface ReadClientHelloOptions {
  /** Milliseconds the whole ClientHello may take to arrive, 1 to 2^31 - 1. */
  timeoutMs: number;
  /** Stops waiting when aborted: the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /**
   * The stream's bytes already read (after a PROXY header, often in the same
   * segment as the start of the ClientHello): parsed first, and part of `bytes`.
   */
  initial?: Uint8Array | undefined;
}

/** A ClientHello read off a connection. */
export interface ReadClientHelloResult {
  /** What the ClientHello says. */
  hello: HelloOk;
  /**
   * Every byte read, in order: the hello's records and whatever came after
   * them in the same read. Forward exactly these first, then the rest of the
   * stream; nothing was consumed.
   */
  bytes: Uint8Array<ArrayBuffer>;
}

/**
 * Reads the ClientHello that must start `conn`. Reads go into a buffer that
 * starts at 1 KiB and grows only as the hello needs, never past
 * {@linkcode MAX_HELLO_RECORD_BYTES}; each read is parsed at once, so no
 * read is made after the hello is whole and a bad one is refused as soon as
 * its bytes show it (an HTTP request at its first byte).
 *
 * On a rejection a read may still be pending on `conn`: the caller must close
 * `conn` (which it does anyway, as no backend will get it), and that ends the
 * read.
 *
 * @param conn The accepted connection, after any PROXY header.
 * @param options The time limit and an optional abort signal.
 * @returns The parsed hello and every byte read.
 * @throws {ClientHelloError} When the bytes are not an acceptable hello (the
 * reasons of `parseClientHello`), the time is up (`timeout`), or the peer
 * closes or the read fails first (`closed`, with the read error as `cause`).
 * @throws {RangeError} When `timeoutMs` is not an integer 1 to 2^31 - 1.
 * @throws The signal's `reason` when `signal` is aborted.
 * @example
 * ```ts
 * const conn = await listener.accept();
 * try {
 *   const { hello, bytes } = await readClientHello(conn, { timeoutMs: 5000 });
 *   const backend = pick(routes.match(hello.serverName));
 *   // write `bytes` to the backend, then pump the rest of `conn`
 * } catch (error) {
 *   conn.close();
 *   if (error instanceof ClientHelloError) metrics.refused(error.reason);
 * }
 * ```
 */
export async function readClientHello(
  conn: Deno.Conn,
  options: ReadClientHelloOptions,
): Promise<ReadClientHelloResult> {
  const { timeoutMs, signal, initial } = options;
  const { value, bytes } = await readPrefix(conn, {
    initial,
    parse: (buf) => {
      const result = parseClientHello(buf);
      if (result.status === "incomplete") return result;
      if (result.status === "error") {
        return { status: "error", error: new ClientHelloError(result.reason, result.message) };
      }
      return { status: "ok", value: result };
    },
    maxBytes: MAX_HELLO_RECORD_BYTES,
    timeoutMs,
    signal,
    timeout: () => new ClientHelloError("timeout", `No whole ClientHello within ${timeoutMs} ms`),
    closed: (filled, cause) =>
      cause === undefined
        ? new ClientHelloError(
          "closed",
          `Cannot read ClientHello as the peer closed after ${filled} bytes`,
        )
        : new ClientHelloError("closed", "Cannot read ClientHello as the read failed", { cause }),
  });
  return { hello: value, bytes };
}
