/**
 * IP addresses and CIDR ranges for the front door's allow and deny lists, and
 * the key that per-source limits count under. Addresses are parsed by hand
 * into 32-bit words (no regular expressions, no BigInt), so that matching a
 * client against a list costs one parse and a few integer compares per range.
 *
 * IPv4 and IPv6 share one address space through IPv4-mapped IPv6 addresses
 * (`::ffff:a.b.c.d`): a mapped client (as a dual-stack listener reports IPv4
 * clients) is matched as IPv4, and a mapped range (`::ffff:10.0.0.0/104`) is
 * stored as the IPv4 range it covers (`10.0.0.0/8`).
 * @module
 */

/**
 * Text that is not an address or CIDR range. Callers catch it by class (it is
 * also a `SyntaxError`) and wrap it with where the text came from.
 */
export class CidrError extends SyntaxError {
  override name = "CidrError";
}

/** A CIDR range, normalised: host bits cleared, IPv4-mapped ranges as IPv4. */
export interface Cidr {
  /** 4 for IPv4 (IPv4-mapped IPv6 ranges included), 6 for IPv6. */
  readonly family: 4 | 6;
  /**
   * The first address of the range as unsigned 32-bit words, most significant
   * first: one word for IPv4, four for IPv6.
   */
  readonly network: readonly number[];
  /** The number of leading bits that must match: 0-32 for IPv4, 0-128 for IPv6. */
  readonly prefixLength: number;
}

/** A parsed address: IPv4 as one unsigned 32-bit number, IPv6 as four words, most significant first. */
export type IpAddress = { readonly v4: number } | { readonly v6: Uint32Array };

/** Where addresses are parsed on the per-connection path, to spare an allocation per call. */
const _scratch = new Int32Array(4);

/**
 * Parses an address (`10.0.0.1`, `::1`) or a CIDR range (`10.0.0.0/8`,
 * `2001:db8::/32`); a bare address is a range of one (/32 or /128). Host bits
 * set past the prefix are accepted and cleared, as HAProxy does:
 * `10.1.2.3/8` is `10.0.0.0/8`. An IPv4-mapped range of /96 or longer becomes
 * the IPv4 range it covers: `::ffff:10.0.0.0/104` is `10.0.0.0/8`. IPv4 parts
 * with leading zeros (`010.0.0.1`, octal to some parsers) and zone indices
 * (`fe80::1%eth0`) are refused.
 *
 * @param text The text to parse; surrounding whitespace is ignored.
 * @param field The flag or config field, named in the error.
 * @returns The range.
 * @throws {CidrError} When the text is not an address or CIDR range.
 * @example
 * ```ts
 * parseCidr("::ffff:10.0.0.0/104", "--allow"); // { family: 4, network: [0x0a000000], prefixLength: 8 }
 * ```
 */
export function parseCidr(text: string, field: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf("/");
  const end = slash < 0 ? trimmed.length : slash;
  const words = new Int32Array(4);
  const family = _parseIp(trimmed, 0, end, words);
  if (family === 0) throw _cidrError(text, field);
  const max = family === 4 ? 32 : 128;
  const prefixLength = slash < 0 ? max : _parsePrefix(trimmed, slash + 1, max);
  if (prefixLength < 0) {
    throw _cidrError(text, field, ` (the prefix length of an IPv${family} range is 0-${max})`);
  }
  if (family === 4) {
    return { family: 4, network: [(words[0]! & _mask(prefixLength)) >>> 0], prefixLength };
  }
  if (_isMapped(words) && prefixLength >= 96) {
    const v4Length = prefixLength - 96;
    return { family: 4, network: [(words[3]! & _mask(v4Length)) >>> 0], prefixLength: v4Length };
  }
  const network = [0, 1, 2, 3].map((k) => (words[k]! & _mask(prefixLength - 32 * k)) >>> 0);
  return { family: 6, network, prefixLength };
}

/**
 * Formats a range as CIDR text: `10.0.0.0/8`, `2001:db8::/32` (RFC 5952 form).
 *
 * @param cidr The range.
 * @returns The text.
 * @example
 * ```ts
 * formatCidr(parseCidr("2001:DB8:0:0::1/32", "--allow")); // "2001:db8::/32"
 * ```
 */
export function formatCidr(cidr: Cidr): string {
  const address = cidr.family === 4 ? _formatV4(cidr.network[0] ?? 0) : _formatV6(cidr.network);
  return `${address}/${cidr.prefixLength}`;
}

/**
 * Parses an address as Deno reports it (`Deno.NetAddr.hostname`): `127.0.0.1`,
 * `::1`, `::ffff:127.0.0.2`. An IPv4-mapped IPv6 address comes back as IPv4;
 * a zone index (`fe80::1%eth0`) is ignored.
 *
 * @param text The address.
 * @returns The address as numbers, or `undefined` when the text is not an IP address.
 * @example
 * ```ts
 * parseIp("::ffff:127.0.0.2"); // { v4: 0x7f000002 }
 * ```
 */
export function parseIp(text: string): IpAddress | undefined {
  const family = _parseAddress(text, _scratch);
  if (family === 0) return undefined;
  return family === 4 ? { v4: _scratch[0]! >>> 0 } : { v6: new Uint32Array(_scratch) };
}

/**
 * The key that per-source limits count a client under: an IPv4 address as
 * itself (an IPv4-mapped one unmapped), an IPv6 address as the network of
 * `v6PrefixLength` bits it is in, since one IPv6 client usually holds a whole
 * /64. Text that is not an IP address is its own key.
 *
 * @param address The client address, as `Deno.NetAddr.hostname` gives it.
 * @param v6PrefixLength How many leading bits of an IPv6 address make the key, 0-128.
 * @returns The key, e.g. `10.0.0.5` or `2001:db8:1:2::/64`.
 * @throws {RangeError} When `v6PrefixLength` is not a whole number 0-128.
 * @example
 * ```ts
 * sourceKey("2001:db8:1:2:aaaa::1"); // "2001:db8:1:2::/64"
 * sourceKey("::ffff:10.0.0.5"); // "10.0.0.5"
 * ```
 */
export function sourceKey(address: string, v6PrefixLength = 64): string {
  if (!Number.isInteger(v6PrefixLength) || v6PrefixLength < 0 || v6PrefixLength > 128) {
    throw new RangeError(
      `Cannot make a source key as "v6PrefixLength" must be 0-128: current value is ${v6PrefixLength}`,
    );
  }
  const family = _parseAddress(address, _scratch);
  if (family === 0) return address;
  if (family === 4) return _formatV4(_scratch[0]! >>> 0);
  const network = [0, 1, 2, 3].map((k) => (_scratch[k]! & _mask(v6PrefixLength - 32 * k)) >>> 0);
  return `${_formatV6(network)}/${v6PrefixLength}`;
}

/**
 * A small set of CIDR ranges that an address is tested against, on the
 * per-connection path. Ranges are scanned in turn (lists are tens long); each
 * test is one parse of the address and integer compares.
 *
 * An IPv4 address is also in every IPv6 range that covers all of
 * `::ffff:0:0/96` (where IPv4 addresses map to), so `::/0` matches every
 * client, IPv4 included.
 *
 * @example
 * ```ts
 * const list = new CidrList([parseCidr("10.0.0.0/8", "--allow")]);
 * list.has("::ffff:10.1.2.3"); // true
 * ```
 */
export class CidrList {
  #size: number;
  #v4Networks: Int32Array;
  #v4Masks: Int32Array;
  /** Four words per range. */
  #v6Networks: Int32Array;
  #v6Masks: Int32Array;

  /** @param cidrs The ranges, as {@link parseCidr} gives them. */
  constructor(cidrs: readonly Cidr[]) {
    const v4: [number, number][] = [];
    const v6: Cidr[] = [];
    for (const cidr of cidrs) {
      if (cidr.family === 4) v4.push([cidr.network[0] ?? 0, cidr.prefixLength]);
      else v6.push(cidr);
    }
    if (v6.some(_coversIPv4)) v4.push([0, 0]);
    this.#size = cidrs.length;
    this.#v4Networks = Int32Array.from(v4, ([network, length]) => network & _mask(length));
    this.#v4Masks = Int32Array.from(v4, ([, length]) => _mask(length));
    this.#v6Networks = new Int32Array(v6.length * 4);
    this.#v6Masks = new Int32Array(v6.length * 4);
    v6.forEach((cidr, i) => {
      for (let k = 0; k < 4; k++) {
        const mask = _mask(cidr.prefixLength - 32 * k);
        this.#v6Masks[i * 4 + k] = mask;
        this.#v6Networks[i * 4 + k] = (cidr.network[k] ?? 0) & mask;
      }
    });
  }

  /** How many ranges the list was given. */
  get size(): number {
    return this.#size;
  }

  /**
   * Whether an address is in one of the ranges.
   *
   * @param address An address as `Deno.NetAddr.hostname` gives it; text that
   *   is not an IP address is in no range.
   * @returns `true` when some range holds the address.
   */
  has(address: string): boolean {
    const family = _parseAddress(address, _scratch);
    if (family === 4) return this.#hasV4(_scratch[0]!);
    if (family === 6) return this.#hasV6(_scratch[0]!, _scratch[1]!, _scratch[2]!, _scratch[3]!);
    return false;
  }

  /**
   * Whether an address already parsed by {@link parseIp} is in one of the ranges.
   *
   * @param ip The address.
   * @returns `true` when some range holds the address.
   */
  hasIp(ip: IpAddress): boolean {
    if ("v4" in ip) return this.#hasV4(ip.v4 | 0);
    const w = ip.v6;
    return this.#hasV6(w[0]! | 0, w[1]! | 0, w[2]! | 0, w[3]! | 0);
  }

  #hasV4(address: number): boolean {
    const networks = this.#v4Networks;
    const masks = this.#v4Masks;
    for (let i = 0; i < networks.length; i++) {
      if ((address & masks[i]!) === networks[i]) return true;
    }
    return false;
  }

  #hasV6(w0: number, w1: number, w2: number, w3: number): boolean {
    const networks = this.#v6Networks;
    const masks = this.#v6Masks;
    for (let b = 0; b < networks.length; b += 4) {
      if (
        (w0 & masks[b]!) === networks[b] && (w1 & masks[b + 1]!) === networks[b + 1] &&
        (w2 & masks[b + 2]!) === networks[b + 2] && (w3 & masks[b + 3]!) === networks[b + 3]
      ) return true;
    }
    return false;
  }
}

function _cidrError(text: string, field: string, detail = ""): CidrError {
  return new CidrError(
    `${field} must be an address or CIDR like 10.0.0.0/8 or 2001:db8::/32: got ${
      JSON.stringify(text)
    }${detail}`,
  );
}

/** The mask of a 32-bit word whose first `bits` bits (clamped to 0-32) are set, as int32. */
function _mask(bits: number): number {
  if (bits <= 0) return 0;
  return bits >= 32 ? -1 : -1 << (32 - bits);
}

/** Whether four words are an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`). */
function _isMapped(words: ArrayLike<number>): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === 0xffff;
}

/** Whether an IPv6 range holds all of `::ffff:0:0/96`, where IPv4 addresses map to. */
function _coversIPv4(cidr: Cidr): boolean {
  if (cidr.prefixLength > 96) return false;
  const mapped = [0, 0, 0xffff, 0];
  return mapped.every((word, k) => {
    const mask = _mask(cidr.prefixLength - 32 * k);
    return (word & mask) === ((cidr.network[k] ?? 0) & mask);
  });
}

/**
 * Parses a client address into `out`: 4 with the address in `out[0]` (mapped
 * IPv6 addresses unmapped), 6 with it in `out[0..3]`, 0 when it is not one.
 * A zone index is dropped.
 */
function _parseAddress(text: string, out: Int32Array): 0 | 4 | 6 {
  const zone = text.indexOf("%");
  const family = _parseIp(text, 0, zone < 0 ? text.length : zone, out);
  if (family === 6 && _isMapped(out)) {
    out[0] = out[3]!;
    return 4;
  }
  return family;
}

/**
 * Parses `text[start, end)` as an IPv4 address into `out[0]` (returns 4) or
 * an IPv6 address into `out[0..3]` (returns 6); 0 when it is neither.
 */
function _parseIp(text: string, start: number, end: number, out: Int32Array): 0 | 4 | 6 {
  const colon = text.indexOf(":", start);
  if (colon < 0 || colon >= end) {
    const v4 = _parseV4(text, start, end);
    if (v4 < 0) return 0;
    out[0] = v4;
    return 4;
  }
  return _parseV6(text, start, end, out) ? 6 : 0;
}

/**
 * Parses `text[start, end)` as a dotted quad: four decimal parts 0-255,
 * without leading zeros. Returns the address as an unsigned number, or -1.
 */
function _parseV4(text: string, start: number, end: number): number {
  let address = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 0x2e; // a "." after the last part ends it
    if (c === 0x2e) {
      if (digits === 0 || parts === 4) return -1;
      address = address * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && part === 0) return -1;
      part = part * 10 + (c - 0x30);
      if (part > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  return parts === 4 ? address : -1;
}

/** Eight 16-bit groups, reused by {@link _parseV6}. */
const _groups = new Uint16Array(8);

/**
 * Parses `text[start, end)` as an IPv6 address (RFC 4291 text: hex groups, one
 * `::`, an optional dotted quad at the end) into four words of `out`.
 */
function _parseV6(text: string, start: number, end: number, out: Int32Array): boolean {
  const groups = _groups;
  let count = 0;
  let gap = -1;
  let i = start;
  if (text.charCodeAt(i) === 0x3a) {
    if (end - start < 2 || text.charCodeAt(i + 1) !== 0x3a) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    if (count === 8) return false;
    let value = 0;
    let j = i;
    for (; j < end && j - i <= 4; j++) {
      const digit = _hexDigit(text.charCodeAt(j));
      if (digit < 0) break;
      value = value * 16 + digit;
    }
    if (j < end && text.charCodeAt(j) === 0x2e) {
      const v4 = count <= 6 ? _parseV4(text, i, end) : -1;
      if (v4 < 0) return false;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      break;
    }
    if (j === i || j - i > 4) return false;
    groups[count++] = value;
    if (j === end) break;
    if (text.charCodeAt(j) !== 0x3a) return false;
    j++;
    if (text.charCodeAt(j) === 0x3a && j < end) {
      if (gap >= 0) return false;
      gap = count;
      j++;
    } else if (j === end) {
      return false;
    }
    i = j;
  }
  if (gap < 0 ? count !== 8 : count > 7) return false;
  if (gap >= 0) {
    const zeros = 8 - count;
    groups.copyWithin(gap + zeros, gap, count);
    groups.fill(0, gap, gap + zeros);
  }
  for (let k = 0; k < 4; k++) out[k] = (groups[2 * k]! << 16) | groups[2 * k + 1]!;
  return true;
}

/** The value of a hex digit's char code, or -1. */
function _hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** Parses `text[start..]` as a prefix length 0-`max` without leading zeros, or -1. */
function _parsePrefix(text: string, start: number, max: number): number {
  const digits = text.length - start;
  if (digits < 1 || digits > 3 || (digits > 1 && text.charCodeAt(start) === 0x30)) return -1;
  let value = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    value = value * 10 + (c - 0x30);
  }
  return value <= max ? value : -1;
}

function _formatV4(address: number): string {
  return `${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${address & 255}`;
}

/** Formats four words as RFC 5952 text: lower case, the longest run of two or more zero groups as `::`. */
function _formatV6(words: ArrayLike<number>): string {
  const groups: string[] = [];
  for (let k = 0; k < 4; k++) {
    const word = words[k] ?? 0;
    groups.push(((word >>> 16) & 0xffff).toString(16), (word & 0xffff).toString(16));
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${
    groups.slice(bestStart + bestLength).join(":")
  }`;
}
