import type { TlsTerminationConfig } from "../config/config.ts";
import { CertStore } from "./certs.ts";

/**
 * TLS termination on one listener: the certificates it presents (chosen per
 * handshake by server name) and its ALPN protocols. A reload makes a new one
 * on a new listener (Deno keeps the certificate it resolved per listener).
 */
export class Termination {
  readonly alpn: readonly string[];
  /** The certificates, read and checked. */
  readonly store: CertStore;

  /** @throws {CertError} When a certificate or key cannot be read, parsed or paired. */
  constructor(config: TlsTerminationConfig) {
    this.alpn = [...config.alpn];
    this.store = CertStore.load(config.certs);
  }

  /** The certificate and key for a client's server name. */
  select(serverName: string | null): { cert: string; key: string } {
    return this.store.select(serverName);
  }
}
