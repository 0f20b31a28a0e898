import { ANY_HOST, type HostPort } from "../common/address.ts";

/** A connection lb proxies: plain TCP, or TLS where lb terminates or originates it. */
export type StreamConn = Deno.TcpConn | Deno.TlsConn;

/** A frontend's listener: plain TCP, or TLS where lb terminates it. */
export type FrontListener = Deno.TcpListener | Deno.TlsListener;

/** What a TLS listener presents: a certificate per handshake, and the ALPN protocols. */
export interface TlsListen {
  /** The certificate and key for a client's server name (null: none sent). */
  select(serverName: string | null): { cert: string; key: string };
  alpn: readonly string[];
}

/**
 * Deno 2.9.6's certificate resolver for `Deno.listenTls`: called per handshake
 * with the client's server name. Internal and unstable (`ext/net/02_tls.js`);
 * `tests/connection/tls_front_test.ts` proves it works in the pinned version.
 */
const SNI_RESOLVER = Symbol.for("unstableSniResolver");

/**
 * Opens a TCP listener, or a TLS one with `tls`. On `::` (all interfaces,
 * dual stack, like Go's `:8080`) it falls back to `0.0.0.0` where the host
 * has no IPv6; an address in use or a permission problem is not retried.
 *
 * @param addr Where to listen.
 * @param reusePort Share the port with other listeners (`--workers`, a TLS
 * frontend's own listener renewed on reload).
 * @param joins The port is already this lb's (a worker joining the main
 * thread's, a TLS listener renewed on its own port). Otherwise a shared
 * listener first makes sure no one else holds the port: SO_REUSEPORT would
 * let a second lb, started by mistake, take half of the connections.
 * @param tls Terminate TLS: certificates chosen per handshake.
 * @returns The listener.
 * @throws What `Deno.listen` or `Deno.listenTls` throws.
 */
export function listen(
  addr: HostPort,
  reusePort = false,
  tls?: TlsListen,
  joins = false,
): FrontListener {
  const open = (hostname: string): FrontListener => {
    // Deno keeps the certificate it resolved for a server name per listener,
    // so new certificates (a reload) need a new listener on the same port:
    // TLS listeners always share it (SO_REUSEPORT).
    const shared = reusePort || tls !== undefined;
    let port = addr.port;
    if (shared && !joins) {
      // A port someone else holds is still refused: probed without sharing first.
      using probe = Deno.listen({ hostname, port, transport: "tcp" });
      port = probe.addr.port;
    }
    const options = { hostname, port, transport: "tcp" as const, reusePort: shared };
    if (!tls) return Deno.listen(options);
    return Deno.listenTls(
      {
        ...options,
        alpnProtocols: [...tls.alpn],
        [SNI_RESOLVER]: (serverName: string | null) => tls.select(serverName),
      } as unknown as Deno.ListenTlsOptions & Deno.TlsCertifiedKeyPem,
    );
  };
  try {
    return open(addr.hostname);
  } catch (error) {
    const retry = addr.hostname === ANY_HOST &&
      !(error instanceof Deno.errors.AddrInUse) && !(error instanceof Deno.errors.PermissionDenied);
    if (!retry) throw error;
    return open("0.0.0.0");
  }
}
