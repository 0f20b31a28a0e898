/**
 * Latency at a fixed, moderate request rate. wrk has no fixed-rate mode, so a
 * small open-loop client: `connections` keep-alive connections, each sending a
 * request on a fixed schedule; latency counts from the *scheduled* send time,
 * so a stall is not hidden by sending late (no coordinated omission).
 * @module
 */

/** Latency percentiles, milliseconds. */
export interface LatencyResult {
  p50: number;
  p99: number;
  /** Requests answered. */
  count: number;
}

/**
 * The `p`-th percentile (0-100) of ascending `sorted`, nearest rank.
 *
 * @throws {RangeError} When `sorted` is empty or `p` is outside 0-100.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("Cannot take a percentile of no samples");
  if (!(p >= 0 && p <= 100)) throw new RangeError(`"p" must be 0-100: current value is ${p}`);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/**
 * The length of the HTTP response at the start of `bytes`, once complete
 * (headers plus Content-Length body), or undefined while incomplete.
 */
export function responseLength(bytes: Uint8Array): number | undefined {
  const text = new TextDecoder().decode(bytes);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
  const total = end + 4 + Number(length?.[1] ?? 0);
  return bytes.length >= total ? total : undefined;
}

/** Options of {@link measureLatency}. */
export interface LatencyOptions {
  port: number;
  /** Requests per second over all connections. */
  rate: number;
  connections: number;
  durationMs: number;
}

const REQUEST = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: bench\r\n\r\n");

async function _connection(
  port: number,
  intervalMs: number,
  offsetMs: number,
  start: number,
  durationMs: number,
  samples: number[],
): Promise<void> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const buf = new Uint8Array(4096);
  for (let i = 0;; i++) {
    const scheduled = start + offsetMs + i * intervalMs;
    if (scheduled - start >= durationMs) return;
    const wait = scheduled - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await conn.write(REQUEST);
    let filled = 0;
    for (;;) {
      const n = await conn.read(buf.subarray(filled));
      if (n === null) throw new Error("connection closed mid-response");
      filled += n;
      const length = responseLength(buf.subarray(0, filled));
      if (length !== undefined) break;
      if (filled === buf.length) throw new Error("response larger than 4 KiB");
    }
    samples.push(performance.now() - scheduled);
  }
}

/**
 * Sends `rate` requests/s to 127.0.0.1:port for `durationMs` and returns the
 * latency percentiles.
 *
 * @throws {Error} When a connection fails.
 */
export async function measureLatency(options: LatencyOptions): Promise<LatencyResult> {
  const samples: number[] = [];
  const intervalMs = (1000 * options.connections) / options.rate;
  const start = performance.now() + 50;
  await Promise.all(
    Array.from(
      { length: options.connections },
      (_, i) =>
        _connection(
          options.port,
          intervalMs,
          (i * intervalMs) / options.connections,
          start,
          options.durationMs,
          samples,
        ),
    ),
  );
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), count: samples.length };
}
