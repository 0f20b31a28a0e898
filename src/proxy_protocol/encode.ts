/**
 * PROXY protocol encoders (HAProxy's `doc/proxy-protocol.txt`): the header a
 * proxy sends first on a connection to a backend.
 *
 * @module
 */
import { crc32c } from "./crc32c.ts";
import type { ProxyAddress } from "./header.ts";
import { formatIPv4, formatIPv6, isIPv4Mapped, parseIP } from "./ip.ts";
import {
  AF_INET,
  AF_INET6,
  MAX_UNIQUE_ID_BYTES,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_CRC32C,
  PP2_TYPE_UNIQUE_ID,
  TLV_HEADER_BYTES,
  TRANSPORT_STREAM,
  V2_COMMAND_LOCAL,
  V2_COMMAND_PROXY,
  V2_FIXED_BYTES,
  V2_SIGNATURE,
  V2_VERSION,
} from "./_wire.ts";

/** Options for {@linkcode encodeProxyV2}. */
export interface EncodeProxyV2Options {
  /** Sent as a PP2_TYPE_AUTHORITY TLV (UTF-8), e.g. the TLS SNI the client sent. */
  authority?: string;
  /**
   * Sent as a PP2_TYPE_UNIQUE_ID TLV: hex text (either case) of 0-128 bytes,
   * the form `ProxyHeader.uniqueId` has after parsing.
   */
  uniqueId?: string;
  /**
   * Append a PP2_TYPE_CRC32C TLV holding the header's checksum, so that a
   * receiver that checks it detects corruption.
   *
   * @default {false}
   */
  checksum?: boolean;
}

const _encoder = new TextEncoder();

/**
 * Encodes a version 1 (text) header for a TCP connection. When both endpoints
 * are IPv4 (an IPv4-mapped IPv6 address such as `::ffff:10.0.0.5` counts as
 * IPv4) the line is `TCP4`; otherwise it is `TCP6` and an IPv4 endpoint is
 * written as IPv4-mapped. IPv6 addresses are written in RFC 5952 form with hex
 * groups only (`::ffff:a00:5`), the syntax the spec describes.
 *
 * @param source The real client.
 * @param destination The address the client connected to.
 * @returns The line, CRLF included.
 * @throws {SyntaxError} When a hostname is not an IP address.
 * @throws {RangeError} When a port is not an integer 0-65535.
 * @example
 * ```ts
 * encodeProxyV1({ hostname: "192.168.0.1", port: 56324 }, { hostname: "192.168.0.11", port: 443 });
 * // "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" as bytes
 * ```
 */
export function encodeProxyV1(
  source: ProxyAddress,
  destination: ProxyAddress,
): Uint8Array<ArrayBuffer> {
  const [src, dst] = _endpoints(source, destination);
  const format = src.length === 4
    ? formatIPv4
    : (bytes: Uint8Array) => formatIPv6(bytes, { mappedIPv4: false });
  return _encoder.encode(
    `PROXY ${src.length === 4 ? "TCP4" : "TCP6"} ${format(src)} ${
      format(dst)
    } ${source.port} ${destination.port}\r\n`,
  );
}

/**
 * Encodes the version 1 line for a connection whose addresses are unknown:
 * `PROXY UNKNOWN\r\n`. The receiver then uses the socket's own endpoints. The
 * spec advises against it where a real line can be built, as some receivers
 * reject it.
 *
 * @returns The line, CRLF included.
 * @example
 * ```ts
 * encodeProxyV1Unknown(); // "PROXY UNKNOWN\r\n" as bytes
 * ```
 */
export function encodeProxyV1Unknown(): Uint8Array<ArrayBuffer> {
  return _encoder.encode("PROXY UNKNOWN\r\n");
}

/**
 * Encodes a version 2 (binary) PROXY-command header for a TCP connection:
 * family INET when both endpoints are IPv4 (IPv4-mapped counts as IPv4),
 * otherwise INET6 with any IPv4 endpoint as `::ffff:a.b.c.d`; then the
 * optional TLVs (AUTHORITY, UNIQUE_ID, then CRC32C).
 *
 * @param source The real client.
 * @param destination The address the client connected to.
 * @param options TLVs to append.
 * @returns The header.
 * @throws {SyntaxError} When a hostname is not an IP address or `uniqueId` is not hex.
 * @throws {RangeError} When a port is not an integer 0-65535, `uniqueId` is
 * over 128 bytes, or the header would exceed 16 + 65535 bytes.
 * @example
 * ```ts
 * const header = encodeProxyV2(
 *   { hostname: "2001:db8::5", port: 5123 },
 *   { hostname: "2001:db8::1", port: 443 },
 *   { authority: "example.com" },
 * );
 * header.length; // 16 + 36 + 3 + 11
 * ```
 */
export function encodeProxyV2(
  source: ProxyAddress,
  destination: ProxyAddress,
  options: EncodeProxyV2Options = {},
): Uint8Array<ArrayBuffer> {
  const [src, dst] = _endpoints(source, destination);
  const tlvs: [number, Uint8Array][] = [];
  if (options.authority !== undefined) {
    tlvs.push([PP2_TYPE_AUTHORITY, _encoder.encode(options.authority)]);
  }
  if (options.uniqueId !== undefined) tlvs.push([PP2_TYPE_UNIQUE_ID, _uniqueId(options.uniqueId)]);
  if (options.checksum) tlvs.push([PP2_TYPE_CRC32C, new Uint8Array(4)]);
  const addressBytes = 2 * src.length + 4;
  let blockBytes = addressBytes;
  for (const [, value] of tlvs) blockBytes += TLV_HEADER_BYTES + value.length;
  if (blockBytes > 0xffff) {
    throw new RangeError(
      `Cannot encode PROXY v2 header as its block must be at most 65535 bytes: current size is ${blockBytes}`,
    );
  }
  const out = new Uint8Array(V2_FIXED_BYTES + blockBytes);
  const view = new DataView(out.buffer);
  out.set(V2_SIGNATURE);
  out[12] = (V2_VERSION << 4) | V2_COMMAND_PROXY;
  out[13] = ((src.length === 4 ? AF_INET : AF_INET6) << 4) | TRANSPORT_STREAM;
  view.setUint16(14, blockBytes);
  out.set(src, V2_FIXED_BYTES);
  out.set(dst, V2_FIXED_BYTES + src.length);
  view.setUint16(V2_FIXED_BYTES + 2 * src.length, source.port);
  view.setUint16(V2_FIXED_BYTES + 2 * src.length + 2, destination.port);
  let at = V2_FIXED_BYTES + addressBytes;
  for (const [type, value] of tlvs) {
    out[at] = type;
    view.setUint16(at + 1, value.length);
    out.set(value, at + TLV_HEADER_BYTES);
    at += TLV_HEADER_BYTES + value.length;
  }
  // The CRC32C TLV is last and was written as zeros, as the checksum requires.
  if (options.checksum) view.setUint32(out.length - 4, crc32c(out));
  return out;
}

/**
 * Encodes a version 2 LOCAL header (a connection the sender makes on its own
 * behalf, such as a health check): family UNSPEC and an empty block, 16 bytes.
 *
 * @returns The header.
 * @example
 * ```ts
 * encodeProxyV2Local().length; // 16
 * ```
 */
export function encodeProxyV2Local(): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(V2_FIXED_BYTES);
  out.set(V2_SIGNATURE);
  out[12] = (V2_VERSION << 4) | V2_COMMAND_LOCAL;
  return out;
}

/**
 * Both endpoints' address bytes of one family: 4 each when both are IPv4
 * (unmapping `::ffff:a.b.c.d`), else 16 each (mapping IPv4). Validates ports.
 */
function _endpoints(source: ProxyAddress, destination: ProxyAddress): [Uint8Array, Uint8Array] {
  const src = _address(source, "source");
  const dst = _address(destination, "destination");
  if (src.length === dst.length) return [src, dst];
  return [_toIPv6(src), _toIPv6(dst)];
}

function _address(address: ProxyAddress, name: string): Uint8Array {
  const { hostname, port } = address;
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(
      `Cannot encode PROXY header as "${name}.port" must be 0-65535: current value is ${port}`,
    );
  }
  const bytes = parseIP(hostname);
  if (bytes === null) {
    throw new SyntaxError(
      `Cannot encode PROXY header as "${name}.hostname" must be an IP address: current value is ${
        JSON.stringify(hostname)
      }`,
    );
  }
  return isIPv4Mapped(bytes) ? bytes.subarray(12) : bytes;
}

function _toIPv6(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 16) return bytes;
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped.set(bytes, 12);
  return mapped;
}

function _uniqueId(hex: string): Uint8Array {
  if (!/^(?:[0-9A-Fa-f]{2})*$/.test(hex)) {
    throw new SyntaxError(
      `Cannot encode PROXY v2 header as "uniqueId" must be hex bytes: current value is ${
        JSON.stringify(hex)
      }`,
    );
  }
  if (hex.length / 2 > MAX_UNIQUE_ID_BYTES) {
    throw new RangeError(
      `Cannot encode PROXY v2 header as "uniqueId" must be at most 128 bytes: current size is ${
        hex.length / 2
      }`,
    );
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}
