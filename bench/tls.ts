/**
 * The bench's test certificate: made with openssl at bench time in the
 * bench's temporary directory, for the TLS backends and the proxies that
 * terminate TLS.
 * @module
 */
import type { TlsFiles } from "./peers.ts";
import { runBounded } from "./run.ts";

/** The server name the TLS measures use: wrk sends it as SNI; it resolves to 127.0.0.1. */
export const TLS_NAME = "localhost";

/**
 * openssl's arguments for a self-signed ECDSA P-256 certificate for `name`
 * (CN and DNS SAN), valid 2 days, key unencrypted (PKCS#8).
 */
export function certArgs(files: Pick<TlsFiles, "cert" | "key">, name: string): string[] {
  return [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    files.key,
    "-out",
    files.cert,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    `subjectAltName=DNS:${name}`,
  ];
}

/**
 * Makes the test certificate for `name` in `dir`: `cert.pem`, `key.pem`, and
 * `both.pem` (certificate then key, for HAProxy's `crt`).
 *
 * @throws {Error} When openssl fails or takes over 20 s.
 */
export async function makeTestCert(openssl: string, dir: string, name: string): Promise<TlsFiles> {
  const files = { cert: `${dir}/cert.pem`, key: `${dir}/key.pem`, pem: `${dir}/both.pem` };
  Deno.mkdirSync(dir, { recursive: true });
  const ran = await runBounded(openssl, certArgs(files, name), 20_000);
  if (ran.code !== 0) throw new Error(`openssl exited ${ran.code}: ${ran.stderr.trim()}`);
  Deno.writeTextFileSync(
    files.pem,
    Deno.readTextFileSync(files.cert) + Deno.readTextFileSync(files.key),
  );
  return files;
}
