/**
 * Helpers for the PROXY protocol tests: byte building, a seeded generator
 * and loopback socket pairs.
 *
 * @module
 */
import { bytes } from "../_helpers.ts";

export { bytes };

const encoder = new TextEncoder();

/** ASCII/UTF-8 text as bytes. */
export function text(value: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(value);
}

/** The v2 signature, typed by hand from the spec. */
export const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A big-endian 16-bit number as two bytes. */
export function u16(value: number): number[] {
  return [value >> 8, value & 0xff];
}

/** A v2 header: signature, version/command byte, family byte, then the block with its length. */
export function v2(
  verCmd: number,
  family: number,
  ...block: (Uint8Array | number | number[] | string)[]
) {
  const body = bytes(...block);
  return bytes(SIG, verCmd, family, u16(body.length), body);
}

/** A TLV: type, 16-bit length, value. */
export function tlv(type: number, value: Uint8Array | number[] | string): Uint8Array<ArrayBuffer> {
  const body = bytes(value);
  return bytes(type, u16(body.length), body);
}

/** A seeded pseudo-random generator (mulberry32): the same seed, the same numbers. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x100000000;
  };
}

/** `length` bytes from a seeded generator. */
export function randomBytes(random: () => number, length: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.from({ length }, () => Math.floor(random() * 256));
}

/** A connected pair of loopback TCP sockets: `[client, server]`. */
export async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
    listener.accept(),
  ]);
  return [client, server];
}

/** Writes all of `data`, looping over partial writes. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let written = 0; written < data.length;) {
    written += await conn.write(data.subarray(written));
  }
}

/** Reads until EOF. */
export async function readAll(conn: Deno.Conn): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    chunks.push(buf.slice(0, n));
  }
  return bytes(...chunks);
}
