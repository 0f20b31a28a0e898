import { ANY_HOST, type HostPort } from "../common/address.ts";

/**
 * Opens a TCP listener. On `::` (all interfaces, dual stack, like Go's `:8080`)
 * it falls back to `0.0.0.0` where the host has no IPv6; an address in use or
 * a permission problem is not retried.
 *
 * @param addr Where to listen.
 * @param reusePort Share the port with other listeners (`--workers`).
 * @returns The listener.
 * @throws What `Deno.listen` throws.
 */
export function listen(addr: HostPort, reusePort = false): Deno.TcpListener {
  const options = reusePort ? { reusePort: true } : {};
  try {
    return Deno.listen({ ...addr, transport: "tcp", ...options });
  } catch (error) {
    const retry = addr.hostname === ANY_HOST &&
      !(error instanceof Deno.errors.AddrInUse) && !(error instanceof Deno.errors.PermissionDenied);
    if (!retry) throw error;
    return Deno.listen({ hostname: "0.0.0.0", port: addr.port, transport: "tcp", ...options });
  }
}
