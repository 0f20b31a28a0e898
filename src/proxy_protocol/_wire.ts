/**
 * Wire constants of the PROXY protocol shared by the parser and the encoder
 * (HAProxy's `doc/proxy-protocol.txt`). Internal: not re-exported by `mod.ts`.
 *
 * @module
 */

/** "PROXY": seeing it means a version 1 (text) header. */
export const V1_SIGNATURE: Uint8Array = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59);

/** The 12-byte signature that starts a version 2 (binary) header. */
export const V2_SIGNATURE: Uint8Array = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);

/** Longest version 1 line the receiver must support, CRLF included. */
export const V1_MAX_LINE_BYTES = 107;

/** Signature, version/command, family/transport and the 16-bit block length. */
export const V2_FIXED_BYTES = 16;

/** High nibble of the 13th byte. */
export const V2_VERSION = 0x2;
/** Low nibble of the 13th byte: the connection is the sender's own (health check). */
export const V2_COMMAND_LOCAL = 0x0;
/** Low nibble of the 13th byte: the connection is relayed on behalf of a client. */
export const V2_COMMAND_PROXY = 0x1;

/** High nibble of the 14th byte (address family). */
export const AF_UNSPEC = 0x0;
export const AF_INET = 0x1;
export const AF_INET6 = 0x2;
export const AF_UNIX = 0x3;

/** Low nibble of the 14th byte (transport protocol). */
export const TRANSPORT_UNSPEC = 0x0;
export const TRANSPORT_STREAM = 0x1;
export const TRANSPORT_DGRAM = 0x2;

/** Address block length by family, when the transport is STREAM or DGRAM. */
export const ADDRESS_BYTES: Readonly<Record<number, number>> = {
  [AF_INET]: 2 * 4 + 2 * 2,
  [AF_INET6]: 2 * 16 + 2 * 2,
  [AF_UNIX]: 2 * 108,
};

/** Length of one `sun_path` in an AF_UNIX address block. */
export const UNIX_PATH_BYTES = 108;

/** Type byte and two length bytes in front of every TLV value. */
export const TLV_HEADER_BYTES = 3;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_UNIQUE_ID = 0x05;

/** PP2_TYPE_UNIQUE_ID: "an opaque byte sequence of up to 128 bytes". */
export const MAX_UNIQUE_ID_BYTES = 128;
