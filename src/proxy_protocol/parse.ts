/**
 * Incremental PROXY protocol parser (HAProxy's `doc/proxy-protocol.txt`,
 * versions 1 and 2): call it with every byte received so far, after each read.
 *
 * @module
 */
import { crc32c } from "./crc32c.ts";
import type {
  ProxyAddress,
  ProxyFamily,
  ProxyHeader,
  ProxyParseErrorReason,
  ProxyTransport,
} from "./header.ts";
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "./ip.ts";
import {
  ADDRESS_BYTES,
  AF_INET,
  AF_INET6,
  AF_UNIX,
  MAX_UNIQUE_ID_BYTES,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_CRC32C,
  PP2_TYPE_UNIQUE_ID,
  TLV_HEADER_BYTES,
  TRANSPORT_DGRAM,
  TRANSPORT_UNSPEC,
  UNIX_PATH_BYTES,
  V1_MAX_LINE_BYTES,
  V1_SIGNATURE,
  V2_COMMAND_LOCAL,
  V2_COMMAND_PROXY,
  V2_FIXED_BYTES,
  V2_SIGNATURE,
  V2_VERSION,
} from "./_wire.ts";

/**
 * Most bytes a PROXY header can take: a v2 header of 16 bytes plus a block
 * of 65535 (v1 lines stop at 107). A reader never needs a larger buffer.
 */
export const MAX_HEADER_BYTES = V2_FIXED_BYTES + 0xffff;

/** Outcome of {@linkcode parseProxyHeader}. */
export type ParseResult =
  /** The bytes so far start a valid header: read more and call again. */
  | { status: "incomplete" }
  /** A header; it occupies `buf.subarray(0, length)` and the rest is data. */
  | { status: "ok"; header: ProxyHeader; length: number }
  /** Not a valid header: drop the connection. `message` is for logs. */
  | { status: "error"; reason: ProxyParseErrorReason; message: string };

const _CR = 0x0d;
const _LF = 0x0a;
const _utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const _utf8Lossy = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Parses the PROXY header at the start of `buf`, all the bytes received so
 * far. It decides as early as the bytes allow: a first byte that starts
 * neither signature is an error at once, and so is a v1 field that no more
 * bytes could make valid; a strict prefix of a valid header is always
 * `incomplete`. It never throws and never reads past a header except to look
 * for a second signature right after it, which is an error (`repeated`) when
 * those bytes are already in `buf`.
 *
 * Version 1 (`PROXY TCP4|TCP6|UNKNOWN ...\r\n`, at most 107 bytes): fields are
 * separated by exactly one space; IPv4 addresses are dotted quads without
 * leading zeros and must come with `TCP4`, IPv6 addresses (RFC 4291 text) with
 * `TCP6`; ports are 0-65535 without leading zeros. The line ends at its first
 * CR, which must be followed by LF; a lone LF is an error. After `UNKNOWN`,
 * anything up to the CRLF is ignored.
 *
 * Version 2: version nibble 2, command LOCAL or PROXY, family 0-3 and
 * transport 0-2, then `16 + length` bytes in all. LOCAL skips the whole block
 * (the spec says to ignore its family too). PROXY over INET, INET6 or UNIX with
 * STREAM or DGRAM requires a block of at least 12, 36 or 216 bytes and decodes
 * the addresses; an UNSPEC family or transport skips the block. After the
 * addresses come TLVs, each of which must fit in the block: AUTHORITY (valid
 * UTF-8) and UNIQUE_ID (at most 128 bytes) are kept, CRC32C (4 bytes) is
 * verified, and any of these three appearing twice is an error; all other
 * types (ALPN, NOOP, SSL, NETNS, custom) are skipped.
 *
 * @param buf Every byte received on the connection so far, from its start.
 * @returns `incomplete`, `ok` with the header and its length, or `error`.
 * @example
 * ```ts
 * const buf = new TextEncoder().encode("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /");
 * const result = parseProxyHeader(buf);
 * if (result.status === "ok") {
 *   result.header.source; // { hostname: "192.168.0.1", port: 56324 }
 *   buf.subarray(result.length); // "GET /", to forward
 * }
 * ```
 */
export function parseProxyHeader(buf: Uint8Array): ParseResult {
  const result = _parseOne(buf);
  if (result.status !== "ok") return result;
  const after = buf.subarray(result.length);
  if (_match(after, V1_SIGNATURE) === "full" || _match(after, V2_SIGNATURE) === "full") {
    return _error("repeated", "Cannot accept PROXY header as a second one follows it");
  }
  return result;
}

function _parseOne(buf: Uint8Array): ParseResult {
  const v2 = _match(buf, V2_SIGNATURE);
  if (v2 === "full") return _parseV2(buf);
  const v1 = _match(buf, V1_SIGNATURE);
  if (v1 === "full") return _parseV1(buf);
  if (v1 === "partial" || v2 === "partial") return { status: "incomplete" };
  return _error("not-proxy", "Cannot parse PROXY header as the bytes start neither signature");
}

/** Whether `buf` starts with `signature` (`full`), is a prefix of it (`partial`), or neither. */
function _match(buf: Uint8Array, signature: Uint8Array): "full" | "partial" | "no" {
  const n = Math.min(buf.length, signature.length);
  for (let i = 0; i < n; i++) if (buf[i] !== signature[i]) return "no";
  return buf.length >= signature.length ? "full" : "partial";
}

function _error(reason: ProxyParseErrorReason, message: string): ParseResult {
  return { status: "error", reason, message };
}

function _malformed(message: string): ParseResult {
  return _error("malformed", `Cannot parse PROXY header as ${message}`);
}

// ---------------------------------------------------------------- version 1

type _V1Protocol = "TCP4" | "TCP6" | "UNKNOWN";
const _V1_PROTOCOLS: readonly _V1Protocol[] = ["TCP4", "TCP6", "UNKNOWN"];
const _V1_FIELDS = ["source address", "destination address", "source port", "destination port"];
const _PORT = /^(?:0|[1-9][0-9]{0,4})$/;
const _IPV6_CHARS = /^[0-9A-Fa-f:.]*$/;

function _parseV1(buf: Uint8Array): ParseResult {
  const scan = Math.min(buf.length, V1_MAX_LINE_BYTES);
  let cr = -1;
  for (let i = 0; i < scan && cr === -1; i++) {
    if (buf[i] === _LF) return _malformed("the v1 line has a line feed without a carriage return");
    if (buf[i] === _CR) cr = i;
  }
  const complete = cr !== -1 && cr + 2 <= V1_MAX_LINE_BYTES;
  const line = String.fromCharCode(...buf.subarray(0, cr === -1 ? scan : cr));
  const fields = _v1Fields(line, complete);
  if (!Array.isArray(fields)) return fields;
  if (!complete) {
    return buf.length >= V1_MAX_LINE_BYTES
      ? _error("too-long", `Cannot parse PROXY header as the v1 line has no CRLF in 107 bytes`)
      : { status: "incomplete" };
  }
  if (buf.length < cr + 2) return { status: "incomplete" };
  if (buf[cr + 1] !== _LF) {
    return _malformed("the v1 line has a carriage return without a line feed");
  }
  const length = cr + 2;
  const [protocol, src, dst, srcPort, dstPort] = fields;
  if (protocol === "UNKNOWN" || src === undefined || dst === undefined) {
    const header: ProxyHeader = {
      version: 1,
      command: "PROXY",
      family: "UNSPEC",
      transport: "unspec",
      source: null,
      destination: null,
    };
    return { status: "ok", header, length };
  }
  const format = protocol === "TCP4" ? formatIPv4 : formatIPv6;
  const header: ProxyHeader = {
    version: 1,
    command: "PROXY",
    family: protocol === "TCP4" ? "INET" : "INET6",
    transport: "stream",
    source: { hostname: format(src), port: Number(srcPort) },
    destination: { hostname: format(dst), port: Number(dstPort) },
  };
  return { status: "ok", header, length };
}

/**
 * Checks the fields of a v1 line (without its CRLF). When the line is not
 * `complete` yet, its last field may be cut short and is only checked to be
 * the start of a valid one. Returns the protocol and, for TCP, the address
 * bytes (once complete), or an error.
 */
function _v1Fields(
  line: string,
  complete: boolean,
): [_V1Protocol, Uint8Array?, Uint8Array?, string?, string?] | [] | ParseResult {
  const parts = line.split(" ");
  if (parts[0] !== "PROXY") {
    return _malformed(`"PROXY" must be followed by one space: got ${JSON.stringify(line)}`);
  }
  if (parts.length === 1) return complete ? _malformed("the v1 line has no protocol") : [];
  const protocolText = parts[1]!;
  if (parts.length === 2 && !complete) {
    return _V1_PROTOCOLS.some((p) => p.startsWith(protocolText))
      ? []
      : _malformed(`the v1 protocol is not TCP4, TCP6 or UNKNOWN: ${JSON.stringify(protocolText)}`);
  }
  const protocol = _V1_PROTOCOLS.find((p) => p === protocolText);
  if (protocol === undefined) {
    return _malformed(
      `the v1 protocol is not TCP4, TCP6 or UNKNOWN: ${JSON.stringify(protocolText)}`,
    );
  }
  if (protocol === "UNKNOWN") return [protocol];
  const values = parts.slice(2);
  if (values.length > 4 || (complete && values.length < 4)) {
    return _malformed(
      `a ${protocol} line must have 4 fields after the protocol, one space apart: got ${
        JSON.stringify(values.join(" "))
      }`,
    );
  }
  const addresses: Uint8Array[] = [];
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    const partial = !complete && i === values.length - 1;
    if (i >= 2) {
      if (partial ? !_isPortPrefix(value) : !_isPort(value)) {
        return _malformed(
          `the v1 ${_V1_FIELDS[i]} must be 0-65535 without leading zeros: got ${
            JSON.stringify(value)
          }`,
        );
      }
      continue;
    }
    const bytes = partial ? null : protocol === "TCP4" ? parseIPv4(value) : parseIPv6(value);
    if (bytes !== null) addresses.push(bytes);
    else if (!partial || !(protocol === "TCP4" ? _isIPv4Prefix(value) : _isIPv6Prefix(value))) {
      return _malformed(
        `the v1 ${_V1_FIELDS[i]} is not ${protocol === "TCP4" ? "IPv4" : "IPv6"}: got ${
          JSON.stringify(value)
        }`,
      );
    }
  }
  return complete ? [protocol, addresses[0]!, addresses[1]!, values[2]!, values[3]!] : [];
}

function _isPort(text: string): boolean {
  return _PORT.test(text) && Number(text) <= 0xffff;
}

function _isPortPrefix(text: string): boolean {
  return text === "" || _isPort(text);
}

/** Whether more bytes could still make `text` a valid dotted quad. */
function _isIPv4Prefix(text: string): boolean {
  const parts = text.split(".");
  if (parts.length > 4) return false;
  const last = parts.pop()!;
  return parts.every((part) => _isOctet(part)) && (last === "" || _isOctet(last));
}

function _isOctet(text: string): boolean {
  return /^(?:0|[1-9][0-9]{0,2})$/.test(text) && Number(text) <= 255;
}

/** Whether `text` has only IPv6 characters and is short enough to become an address. */
function _isIPv6Prefix(text: string): boolean {
  return text.length <= 45 && _IPV6_CHARS.test(text);
}

// ---------------------------------------------------------------- version 2

function _parseV2(buf: Uint8Array): ParseResult {
  if (buf.length <= 12) return { status: "incomplete" };
  const version = buf[12]! >> 4;
  const command = buf[12]! & 0x0f;
  if (version !== V2_VERSION) {
    return _error(
      "version",
      `Cannot parse PROXY v2 header as the version must be 2: got ${version}`,
    );
  }
  if (command !== V2_COMMAND_LOCAL && command !== V2_COMMAND_PROXY) {
    return _error(
      "command",
      `Cannot parse PROXY v2 header as the command must be 0 (LOCAL) or 1 (PROXY): got ${command}`,
    );
  }
  if (buf.length <= 13) return { status: "incomplete" };
  const family = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  if (command === V2_COMMAND_PROXY && (family > AF_UNIX || transport > TRANSPORT_DGRAM)) {
    return _error(
      "family",
      `Cannot parse PROXY v2 header as family ${family} or transport ${transport} is unknown`,
    );
  }
  if (buf.length < V2_FIXED_BYTES) return { status: "incomplete" };
  const length = V2_FIXED_BYTES + ((buf[14]! << 8) | buf[15]!);
  const addressBytes = transport === TRANSPORT_UNSPEC ? 0 : ADDRESS_BYTES[family] ?? 0;
  if (command === V2_COMMAND_PROXY && length - V2_FIXED_BYTES < addressBytes) {
    return _malformed(
      `the v2 block is ${
        length - V2_FIXED_BYTES
      } bytes, less than the ${addressBytes} its addresses take`,
    );
  }
  if (buf.length < length) return { status: "incomplete" };
  if (command === V2_COMMAND_LOCAL) {
    const header: ProxyHeader = {
      version: 2,
      command: "LOCAL",
      family: "UNSPEC",
      transport: "unspec",
      source: null,
      destination: null,
    };
    return { status: "ok", header, length };
  }
  const header: ProxyHeader = {
    version: 2,
    command: "PROXY",
    family: _FAMILIES[family]!,
    transport: _TRANSPORTS[transport]!,
    source: null,
    destination: null,
  };
  // Without addresses there is no telling where TLVs would start: skip the block.
  if (addressBytes === 0) return { status: "ok", header, length };
  _readAddresses(buf.subarray(V2_FIXED_BYTES), family, header);
  const tlvError = _readTlvs(buf.subarray(0, length), V2_FIXED_BYTES + addressBytes, header);
  return tlvError ?? { status: "ok", header, length };
}

const _FAMILIES: readonly ProxyFamily[] = ["UNSPEC", "INET", "INET6", "UNIX"];
const _TRANSPORTS: readonly ProxyTransport[] = ["unspec", "stream", "dgram"];

/** Decodes the address block (long enough, checked by the caller) into `header`. */
function _readAddresses(block: Uint8Array, family: number, header: ProxyHeader): void {
  if (family === AF_UNIX) {
    header.sourcePath = _unixPath(block.subarray(0, UNIX_PATH_BYTES));
    header.destinationPath = _unixPath(block.subarray(UNIX_PATH_BYTES, 2 * UNIX_PATH_BYTES));
    return;
  }
  const size = family === AF_INET ? 4 : 16;
  const format = family === AF_INET6 ? formatIPv6 : formatIPv4;
  const port = (at: number) => (block[at]! << 8) | block[at + 1]!;
  const address = (index: number): ProxyAddress => ({
    hostname: format(block.subarray(index * size, (index + 1) * size)),
    port: port(2 * size + 2 * index),
  });
  header.source = address(0);
  header.destination = address(1);
}

function _unixPath(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return _utf8Lossy.decode(end === -1 ? bytes : bytes.subarray(0, end));
}

/**
 * Walks the TLVs of `header` from `start` to its end, keeping AUTHORITY and
 * UNIQUE_ID in `into` and verifying CRC32C. Returns an error or `undefined`.
 */
function _readTlvs(header: Uint8Array, start: number, into: ProxyHeader): ParseResult | undefined {
  let checksumAt = -1;
  for (let at = start; at < header.length;) {
    if (header.length - at < TLV_HEADER_BYTES) {
      return _malformed(`a v2 TLV header at byte ${at} overruns the block`);
    }
    const type = header[at]!;
    const valueAt = at + TLV_HEADER_BYTES;
    const end = valueAt + ((header[at + 1]! << 8) | header[at + 2]!);
    if (end > header.length) {
      return _malformed(
        `the v2 TLV of type 0x${type.toString(16)} at byte ${at} overruns the block`,
      );
    }
    const value = header.subarray(valueAt, end);
    if (type === PP2_TYPE_AUTHORITY) {
      if (into.authority !== undefined) return _malformed("the v2 AUTHORITY TLV appears twice");
      try {
        into.authority = _utf8.decode(value);
      } catch {
        return _malformed("the v2 AUTHORITY TLV is not UTF-8");
      }
    } else if (type === PP2_TYPE_UNIQUE_ID) {
      if (into.uniqueId !== undefined) return _malformed("the v2 UNIQUE_ID TLV appears twice");
      if (value.length > MAX_UNIQUE_ID_BYTES) {
        return _malformed(`the v2 UNIQUE_ID TLV is ${value.length} bytes, more than 128`);
      }
      into.uniqueId = Array.from(value, (byte) => byte.toString(16).padStart(2, "0")).join("");
    } else if (type === PP2_TYPE_CRC32C) {
      if (checksumAt !== -1) return _malformed("the v2 CRC32C TLV appears twice");
      if (value.length !== 4) return _malformed("the v2 CRC32C TLV is not 4 bytes");
      checksumAt = valueAt;
    }
    at = end;
  }
  if (checksumAt === -1) return undefined;
  // The checksum covers the whole header with its own 4 bytes read as zeros.
  let crc = crc32c(header.subarray(0, checksumAt));
  crc = crc32c(new Uint8Array(4), crc);
  crc = crc32c(header.subarray(checksumAt + 4), crc);
  const sent = new DataView(header.buffer, header.byteOffset + checksumAt, 4).getUint32(0);
  return crc === sent ? undefined : _error(
    "checksum",
    `Cannot accept PROXY v2 header as its CRC32C is 0x${sent.toString(16)}: computed 0x${
      crc.toString(16)
    }`,
  );
}
