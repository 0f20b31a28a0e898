/**
 * Shared test helpers: free ports, loopback socket pairs, raw TCP echo/sink/
 * source servers, hashing, byte I/O and bounded waiting. Real sockets only.
 * An end-to-end test waits for a state of lb by polling `/stats`
 * ({@link waitForStats}), never for a log line's wording or a sleep.
 *
 * The API is stable: other test files import it. Add, do not change.
 * @module
 */
import { createHash } from "node:crypto";
import { concat } from "../backends/http_get.ts";
import type { LbProcess } from "../support/lb_process.ts";
import type { BackendStats, StatsSnapshot } from "../src/observability/metrics.ts";

/** The loopback address every test talks to. */
export const LOOPBACK = "127.0.0.1";

/**
 * A port that was free a moment ago (listen on 0, close). Racy by nature:
 * use it only where a program needs a port number before it starts.
 *
 * @param hostname Where to probe.
 * @returns The port.
 */
export function freePort(hostname = LOOPBACK): number {
  using listener = Deno.listen({ hostname, port: 0 });
  return (listener.addr as Deno.NetAddr).port;
}

/**
 * `n` distinct free ports: each is held until all are picked (one
 * `freePort()` after another may get the same port back).
 */
export function freePorts(n: number, hostname = LOOPBACK): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname, port: 0 }));
  const ports = listeners.map((listener) => (listener.addr as Deno.NetAddr).port);
  for (const listener of listeners) listener.close();
  return ports;
}

/**
 * A connected pair of loopback TCP sockets: `[client, server]`.
 * Dispose both (or `using` each) when done.
 */
export async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  using listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: LOOPBACK, port: (listener.addr as Deno.NetAddr).port }),
    listener.accept(),
  ]);
  return [client, server];
}

/** Closes a connection or listener, ignoring "already closed". */
export function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}

/** Writes all of `data`, finishing partial writes. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let written = 0; written < data.length;) {
    written += await conn.write(data.subarray(written));
  }
}

/** Reads until EOF and returns everything read. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    chunks.push(buf.slice(0, n));
  }
  return concat(chunks);
}

/** Reads exactly `length` bytes, or throws on an early EOF. */
export async function readExactly(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  for (let got = 0; got < length;) {
    const n = await conn.read(out.subarray(got));
    if (n === null) throw new Error(`EOF after ${got} of ${length} bytes`);
    got += n;
  }
  return out;
}

/** Concatenates byte chunks (the one backends/http_get.ts uses). */
export { concat };

/**
 * Deterministic pseudo-random bytes (xorshift32), so that a shifted, dropped
 * or repeated chunk never goes unnoticed, unlike with a repeating pattern.
 */
export function pseudoRandomBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** SHA-256 of `data`, hex. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Byte count and SHA-256 of everything read from a connection until EOF. */
export interface Digest {
  bytes: number;
  sha256: string;
}

/** Reads until EOF, hashing as it goes (no buffering of the whole stream). */
export async function digestAll(conn: Deno.Conn): Promise<Digest> {
  const hash = createHash("sha256");
  const buf = new Uint8Array(64 * 1024);
  let bytes = 0;
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    hash.update(buf.subarray(0, n));
    bytes += n;
  }
  return { bytes, sha256: hash.digest("hex") };
}

/** Rejects with `what` when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every 20 ms until true; throws naming `what` after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    }
    await delay(20);
  }
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Open file descriptors of a process (Linux `/proc`), or undefined where
 * unavailable. Without `--allow-all` Deno refuses to read `/proc`, so this
 * falls back to listing it with `ls` (needs `--allow-run`).
 */
export function countFds(pid: number): number | undefined {
  try {
    return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
  } catch {
    // Denied or absent: ask ls.
  }
  try {
    const { code, stdout } = new Deno.Command("ls", {
      args: ["-1", `/proc/${pid}/fd`],
      stderr: "null",
    }).outputSync();
    if (code !== 0) return undefined;
    return new TextDecoder().decode(stdout).split("\n").filter((l) => l !== "").length;
  } catch {
    return undefined;
  }
}

/** What a {@link TcpServer} does with each accepted connection. */
export type ConnHandler = (conn: Deno.TcpConn, server: TcpServer) => Promise<void>;

/** A raw TCP server on loopback port 0 with connection bookkeeping. Dispose to stop it. */
export interface TcpServer extends AsyncDisposable {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections accepted and not yet closed by the handler. */
  readonly open: number;
  /** Results the handlers recorded with `record` (e.g. digests), in finish order. */
  readonly results: unknown[];
  /** Stores a handler's result in `results`. */
  record(result: unknown): void;
  /** Errors the handlers threw (reset peers), in order. */
  readonly errors: unknown[];
}

/**
 * Starts a TCP server whose `handler` runs per connection; the connection is
 * closed when the handler settles. Disposing stops accepting, closes open
 * connections and waits for every handler.
 */
export function startTcpServer(handler: ConnHandler, hostname = LOOPBACK): TcpServer {
  const listener = Deno.listen({ hostname, port: 0 });
  const conns = new Set<Deno.TcpConn>();
  const handlers = new Set<Promise<void>>();
  let accepted = 0;
  const results: unknown[] = [];
  const errors: unknown[] = [];
  const server: TcpServer = {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    get open() {
      return conns.size;
    },
    results,
    errors,
    record: (result) => void results.push(result),
    async [Symbol.asyncDispose]() {
      closeQuietly(listener);
      await accepting;
      for (const conn of conns) closeQuietly(conn);
      await Promise.all(handlers);
    },
  };
  const accepting = (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      accepted++;
      conns.add(conn);
      const done: Promise<void> = handler(conn, server)
        .catch((error) => void errors.push(error))
        .finally(() => {
          conns.delete(conn);
          closeQuietly(conn);
          handlers.delete(done);
        });
      handlers.add(done);
    }
  })();
  return server;
}

/** Echoes every byte back; on EOF half-closes (FIN) and ends. */
export function startEchoServer(): TcpServer {
  return startTcpServer(async (conn) => {
    const buf = new Uint8Array(64 * 1024);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      await writeAll(conn, buf.subarray(0, n));
    }
    await conn.closeWrite();
  });
}

/**
 * Reads until EOF, hashing, then records a {@link Digest} in `results` and
 * answers with the digest as JSON before closing.
 */
export function startSinkServer(): TcpServer {
  return startTcpServer(async (conn, server) => {
    const digest = await digestAll(conn);
    server.record(digest);
    await writeAll(conn, new TextEncoder().encode(JSON.stringify(digest)));
  });
}

/**
 * Sends `data` to every connection, then half-closes, while hashing what the
 * client sends; records the received {@link Digest} in `results`. Both
 * directions at once: the full-duplex backend.
 */
export function startDuplexServer(data: Uint8Array): TcpServer {
  return startTcpServer(async (conn, server) => {
    const [digest] = await Promise.all([
      digestAll(conn),
      writeAll(conn, data).then(() => conn.closeWrite()),
    ]);
    server.record(digest);
  });
}

/** A loopback port where connects hang (SYNs dropped). Dispose to free it. */
export interface HangingPort extends Disposable {
  readonly port: number;
}

/**
 * Makes a port whose connects never complete, without leaving loopback: a
 * listener that never accepts, with its accept queue filled. The kernel then
 * drops new SYNs, so a connect hangs until its timeout.
 *
 * @returns The port, or undefined where the queue could not be filled
 * (callers skip with a printed reason).
 */
export async function hangingPort(): Promise<HangingPort | undefined> {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const filler: Deno.TcpConn[] = [];
  const release = () => {
    for (const conn of filler) closeQuietly(conn);
    closeQuietly(listener);
  };
  // Full once three connects in a row hang (one slow connect on a busy machine is not enough).
  for (let hung = 0; hung < 3 && filler.length < 4096;) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 250);
    try {
      filler.push(await Deno.connect({ hostname: LOOPBACK, port, signal: controller.signal }));
      hung = 0;
    } catch {
      hung++;
    } finally {
      clearTimeout(timer);
    }
  }
  if (filler.length >= 4096) {
    release();
    return undefined;
  }
  return { port, [Symbol.dispose]: release };
}

/**
 * The port of lb's admin server (started with `--admin`), read from its
 * `admin: listening on HOST:PORT` stderr line.
 */
export async function adminPort(lb: LbProcess): Promise<number> {
  const line = await lb.waitFor(/admin: listening on /);
  return Number(/listening on \S*:(\d+)/.exec(line)?.[1]);
}

/** GET `/stats` from lb's admin endpoint on `port` (see {@link adminPort}). */
export async function fetchStats(port: number): Promise<StatsSnapshot> {
  const response = await fetch(`http://${LOOPBACK}:${port}/stats`);
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`GET /stats answered ${response.status}`);
  }
  return await response.json();
}

/**
 * Polls `/stats` until `condition` holds and returns that snapshot: how an
 * end-to-end test waits for a state of lb (a backend DOWN, a reload counted,
 * the drain begun) instead of a log line or a sleep. Throws naming `what`,
 * with the last snapshot, after `timeoutMs`.
 */
export async function waitForStats(
  port: number,
  what: string,
  condition: (stats: StatsSnapshot) => boolean,
  timeoutMs = 10_000,
): Promise<StatsSnapshot> {
  let last: StatsSnapshot | undefined;
  try {
    await waitUntil(async () => condition(last = await fetchStats(port)), what, timeoutMs);
  } catch (error) {
    throw new Error(`${(error as Error).message}; last /stats: ${JSON.stringify(last)}`);
  }
  return last!;
}

/** The backend `id` (`host:port`) of the first frontend in `stats` that has it. */
export function backendStats(stats: StatsSnapshot, id: string): BackendStats {
  for (const frontend of stats.frontends) {
    const backend = frontend.backends.find((b) => b.id === id);
    if (backend) return backend;
  }
  throw new Error(`no backend ${id} in /stats: ${JSON.stringify(stats)}`);
}

/**
 * Spawns `program` with stdin, stdout and stderr all `"null"`: a server the
 * test only talks to over the network. `options` (args, env, cwd, ...) pass
 * through. Kill it and await its `status` when done.
 */
export function spawnQuiet(
  program: string | URL,
  options: Deno.CommandOptions = {},
): Deno.ChildProcess {
  return new Deno.Command(program, { stdin: "null", stdout: "null", stderr: "null", ...options })
    .spawn();
}

/**
 * Sends `data` to `port` on 127.0.0.1 from the address `source` (Deno cannot
 * bind a client socket: a python3 client does), half-closes, and returns
 * everything read until EOF ("" when lb closed it at once).
 */
export async function exchangeFrom(source: string, port: number, data: string): Promise<string> {
  const script = "import socket,sys\n" +
    `s=socket.create_connection(("127.0.0.1",${port}),timeout=5,source_address=("${source}",0))\n` +
    `s.sendall(${JSON.stringify(data)}.encode())\n` +
    "try:\n  s.shutdown(socket.SHUT_WR)\nexcept OSError:\n  pass\n" +
    "out=b''\ntry:\n  while True:\n    b=s.recv(65536)\n    if not b: break\n    out+=b\n" +
    "except ConnectionResetError:\n  pass\nsys.stdout.write(out.decode())\n";
  const { stdout, success, stderr } = await new Deno.Command("python3", {
    args: ["-c", script],
    stdin: "null",
  }).output();
  if (!success) throw new Error(`python3 client failed: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout);
}

/**
 * The value of the first `/metrics` sample of family `name` whose labels
 * contain `labels` (e.g. `reason="denied"`), or 0 when there is none.
 */
export async function metricValue(admin: number, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`http://${LOOPBACK}:${admin}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

/** Waits until something accepts connections on `port` (a peer started as a child process). */
export async function waitConnectable(port: number, what: string): Promise<void> {
  await waitUntil(async () => {
    try {
      (await Deno.connect({ hostname: LOOPBACK, port })).close();
      return true;
    } catch {
      return false;
    }
  }, what);
}

/** A server that reads each connection to EOF and records what it sent in `results` (Uint8Array). */
export function startRecordingServer(): TcpServer {
  return startTcpServer(async (conn, server) => server.record(await readAll(conn)));
}

/** Joins bytes, single bytes (numbers) and strings (UTF-8) into one array, for byte tables. */
export function bytes(
  ...parts: (Uint8Array | number | readonly number[] | string)[]
): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  return concat(
    parts.map((part) =>
      typeof part === "number"
        ? Uint8Array.of(part)
        : typeof part === "string"
        ? encoder.encode(part)
        : Uint8Array.from(part)
    ),
  ) as Uint8Array<ArrayBuffer>;
}
