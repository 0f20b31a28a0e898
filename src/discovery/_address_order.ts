import { parseIP } from "../proxy_protocol/ip.ts";

/**
 * Orders IP address texts: IPv4 before IPv6, each in numeric order (so
 * `10.0.0.2` before `10.0.0.10`); anything else after, by text.
 *
 * @param a An address.
 * @param b Another address.
 * @returns Negative, zero or positive, as `Array.prototype.sort` wants.
 */
export function _compareAddresses(a: string, b: string): number {
  const x = parseIP(a);
  const y = parseIP(b);
  if (x === null || y === null) {
    return Number(x === null) - Number(y === null) || (a < b ? -1 : a > b ? 1 : 0);
  }
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return 0;
}
