/**
 * ClientHellos built by hand from RFC 8446 §4.1.2 (and RFC 5246 §7.4.1.2
 * for the extension-less TLS 1.0 form), record framing per RFC 8446 §5.1,
 * and real ones captured from `openssl s_client` and `curl`.
 *
 * @module
 */
import { bytes, LOOPBACK } from "../_helpers.ts";
import { readClientHello, type ReadClientHelloResult } from "../../src/tls/read.ts";

export { bytes };

/** A big-endian 16-bit number as two bytes. */
export function u16(value: number): number[] {
  return [(value >> 8) & 0xff, value & 0xff];
}

/** A big-endian 24-bit number as three bytes. */
export function u24(value: number): number[] {
  return [(value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff];
}

/** `opaque x<0..2^8-1>`: a one-byte length, then the bytes. */
export function vec8(...parts: (Uint8Array | number | readonly number[] | string)[]) {
  const body = bytes(...parts);
  return bytes(body.length, body);
}

/** `opaque x<0..2^16-1>`: a two-byte length, then the bytes. */
export function vec16(...parts: (Uint8Array | number | readonly number[] | string)[]) {
  const body = bytes(...parts);
  return bytes(u16(body.length), body);
}

/** An Extension: type, then its data with a two-byte length. */
export function ext(type: number, ...data: (Uint8Array | number | readonly number[] | string)[]) {
  return bytes(u16(type), vec16(...data));
}

/** server_name (RFC 6066 §3) with one host_name entry per name. */
export function sni(...names: string[]): Uint8Array<ArrayBuffer> {
  return ext(0, vec16(...names.map((name) => bytes(0, vec16(name)))));
}

/** application_layer_protocol_negotiation (RFC 7301 §3.1). */
export function alpn(...protocols: string[]): Uint8Array<ArrayBuffer> {
  return ext(16, vec16(...protocols.map((p) => vec8(p))));
}

/** supported_versions as a client sends it (RFC 8446 §4.2.1). */
export function supportedVersions(...versions: number[]): Uint8Array<ArrayBuffer> {
  return ext(43, vec8(...versions.flatMap(u16)));
}

/** Some extension lb does not read (ec_point_formats), to surround the ones it reads. */
export const OTHER_EXT = ext(11, vec8(0));
/** supported_groups with x25519 and secp256r1. */
export const GROUPS_EXT = ext(10, vec16(u16(0x001d), u16(0x0017)));
/** padding (RFC 7685) of `n` zero bytes. */
export function padding(n: number): Uint8Array<ArrayBuffer> {
  return ext(21, new Uint8Array(n));
}

/** The fields of a ClientHello body; each defaults to a plausible TLS 1.3 value. */
export interface HelloFields {
  legacyVersion?: number;
  random?: Uint8Array;
  sessionId?: Uint8Array;
  /** The raw cipher_suites vector body (2 bytes per suite). */
  cipherSuites?: Uint8Array | readonly number[];
  compressionMethods?: readonly number[];
  /** The extensions, in order; `null` for no extensions block at all. */
  extensions?: readonly Uint8Array[] | null;
}

/** A ClientHello body (the handshake message without its 4-byte header). */
export function helloBody(fields: HelloFields = {}): Uint8Array<ArrayBuffer> {
  const extensions = fields.extensions === undefined ? [sni("api.example.com")] : fields.extensions;
  return bytes(
    u16(fields.legacyVersion ?? 0x0303),
    fields.random ?? new Uint8Array(32).fill(0xab),
    vec8(fields.sessionId ?? new Uint8Array(32).fill(0xcd)),
    vec16(fields.cipherSuites ?? [...u16(0x1301), ...u16(0x1302), ...u16(0xc02f)]),
    vec8(...(fields.compressionMethods ?? [0])),
    extensions === null ? [] : vec16(...extensions),
  );
}

/** A handshake message: type, 24-bit length, body. */
export function handshake(type: number, body: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes(type, u24(body.length), body);
}

/** A ClientHello handshake message (type 1). */
export function helloMessage(fields: HelloFields = {}): Uint8Array<ArrayBuffer> {
  return handshake(1, helloBody(fields));
}

/** A ClientHello message of exactly `total` bytes: a padding extension fills it up. */
export function helloMessageOfLength(total: number): Uint8Array<ArrayBuffer> {
  const base = helloMessage({ extensions: [sni("api.example.com"), padding(0)] });
  return helloMessage({ extensions: [sni("api.example.com"), padding(total - base.length)] });
}

/** One TLSPlaintext record: content type, version, 16-bit length, fragment. */
export function record(
  fragment: Uint8Array,
  type = 22,
  version = 0x0301,
): Uint8Array<ArrayBuffer> {
  return bytes(type, u16(version), u16(fragment.length), fragment);
}

/**
 * `message` in handshake records: one record, or one per fragment size in
 * `sizes` (the last fragment takes what is left).
 */
export function records(
  message: Uint8Array,
  sizes: readonly number[] = [],
  version = 0x0301,
): Uint8Array<ArrayBuffer> {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const size of sizes) {
    out.push(record(message.subarray(at, at + size), 22, version));
    at += size;
  }
  out.push(record(message.subarray(at), 22, version));
  return bytes(...out);
}

/** A whole ClientHello in one record. */
export function hello(fields: HelloFields = {}, version = 0x0301): Uint8Array<ArrayBuffer> {
  return records(helloMessage(fields), [], version);
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

/** Whether a program is on PATH. */
export function onPath(program: string): boolean {
  const found = new Deno.Command("sh", { args: ["-c", `command -v ${program}`], stdout: "null" })
    .outputSync();
  return found.success;
}

/**
 * Runs a TLS client (`openssl` or `curl`) against a raw TCP listener that
 * reads the ClientHello with {@linkcode readClientHello} and closes: the
 * client then fails its handshake, which is expected. `args` gets `{port}`
 * replaced with the listener's port.
 *
 * @returns What the reader saw.
 */
export async function captureHello(
  program: string,
  args: readonly string[],
): Promise<ReadClientHelloResult> {
  using listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = String((listener.addr as Deno.NetAddr).port);
  const child = new Deno.Command(program, {
    args: args.map((arg) => arg.replaceAll("{port}", port)),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const conn = await Promise.race([listener.accept(), child.status.then(() => null)]);
    if (conn === null) throw new Error(`${program} exited without connecting`);
    try {
      return await readClientHello(conn, { timeoutMs: 10_000 });
    } finally {
      conn.close();
    }
  } finally {
    await child.status;
  }
}
