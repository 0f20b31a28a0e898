/**
 * IP address text ⇄ bytes, strict on input and canonical on output: IPv4 as a
 * dotted quad without leading zeros, IPv6 per RFC 4291 in, RFC 5952 out.
 * Zone identifiers (`%eth0`) and brackets are not addresses here.
 *
 * @module
 */

/** Longest IPv6 text: `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`. */
const _MAX_IPV6_TEXT = 45;
const _OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const _HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * Parses an IPv4 address: exactly four decimal numbers 0-255 joined by single
 * dots, with no leading zeros (`010.0.0.1` could be read as octal, so it is
 * rejected, as the PROXY protocol requires).
 *
 * @param text The address text.
 * @returns The 4 address bytes, or `null` when `text` is not such an address.
 * @example
 * ```ts
 * parseIPv4("192.168.0.1"); // Uint8Array [192, 168, 0, 1]
 * parseIPv4("192.168.0.01"); // null
 * ```
 */
export function parseIPv4(text: string): Uint8Array<ArrayBuffer> | null {
  if (text.length > 15) return null;
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!_OCTET.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    bytes[i] = value;
  }
  return bytes;
}

/**
 * Parses an IPv6 address in any RFC 4291 text form: eight groups of 1-4 hex
 * digits (either case), at most one `::` standing for one or more zero groups,
 * and optionally a dotted IPv4 address as the last 32 bits.
 *
 * @param text The address text, without brackets or zone.
 * @returns The 16 address bytes, or `null` when `text` is not an IPv6 address.
 * @example
 * ```ts
 * parseIPv6("2001:DB8::5"); // 16 bytes: 20 01 0d b8 00 … 00 05
 * parseIPv6("::ffff:10.0.0.5"); // 16 bytes: 00 … 00 ff ff 0a 00 00 05
 * parseIPv6("1:::2"); // null
 * ```
 */
export function parseIPv6(text: string): Uint8Array<ArrayBuffer> | null {
  if (text.length < 2 || text.length > _MAX_IPV6_TEXT) return null;
  const gap = text.indexOf("::");
  let head: number[] | null;
  let tail: number[] | null = [];
  if (gap === -1) {
    head = _groups(text, true);
    if (head === null || head.length !== 8) return null;
  } else {
    if (text.indexOf("::", gap + 1) !== -1) return null;
    head = gap === 0 ? [] : _groups(text.slice(0, gap), false);
    tail = gap + 2 === text.length ? [] : _groups(text.slice(gap + 2), true);
    if (head === null || tail === null || head.length + tail.length > 7) return null;
  }
  const bytes = new Uint8Array(16);
  const words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = words[i]! >> 8;
    bytes[2 * i + 1] = words[i]! & 0xff;
  }
  return bytes;
}

/**
 * Parses an IPv4 or an IPv6 address (see {@linkcode parseIPv4} and
 * {@linkcode parseIPv6}).
 *
 * @param text The address text.
 * @returns 4 bytes for IPv4, 16 for IPv6, or `null` when `text` is neither.
 * @example
 * ```ts
 * parseIP("::1")?.length; // 16
 * ```
 */
export function parseIP(text: string): Uint8Array<ArrayBuffer> | null {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

/**
 * Formats 4 bytes as a dotted quad.
 *
 * @param bytes The address, 4 bytes in network order.
 * @returns The text, e.g. `10.0.0.5`.
 * @throws {RangeError} When `bytes` is not 4 bytes long.
 * @example
 * ```ts
 * formatIPv4(Uint8Array.of(10, 0, 0, 5)); // "10.0.0.5"
 * ```
 */
export function formatIPv4(bytes: Uint8Array): string {
  if (bytes.length !== 4) {
    throw new RangeError(
      `Cannot format IPv4 address as it must be 4 bytes: current length is ${bytes.length}`,
    );
  }
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** Options for {@linkcode formatIPv6}. */
export interface FormatIPv6Options {
  /**
   * Show an IPv4-mapped address (`::ffff:0:0/96`) with its last 32 bits as a
   * dotted quad, as RFC 5952 recommends; `false` writes hex groups only.
   *
   * @default {true}
   */
  mappedIPv4?: boolean;
}

/**
 * Formats 16 bytes in RFC 5952 canonical form: lower-case hex without leading
 * zeros, the longest run of two or more zero groups (the first of equal runs)
 * written as `::`, and IPv4-mapped addresses as `::ffff:a.b.c.d` — the form
 * `Deno.NetAddr.hostname` uses.
 *
 * @param bytes The address, 16 bytes in network order.
 * @param options How to show IPv4-mapped addresses.
 * @returns The text, e.g. `2001:db8::5`.
 * @throws {RangeError} When `bytes` is not 16 bytes long.
 * @example
 * ```ts
 * formatIPv6(parseIPv6("2001:0DB8:0:0:0:0:0:5")!); // "2001:db8::5"
 * formatIPv6(parseIPv6("::ffff:a00:5")!); // "::ffff:10.0.0.5"
 * ```
 */
export function formatIPv6(bytes: Uint8Array, options: FormatIPv6Options = {}): string {
  if (bytes.length !== 16) {
    throw new RangeError(
      `Cannot format IPv6 address as it must be 16 bytes: current length is ${bytes.length}`,
    );
  }
  if ((options.mappedIPv4 ?? true) && isIPv4Mapped(bytes)) {
    return `::ffff:${formatIPv4(bytes.subarray(12))}`;
  }
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLength = 1; // RFC 5952 4.2.2: a single zero group is not compressed
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && words[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = (from: number, to: number) =>
    words.slice(from, to).map((word) => word.toString(16)).join(":");
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/**
 * Formats a 4-byte address as IPv4 and a 16-byte one as IPv6 (see
 * {@linkcode formatIPv4} and {@linkcode formatIPv6}).
 *
 * @param bytes The address in network order.
 * @returns The canonical text.
 * @throws {RangeError} When `bytes` is neither 4 nor 16 bytes long.
 * @example
 * ```ts
 * formatIP(Uint8Array.of(127, 0, 0, 1)); // "127.0.0.1"
 * ```
 */
export function formatIP(bytes: Uint8Array): string {
  return bytes.length === 4 ? formatIPv4(bytes) : formatIPv6(bytes);
}

/**
 * Whether 16 address bytes are an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
 *
 * @param bytes The address in network order.
 * @returns `true` for an IPv4-mapped address.
 * @example
 * ```ts
 * isIPv4Mapped(parseIPv6("::ffff:10.0.0.5")!); // true
 * ```
 */
export function isIPv4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * 16-bit groups of colon-separated hex text; with `lastMayBeIPv4`, a dotted
 * quad at the end counts as two groups. `null` when any part is not a group.
 */
function _groups(text: string, lastMayBeIPv4: boolean): number[] | null {
  const parts = text.split(":");
  const words: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (_HEX_GROUP.test(part)) {
      words.push(parseInt(part, 16));
      continue;
    }
    const ipv4 = lastMayBeIPv4 && i === parts.length - 1 ? parseIPv4(part) : null;
    if (ipv4 === null) return null;
    words.push((ipv4[0]! << 8) | ipv4[1]!, (ipv4[2]! << 8) | ipv4[3]!);
  }
  return words;
}
