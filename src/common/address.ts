/** The listen host meaning "all interfaces": IPv6 any, which on Linux also takes IPv4 (dual stack). */
export const ANY_HOST = "::";

/** A TCP endpoint. */
export interface HostPort {
  hostname: string;
  port: number;
}

/** Formats an endpoint as `host:port`, bracketing IPv6 addresses. */
export function formatHostPort(addr: HostPort): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/**
 * Formats a socket address from Deno (`Deno.Addr`) for logs. An IPv4 client
 * seen on a dual-stack listener (`::ffff:10.0.0.5`) is shown as plain IPv4.
 */
export function formatAddr(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  const { hostname, port } = addr as Deno.NetAddr;
  return formatHostPort({ hostname: unmapIPv4(hostname), port });
}

/** `::ffff:a.b.c.d` (an IPv4-mapped IPv6 address) as `a.b.c.d`; anything else as it is. */
export function unmapIPv4(hostname: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(hostname) ? hostname.slice(7) : hostname;
}
