/**
 * Bulk throughput with iperf3 through a proxy, both directions.
 * @module
 */
import { runBounded } from "./run.ts";

/** What one iperf3 run measured. */
export interface IperfResult {
  /** Received by the far end, bits per second. */
  bitsPerSec: number;
  /** Received by the far end, bytes. */
  bytes: number;
}

/**
 * Parses `iperf3 -J` output (the receiver's totals).
 *
 * @throws {SyntaxError} When the JSON has an error or no totals.
 */
export function parseIperf(json: string): IperfResult {
  const doc = JSON.parse(json) as {
    error?: string;
    end?: { sum_received?: { bits_per_second?: number; bytes?: number } };
  };
  if (doc.error) throw new SyntaxError(`iperf3 failed: ${doc.error}`);
  const sum = doc.end?.sum_received;
  if (sum?.bits_per_second === undefined || sum.bytes === undefined) {
    throw new SyntaxError("Cannot parse iperf3 output: no end.sum_received");
  }
  return { bitsPerSec: sum.bits_per_second, bytes: sum.bytes };
}

/**
 * Runs one iperf3 client through 127.0.0.1:port for `durationSec` whole seconds.
 *
 * @param reverse `-R`: the server sends, the client receives.
 * @throws {Error} When iperf3 fails or times out.
 */
export async function runIperf(
  iperf3: string,
  port: number,
  durationSec: number,
  reverse: boolean,
): Promise<IperfResult> {
  const args = ["-c", "127.0.0.1", "-p", `${port}`, "-t", `${durationSec}`, "-J"];
  if (reverse) args.push("-R");
  const ran = await runBounded(iperf3, args, (durationSec + 15) * 1000);
  if (ran.timedOut) throw new Error(`iperf3 timed out`);
  return parseIperf(ran.stdout);
}
