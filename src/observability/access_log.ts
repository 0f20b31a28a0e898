/**
 * The access log: one line per finished connection, text or JSON, on stdout
 * or appended to a file. Lines are formatted when a connection ends (never per
 * read) and written in batches, off the event loop's critical path.
 * @module
 */
import type { LogFormat } from "../config/config.ts";
import type { Session } from "../connection/session.ts";

/** One finished connection, as the access log records it. */
export interface AccessEntry {
  /** When the connection ended, ISO 8601. */
  time: string;
  /** The client's `host:port`. */
  client: string;
  /** The frontend's name. */
  frontend: string;
  /** The backend's id (`host:port`), or null when none was reached. */
  backend: string | null;
  /** Bytes from the client (sent on to the backend). */
  bytesIn: number;
  /** Bytes to the client (received from the backend). */
  bytesOut: number;
  /** From accept to close, ms. */
  durationMs: number;
  /** How it ended: eof, reset, timeout, no-backend, drained, killed or refused. */
  end: string;
  /** With `--accept-proxy`: the peer that sent the PROXY header (`client` is the one it named). */
  peer?: string;
  /** The TLS server name, on a frontend that routes by SNI. */
  sni?: string;
  /** From an accepted PROXY v2 header: PP2_TYPE_AUTHORITY and PP2_TYPE_UNIQUE_ID (hex). */
  authority?: string;
  uniqueId?: string;
}

/**
 * The access log entry for a finished session.
 *
 * @param session A session whose proxying has ended.
 * @param now The end time, ms since the epoch. @default Date.now()
 */
export function accessEntry(session: Session, now: number = Date.now()): AccessEntry {
  return {
    time: new Date(now).toISOString(),
    client: session.clientAddr,
    frontend: session.frontend,
    backend: session.backend?.id ?? null,
    bytesIn: session.up.bytes,
    bytesOut: session.down.bytes,
    durationMs: Math.max(0, now - session.started),
    end: session.end ?? "eof",
    ...(session.peerAddr === undefined ? {} : { peer: session.peerAddr }),
    ...(session.serverName === undefined ? {} : { sni: session.serverName }),
    ...(session.authority === undefined ? {} : { authority: session.authority }),
    ...(session.uniqueId === undefined ? {} : { uniqueId: session.uniqueId }),
  };
}

/**
 * Formats one entry as a line without its newline.
 *
 * @example
 * ```ts
 * formatEntry(entry, "text");
 * // 2026-01-01T00:00:00.000Z 127.0.0.1:50312 main 127.0.0.1:8101 in=12 out=345 20ms eof
 * ```
 */
export function formatEntry(entry: AccessEntry, format: "text" | "json"): string {
  if (format === "json") return JSON.stringify(entry);
  return `${entry.time} ${entry.client} ${entry.frontend} ${
    entry.backend ?? "-"
  } in=${entry.bytesIn} out=${entry.bytesOut} ${entry.durationMs}ms ${entry.end}${
    entry.peer === undefined ? "" : ` peer=${entry.peer}`
  }${entry.sni === undefined ? "" : ` sni=${entry.sni}`}`;
}

/** Options for {@link AccessLog.open}. */
export interface AccessLogOptions {
  /** Line format; `off` writes nothing. @default "text" */
  format?: LogFormat;
  /** File to append to; null writes to stdout. @default null */
  file?: string | null;
  /** Longest a line waits in the buffer, ms. @default 100 */
  flushMs?: number;
  /** Buffered bytes past which lines are dropped (and counted) while a write is slow. @default 4 MiB */
  maxBuffer?: number;
  /**
   * Hands each batch of whole lines to another writer instead of writing it
   * (a Worker sends its lines to the main thread, the one writer). @default none
   */
  forward?: (lines: string) => void;
}

const encoder = new TextEncoder();

/**
 * A buffered access log. `record` formats and queues a line; a timer (or a
 * full batch) writes the queue with one async write. `close` flushes and
 * closes the file. When the output cannot keep up, lines beyond `maxBuffer`
 * are dropped rather than growing memory without bound; `dropped` counts them.
 */
export class AccessLog {
  readonly format: LogFormat;
  /** Lines dropped because the output fell behind. */
  dropped = 0;
  #out: { write(p: Uint8Array): Promise<number>; writeSync(p: Uint8Array): number } | undefined;
  #file: Deno.FsFile | undefined;
  #lines: string[] = [];
  #pending = 0;
  #flushMs: number;
  #maxBuffer: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(format: LogFormat, file: Deno.FsFile | undefined, options: AccessLogOptions) {
    this.format = format;
    this.#file = file;
    const forward = options.forward;
    this.#out = format === "off" ? undefined : forward ? _forwarder(forward) : file ?? Deno.stdout;
    this.#flushMs = options.flushMs ?? 100;
    this.#maxBuffer = options.maxBuffer ?? 4 * 1024 * 1024;
  }

  /**
   * Opens the log: the file (created if missing, appended to) or stdout.
   *
   * @throws What `Deno.open` throws for `file` (permission denied, no such directory).
   * @example
   * ```ts
   * await using log = await AccessLog.open({ format: "json", file: "/var/log/lb.log" });
   * ```
   */
  static async open(options: AccessLogOptions = {}): Promise<AccessLog> {
    const format = options.format ?? "text";
    const path = options.file ?? null;
    const file = format !== "off" && path !== null && !options.forward
      ? await Deno.open(path, { append: true, create: true })
      : undefined;
    return new AccessLog(format, file, options);
  }

  /** Queues the line for a finished session; a no-op when the format is `off`. */
  record(session: Session): void {
    if (this.#out === undefined || this.#closed || this.format === "off") return;
    this.recordLines(formatEntry(accessEntry(session), this.format) + "\n");
  }

  /** Queues whole lines already formatted (a Worker's, forwarded to this, the one writer). */
  recordLines(line: string): void {
    if (this.#out === undefined || this.#closed || this.format === "off") return;
    if (this.#pending + line.length > this.#maxBuffer) {
      this.dropped++;
      return;
    }
    this.#lines.push(line);
    this.#pending += line.length;
    if (this.#pending >= 64 * 1024) this.#flushSoon(0);
    else this.#flushSoon(this.#flushMs);
  }

  #flushSoon(delay: number): void {
    if (this.#timer !== undefined) {
      if (delay > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delay);
  }

  /** Writes every queued line; resolves when they are written. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const out = this.#out;
    if (out === undefined || this.#lines.length === 0) return this.#writing;
    const bytes = encoder.encode(this.#lines.join(""));
    this.#lines = [];
    // Writes are chained so lines never interleave; `#pending` counts until written.
    this.#writing = this.#writing.then(async () => {
      try {
        for (let n = 0; n < bytes.length;) n += await out.write(bytes.subarray(n));
      } catch {
        // Output closed (a pipe reader gone): the log cannot be written anywhere.
      } finally {
        this.#pending = Math.max(0, this.#pending - bytes.length);
      }
    });
    return this.#writing;
  }

  /** Writes queued lines synchronously: for an exit that cannot wait. */
  flushSync(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const out = this.#out;
    if (out === undefined || this.#lines.length === 0) return;
    const bytes = encoder.encode(this.#lines.join(""));
    this.#lines = [];
    try {
      for (let n = 0; n < bytes.length;) n += out.writeSync(bytes.subarray(n));
    } catch {
      // Output closed: nothing left to do.
    }
  }

  /** Flushes, then closes the file (stdout stays open). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return await this.#writing;
    this.#closed = true;
    await this.flush();
    this.#file?.close();
    this.#file = undefined;
    this.#out = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A writer that hands what it is given, decoded, to `forward`. */
function _forwarder(forward: (lines: string) => void) {
  const decoder = new TextDecoder();
  const write = (bytes: Uint8Array) => {
    forward(decoder.decode(bytes));
    return bytes.length;
  };
  return { write: (bytes: Uint8Array) => Promise.resolve(write(bytes)), writeSync: write };
}
