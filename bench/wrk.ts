/**
 * HTTP load with wrk: keep-alive and new-connection request rates.
 * @module
 */
import { runBounded } from "./run.ts";

/** What one wrk run measured. */
export interface WrkResult {
  requestsPerSec: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx responses. */
  errors: number;
}

/**
 * Parses wrk's text output.
 *
 * @throws {SyntaxError} When there is no `Requests/sec` line.
 */
export function parseWrk(text: string): WrkResult {
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!rate) throw new SyntaxError(`Cannot parse wrk output: no "Requests/sec" in "${text}"`);
  let errors = 0;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  if (socket) errors += socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  if (non2xx) errors += Number(non2xx[1]);
  return { requestsPerSec: Number(rate[1]), errors };
}

/** Options of one wrk run. */
export interface WrkOptions {
  port: number;
  /** Open connections. */
  connections: number;
  threads: number;
  durationSec: number;
  /** Send `Connection: close`: one new connection per request. */
  close: boolean;
  /**
   * Speak HTTPS to `https://NAME:port/`: wrk sends NAME as the TLS server name
   * (SNI). NAME must resolve to 127.0.0.1 (wrk drops addresses it cannot
   * connect to, such as an unused ::1).
   */
  tlsName?: string;
}

/** wrk's arguments for `options`. */
export function wrkArgs(options: WrkOptions): string[] {
  return [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.durationSec}s`,
    "--timeout",
    "2s",
    ...(options.close ? ["-H", "Connection: close"] : []),
    options.tlsName === undefined
      ? `http://127.0.0.1:${options.port}/`
      : `https://${options.tlsName}:${options.port}/`,
  ];
}

/**
 * Runs wrk against 127.0.0.1:port for a fixed time.
 *
 * @throws {Error} When wrk fails or prints no rate.
 */
export async function runWrk(wrk: string, options: WrkOptions): Promise<WrkResult> {
  const ran = await runBounded(wrk, wrkArgs(options), (options.durationSec + 10) * 1000);
  if (ran.code !== 0) throw new Error(`wrk exited ${ran.code}: ${ran.stderr || ran.stdout}`);
  return parseWrk(ran.stdout);
}
