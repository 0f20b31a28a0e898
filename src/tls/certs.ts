/**
 * Certificates lb terminates TLS with (`--tls-cert FILE --tls-key FILE`,
 * repeatable pairs), chosen per handshake by the client's server name from
 * each certificate's own names.
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { describeFileError } from "../common/errors.ts";
import { SniRoutes } from "./sni_match.ts";

/** A certificate and its key, as files. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** A certificate or key file that cannot be used: one line naming the file. */
export class CertError extends Error {
  override name = "CertError";
}

interface _Loaded {
  pem: { cert: string; key: string };
  /** The certificate's names: its DNS subject alternative names, else its common name. */
  names: SniRoutes<true>;
}

/**
 * The certificates of one frontend, read and parsed once (start, reload).
 * {@link CertStore.select} picks one for a server name: the first whose names
 * (subject alternative names, or the common name) match it, wildcards
 * included; the first pair when none matches or the client sent no name.
 */
export class CertStore {
  readonly #certs: _Loaded[];

  private constructor(certs: _Loaded[]) {
    this.#certs = certs;
  }

  /**
   * Reads and checks every pair.
   *
   * @throws {CertError} When a file cannot be read or is not a PEM
   * certificate or key.
   */
  static load(pairs: readonly CertFiles[]): CertStore {
    return new CertStore(pairs.map((pair) => {
      const cert = _read(pair.cert, "--tls-cert");
      const key = _read(pair.key, "--tls-key");
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
        throw new CertError(`--tls-key ${pair.key}: not a PEM private key`);
      }
      let x509: X509Certificate;
      try {
        x509 = new X509Certificate(cert);
      } catch {
        throw new CertError(`--tls-cert ${pair.cert}: not a PEM certificate`);
      }
      let matches = false;
      try {
        matches = x509.checkPrivateKey(createPrivateKey(key));
      } catch {
        throw new CertError(`--tls-key ${pair.key}: not a usable private key`);
      }
      if (!matches) {
        throw new CertError(`--tls-key ${pair.key} is not the key of --tls-cert ${pair.cert}`);
      }
      return { pem: { cert, key }, names: _names(x509) };
    }));
  }

  /** Whether `other` holds the very same certificates and keys, in the same order. */
  same(other: CertStore): boolean {
    return this.#certs.length === other.#certs.length &&
      this.#certs.every((c, i) =>
        c.pem.cert === other.#certs[i]!.pem.cert && c.pem.key === other.#certs[i]!.pem.key
      );
  }

  /** The certificate and key to present to a client that asked for `serverName`. */
  select(serverName: string | null | undefined): { cert: string; key: string } {
    if (serverName) {
      for (const loaded of this.#certs) {
        if (loaded.names.match(serverName).length > 0) return loaded.pem;
      }
    }
    return this.#certs[0]!.pem;
  }
}

/**
 * The CA certificates of `--tls-ca` (one PEM file, any number of
 * certificates), or none.
 *
 * @throws {CertError} When the file cannot be read or holds no certificate.
 */
export function readCaCerts(path: string | null): string[] {
  if (path === null) return [];
  const text = _read(path, "--tls-ca");
  const certs = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw new CertError(`--tls-ca ${path}: no PEM certificate in it`);
  return certs;
}

/** The host names a certificate serves, as SNI routes (exact and `*.` wildcards). */
function _names(x509: X509Certificate): SniRoutes<true> {
  const dns = (x509.subjectAltName ?? "").split(",").map((s) => s.trim())
    .filter((s) => s.startsWith("DNS:")).map((s) => s.slice(4));
  const cn = /(?:^|\n|,\s*)CN=([^,\n]+)/.exec(x509.subject)?.[1]?.trim();
  const names = dns.length > 0 ? dns : cn ? [cn] : [];
  const usable = names.filter((name) => {
    try {
      new SniRoutes([{ names: [name], value: true }]);
      return true;
    } catch {
      return false; // an IP address or an odd name: never matched by SNI
    }
  });
  return new SniRoutes(usable.length === 0 ? [] : [{ names: usable, value: true }]);
}

function _read(path: string, flag: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new CertError(`${flag} ${path}: cannot read: ${describeFileError(error)}`, {
      cause: error,
    });
  }
}
