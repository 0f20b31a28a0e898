/**
 * CRC-32C (Castagnoli, RFC 4960 Appendix B), the checksum of the PROXY v2
 * PP2_TYPE_CRC32C TLV.
 *
 * @module
 */

/** Reflected Castagnoli polynomial. */
const _POLYNOMIAL = 0x82f63b78;
let _table: Uint32Array | undefined;

/**
 * Computes the CRC-32C of `bytes`, continuing from `previous` so that a
 * message can be checksummed in pieces: `crc32c(b, crc32c(a))` equals the
 * checksum of `a` followed by `b`.
 *
 * @param bytes The bytes to checksum.
 * @param previous The checksum of the bytes before these.
 * @returns The checksum, an unsigned 32-bit integer.
 * @example
 * ```ts
 * crc32c(new TextEncoder().encode("123456789")); // 0xe3069283
 * ```
 */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  const table = _table ??= _makeTable();
  let crc = ~previous >>> 0;
  for (const byte of bytes) crc = table[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

function _makeTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? _POLYNOMIAL ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}
