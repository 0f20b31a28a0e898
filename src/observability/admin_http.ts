/**
 * The admin endpoint's HTTP/1.1 server: one request per connection, every
 * part bounded so that the admin port cannot be used to exhaust lb.
 *
 * `Deno.serve` bounds the request head only by size (about 64 KiB, then 400)
 * and never by time: a client that sends one header byte a second, or half a
 * request line and then nothing, keeps its connection (a descriptor lb shares
 * with its frontends) for as long as it likes, and any number of them may
 * connect. Here the head must arrive whole within `headerTimeoutMs`, be at
 * most `headerBytes` long, carry no body, and at most `maxConnections` are
 * open at once: past that, the oldest connection still sending its head (or
 * lingering after its answer) is closed for the new one.
 * @module
 */
import { concatBytes, writeAll } from "../common/bytes.ts";
import { outOfFds } from "../common/errors.ts";
import { formatHostPort, type HostPort } from "../common/address.ts";

/** Bounds on each admin connection. */
export interface HttpLimits {
  /** Most bytes of request line and headers; past it, 431. @default 16384 */
  headerBytes: number;
  /** Time for the whole request head to arrive, ms; past it, 408. @default 10000 */
  headerTimeoutMs: number;
  /** Time to send the answer, ms; past it the connection is closed. @default 10000 */
  writeTimeoutMs: number;
  /** Most connections open at once. @default 64 */
  maxConnections: number;
}

/** The bounds {@link AdminHttp.listen} uses unless told otherwise. */
export const HTTP_LIMITS: Readonly<HttpLimits> = {
  headerBytes: 16 * 1024,
  headerTimeoutMs: 10_000,
  writeTimeoutMs: 10_000,
  maxConnections: 64,
};

/** The connection a request came on. */
export interface ConnInfo {
  localAddr: Deno.NetAddr;
  remoteAddr: Deno.NetAddr;
}

/** Answers one request; should not throw (a throw answers 500). */
export type HttpHandler = (request: Request, info: ConnInfo) => Promise<Response>;

/** After the answer, how long and how much a client's unread bytes are drained before close. */
const LINGER_MS = 2000;
const LINGER_BYTES = 256 * 1024;

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  421: "Misdirected Request",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CRLFCRLF = [13, 10, 13, 10];

type Phase = "head" | "busy" | "linger";

/** A listening admin server. {@link AdminHttp.shutdown} closes it and every connection. */
export class AdminHttp {
  readonly addr: Deno.NetAddr;
  #listener: Deno.TcpListener;
  #handler: HttpHandler;
  #limits: HttpLimits;
  /** Open connections in the order they came, with what each is doing. */
  #conns = new Map<Deno.TcpConn, Phase>();
  #tasks = new Set<Promise<void>>();
  #loop: Promise<void>;
  #closing: Promise<void> | undefined;

  private constructor(listener: Deno.TcpListener, handler: HttpHandler, limits: HttpLimits) {
    this.#listener = listener;
    this.#handler = handler;
    this.#limits = limits;
    this.addr = listener.addr;
    this.#loop = this.#acceptLoop();
  }

  /**
   * Listens on `addr` and serves each request with `handler`.
   *
   * @throws What `Deno.listen` throws (address in use, permission denied).
   */
  static listen(addr: HostPort, handler: HttpHandler, limits: Partial<HttpLimits> = {}): AdminHttp {
    const listener = Deno.listen({ hostname: addr.hostname, port: addr.port, transport: "tcp" });
    return new AdminHttp(listener, handler, { ...HTTP_LIMITS, ...limits });
  }

  /** Connections open now. */
  get connections(): number {
    return this.#conns.size;
  }

  /** Stops listening, closes every connection and waits for their handlers. Idempotent. */
  shutdown(): Promise<void> {
    this.#closing ??= (async () => {
      _close(this.#listener);
      await this.#loop;
      for (const conn of this.#conns.keys()) _close(conn);
      while (this.#tasks.size > 0) await Promise.all(this.#tasks);
    })();
    return this.#closing;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        // Out of descriptors: let some free. A client that reset before accept: go on.
        if (outOfFds(error)) await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      if (this.#closing) {
        _close(conn);
        return;
      }
      if (this.#conns.size >= this.#limits.maxConnections && !this.#evictOne()) {
        _close(conn);
        continue;
      }
      this.#conns.set(conn, "head");
      const task = this.#serve(conn).finally(() => {
        this.#conns.delete(conn);
        this.#tasks.delete(task);
        _close(conn);
      });
      this.#tasks.add(task);
    }
  }

  /** Closes the oldest connection not being answered; false when every one is. */
  #evictOne(): boolean {
    for (const [conn, phase] of this.#conns) {
      if (phase === "busy") continue;
      this.#conns.delete(conn);
      _close(conn);
      return true;
    }
    return false;
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const head = await this.#readHead(conn);
    if (head === "closed") return;
    this.#conns.set(conn, "busy");
    let response: Response;
    let method = "GET";
    if (head === "timeout") response = _plain(408, "request head not received in time");
    else if (head === "too large") response = _plain(431, "request head too large");
    else {
      const parsed = _parse(head, conn);
      if (parsed instanceof Response) response = parsed;
      else {
        method = parsed.method;
        try {
          response = await this.#handler(parsed, {
            localAddr: conn.localAddr,
            remoteAddr: conn.remoteAddr,
          });
        } catch {
          response = _plain(500, "internal error");
        }
      }
    }
    if (!this.#conns.has(conn)) return; // closed by shutdown meanwhile
    if (!await this.#write(conn, response, method === "HEAD")) return;
    if (head === "timeout") return; // its read is still pending: close at once
    this.#conns.set(conn, "linger");
    await _linger(conn);
  }

  /** The request head (up to and with the blank line), or why there is none. */
  async #readHead(conn: Deno.TcpConn): Promise<Uint8Array | "timeout" | "too large" | "closed"> {
    const { headerBytes, headerTimeoutMs } = this.#limits;
    const buffer = new Uint8Array(headerBytes + 4);
    let length = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), headerTimeoutMs);
    });
    try {
      for (;;) {
        if (length === buffer.length) return "too large";
        const reading = conn.read(buffer.subarray(length)).catch(() => null);
        const n = await Promise.race([reading, expired]);
        if (n === "timeout") return "timeout";
        if (n === null) return "closed";
        const from = Math.max(0, length - 3);
        length += n;
        const end = _indexOf(buffer.subarray(0, length), CRLFCRLF, from);
        if (end !== -1) {
          return end + 4 <= headerBytes ? buffer.slice(0, end + 4) : "too large";
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `response` within the write timeout; false when the connection was closed. */
  async #write(conn: Deno.TcpConn, response: Response, head: boolean): Promise<boolean> {
    const body = new Uint8Array(await response.arrayBuffer());
    let text = `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? "Unknown"}\r\n`;
    for (const [name, value] of response.headers) {
      if (name === "content-length" || name === "connection" || name === "transfer-encoding") {
        continue;
      }
      text += `${name}: ${value}\r\n`;
    }
    text += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
    const bytes = new TextEncoder().encode(text);
    const data = head || body.length === 0 ? bytes : concatBytes(bytes, body);
    const timer = setTimeout(() => _close(conn), this.#limits.writeTimeoutMs);
    try {
      await writeAll(conn, data);
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Turns a request head into a `Request`, or the answer to a malformed or
 * unacceptable one: 400, or 413 for a request with a body (no admin route takes one).
 */
function _parse(head: Uint8Array, conn: Deno.TcpConn): Request | Response {
  let text = "";
  for (let i = 0; i < head.length; i += 4096) {
    text += String.fromCharCode(...head.subarray(i, i + 4096)); // bytes as Latin-1, as HTTP has them
  }
  const lines = text.slice(0, -4).split("\r\n");
  const start = /^(\S+) (\/\S*) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  if (!start || !TOKEN.test(start[1]!)) return _plain(400, "malformed request line");
  const headers = new Headers();
  try {
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon);
      if (colon <= 0 || !TOKEN.test(name)) return _plain(400, "malformed header line");
      headers.append(name, line.slice(colon + 1).trim());
    }
  } catch {
    return _plain(400, "malformed header value");
  }
  const length = headers.get("content-length");
  if (headers.has("transfer-encoding") || (length !== null && length.trim() !== "0")) {
    return /^\s*\d+\s*$/.test(length ?? "0") || headers.has("transfer-encoding")
      ? _plain(413, "admin requests take no body")
      : _plain(400, "malformed content-length");
  }
  try {
    return new Request(`http://${formatHostPort(conn.localAddr)}${start[2]}`, {
      method: start[1]!,
      headers,
    });
  } catch {
    return _plain(405, "method not allowed");
  }
}

/**
 * After the answer: sends FIN, then reads and drops what the client still
 * sends (up to a bound) so that closing does not reset the connection before
 * the client has read the answer.
 */
async function _linger(conn: Deno.TcpConn): Promise<void> {
  try {
    await conn.closeWrite();
  } catch {
    return;
  }
  const timer = setTimeout(() => _close(conn), LINGER_MS);
  try {
    const scratch = new Uint8Array(16 * 1024);
    for (let drained = 0; drained < LINGER_BYTES;) {
      const n = await conn.read(scratch);
      if (n === null) return;
      drained += n;
    }
  } catch {
    // Closed by the timer or by shutdown.
  } finally {
    clearTimeout(timer);
  }
}

function _indexOf(haystack: Uint8Array, needle: number[], from: number): number {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let k = 0; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

function _plain(status: number, message: string): Response {
  return new Response(message + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

function _close(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}
