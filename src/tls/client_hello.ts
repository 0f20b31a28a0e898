/**
 * Incremental TLS ClientHello parser, over bytes (RFC 8446 §4.1.2 and §5.1,
 * RFC 5246 §6.2.1 and §7.4.1.2, RFC 6066 §3, RFC 7301 §3.1): call it with
 * every byte received so far, after each read, to learn the server name a
 * client asks for without decrypting anything.
 *
 * @module
 */
import { checkHostName, MAX_HOST_NAME_BYTES } from "./_host_name.ts";

/**
 * Most bytes of a ClientHello handshake message, its 4-byte header included.
 * Real ones take 200 to 2000 bytes; post-quantum key shares stay under 2 KiB.
 */
export const MAX_HELLO_BYTES = 16384;

/**
 * Most TLS records a ClientHello may be split across. Clients send one;
 * fragmenting is legal but a hello in tiny records only costs the parser
 * time, as each call walks every record so far.
 */
export const MAX_HELLO_RECORDS = 64;

/**
 * Most bytes the records holding a ClientHello can take: the hello and a
 * 5-byte header per record. {@linkcode parseClientHello} never answers
 * `incomplete` for a buffer this long, so a reader needs no larger one.
 */
export const MAX_HELLO_RECORD_BYTES = MAX_HELLO_BYTES + MAX_HELLO_RECORDS * 5;

/**
 * Why bytes are not an acceptable ClientHello, a short label fit for metrics:
 * - `not-tls`: the first record is not a TLS handshake record (content type
 *   22, version 3.x): plain text, an HTTP request, SSL 2.
 * - `not-client-hello`: a handshake message other than ClientHello.
 * - `malformed`: a length that does not add up, a record of another type in
 *   the middle of the hello, or a server name that is not a host name.
 * - `too-large`: longer than {@linkcode MAX_HELLO_BYTES}, or split across
 *   more than {@linkcode MAX_HELLO_RECORDS} records.
 */
export type HelloErrorReason = "not-tls" | "not-client-hello" | "malformed" | "too-large";

/** The bytes so far start a valid ClientHello: read more and call again. */
export interface HelloIncomplete {
  status: "incomplete";
}

/** A whole ClientHello and what lb needs from it. */
export interface HelloOk {
  status: "ok";
  /**
   * Bytes of the records holding the whole ClientHello: `buf.subarray(0,
   * length)`. What follows belongs to the rest of the stream.
   */
  length: number;
  /**
   * The host name of the server_name extension (RFC 6066) in lower case,
   * without a trailing dot; `null` when the client sent none, or sent an IP
   * literal, which RFC 6066 forbids and no name route can match.
   */
  serverName: string | null;
  /** The version of the first record (`0x0301` from most clients, whatever they speak). */
  recordVersion: number;
  /** ClientHello.legacy_version: `0x0303` for TLS 1.2 and 1.3, `0x0301` for 1.0. */
  legacyVersion: number;
  /** The supported_versions extension (RFC 8446 §4.2.1), GREASE included, when present. */
  supportedVersions?: number[];
  /** The protocols of the ALPN extension (RFC 7301), in the client's order, when present. */
  alpn?: string[];
}

/** Not an acceptable ClientHello: drop the connection. `message` is for logs. */
export interface HelloError {
  status: "error";
  reason: HelloErrorReason;
  message: string;
}

/** Outcome of {@linkcode parseClientHello}. */
export type HelloResult = HelloIncomplete | HelloOk | HelloError;

const _CONTENT_HANDSHAKE = 22;
const _HANDSHAKE_CLIENT_HELLO = 1;
const _RECORD_HEADER_BYTES = 5;
const _HANDSHAKE_HEADER_BYTES = 4;
/** Largest TLSPlaintext.fragment (RFC 8446 §5.1, RFC 5246 §6.2.1). */
const _MAX_RECORD_PAYLOAD = 16384;
const _EXT_SERVER_NAME = 0;
const _EXT_ALPN = 16;
const _EXT_SUPPORTED_VERSIONS = 43;
const _NAME_TYPE_HOST_NAME = 0;
const _INCOMPLETE: HelloIncomplete = Object.freeze({ status: "incomplete" });
const _utf8Lossy = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Parses the ClientHello at the start of `buf`, all the bytes received so
 * far. It never throws, and decides as early as the bytes allow: a first byte
 * other than 22 is `not-tls` at once and so is a second byte other than 3; a
 * handshake type other than ClientHello is refused at its byte, a length over
 * the bounds at its record or handshake header. A strict prefix of a valid
 * hello is always `incomplete`; the body of the hello is checked once it is
 * whole.
 *
 * Records: the hello may be split across up to {@linkcode MAX_HELLO_RECORDS}
 * consecutive handshake records, its 4-byte header too; their payloads are
 * joined. A record of another type before the hello ends, an empty record, a
 * record over 16384 bytes or one that runs past the end of the hello is
 * `malformed`. Only the first record's major version is checked (3); record
 * minor versions are not, as clients send 3.1 for every version.
 *
 * Body: legacy_version, random, a session id of at most 32 bytes, cipher
 * suites (an even number of bytes, at least 2), compression methods (at least
 * 1), then either nothing (TLS 1.0 style) or an extensions block that fills
 * the rest exactly. Each extension must fit and appear once. Three are read:
 * - server_name: a list filling the extension, not empty, of entries each
 *   with a 16-bit length (RFC 6066 says future name types keep that shape);
 *   the host_name one is taken, a second is `malformed`. The name must be a
 *   DNS host name (ASCII letters, digits, hyphens, dots; labels of 1-63
 *   bytes; at most 255 bytes): one trailing dot is dropped and it is
 *   lower-cased. An IP literal gives `serverName: null`, as if absent: the
 *   client is no worse than one without SNI, and the backend still sees it.
 *   Any other bad name is `malformed`.
 * - application_layer_protocol_negotiation: a non-empty list of non-empty names.
 * - supported_versions: an even number of bytes, at least 2.
 *
 * @param buf Every byte read from the connection so far.
 * @returns `incomplete`, `ok` with what was learnt and the bytes it spans, or
 * `error` with a reason for metrics and a message for logs.
 * @example
 * ```ts
 * const result = parseClientHello(received);
 * if (result.status === "ok") route(result.serverName);
 * else if (result.status === "error") refuse(result.reason);
 * // "incomplete": read more, then parse all of it again
 * ```
 */
export function parseClientHello(buf: Uint8Array): HelloResult {
  if (buf.length === 0) return _INCOMPLETE;
  if (buf[0] !== _CONTENT_HANDSHAKE) {
    return _error("not-tls", `the first byte is ${buf[0]}, not a handshake record (22)`);
  }
  if (buf.length < 2) return _INCOMPLETE;
  if (buf[1] !== 3) {
    return _error("not-tls", `the record version is ${buf[1]}.x, not 3.x`);
  }
  const fragments: Uint8Array[] = [];
  const head = new Uint8Array(_HANDSHAKE_HEADER_BYTES);
  let headFilled = 0;
  let helloBytes = -1;
  let payload = 0;
  let offset = 0;
  for (let record = 1;; record++) {
    if (record > MAX_HELLO_RECORDS) {
      return _error("too-large", `it is split across more than ${MAX_HELLO_RECORDS} records`);
    }
    if (record > 1) {
      if (buf.length <= offset) return _INCOMPLETE;
      if (buf[offset] !== _CONTENT_HANDSHAKE) {
        return _malformed(`record ${record} has content type ${buf[offset]} before the hello ends`);
      }
      if (buf.length <= offset + 1) return _INCOMPLETE;
      if (buf[offset + 1] !== 3) {
        return _malformed(`record ${record} has version ${buf[offset + 1]}.x, not 3.x`);
      }
    }
    if (buf.length < offset + _RECORD_HEADER_BYTES) return _INCOMPLETE;
    const length = (buf[offset + 3]! << 8) | buf[offset + 4]!;
    if (length === 0) return _malformed(`record ${record} is empty`);
    if (length > _MAX_RECORD_PAYLOAD) {
      return _malformed(`record ${record} holds ${length} bytes, over ${_MAX_RECORD_PAYLOAD}`);
    }
    const start = offset + _RECORD_HEADER_BYTES;
    const available = Math.min(length, buf.length - start);
    // The 4-byte handshake header may itself be split across records.
    for (let i = 0; headFilled < _HANDSHAKE_HEADER_BYTES && i < available; i++) {
      head[headFilled++] = buf[start + i]!;
    }
    if (headFilled > 0 && head[0] !== _HANDSHAKE_CLIENT_HELLO) {
      return _error("not-client-hello", `the handshake type is ${head[0]}, not ClientHello (1)`);
    }
    if (headFilled === _HANDSHAKE_HEADER_BYTES && helloBytes < 0) {
      helloBytes = _HANDSHAKE_HEADER_BYTES + ((head[1]! << 16) | (head[2]! << 8) | head[3]!);
      if (helloBytes > MAX_HELLO_BYTES) {
        return _error("too-large", `it takes ${helloBytes} bytes, over ${MAX_HELLO_BYTES}`);
      }
    }
    if (helloBytes >= 0 && payload + length > helloBytes) {
      return _malformed(
        `record ${record} runs ${payload + length - helloBytes} bytes past the end of the hello`,
      );
    }
    if (available < length) return _INCOMPLETE;
    fragments.push(buf.subarray(start, start + length));
    payload += length;
    offset = start + length;
    if (payload === helloBytes) break;
  }
  const message = fragments.length === 1 ? fragments[0]! : _concat(fragments, payload);
  try {
    return _parseBody(message.subarray(_HANDSHAKE_HEADER_BYTES), (buf[1]! << 8) | buf[2]!, offset);
  } catch (error) {
    if (error instanceof _Malformed) return _malformed(error.message);
    throw error;
  }
}

function _error(reason: HelloErrorReason, message: string): HelloError {
  return { status: "error", reason, message: `Cannot parse ClientHello as ${message}` };
}

function _malformed(message: string): HelloError {
  return _error("malformed", message);
}

function _concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A length that does not add up, thrown inside the body parser only. */
class _Malformed extends Error {}

/** A cursor over a length-checked slice; running off its end is `_Malformed`. */
class _Cursor {
  #buf: Uint8Array;
  #at = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
  }

  get remaining(): number {
    return this.#buf.length - this.#at;
  }

  u8(what: string): number {
    return this.bytes(1, what)[0]!;
  }

  u16(what: string): number {
    const b = this.bytes(2, what);
    return (b[0]! << 8) | b[1]!;
  }

  bytes(n: number, what: string): Uint8Array {
    if (n > this.remaining) {
      throw new _Malformed(`only ${this.remaining} of the ${n} bytes of its ${what} are there`);
    }
    const out = this.#buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  /** A vector with a `lengthBytes`-byte length prefix, checked to fit. */
  vector(lengthBytes: 1 | 2, what: string): Uint8Array {
    const n = lengthBytes === 1 ? this.u8(`${what} length`) : this.u16(`${what} length`);
    return this.bytes(n, what);
  }
}

function _parseBody(body: Uint8Array, recordVersion: number, length: number): HelloOk {
  const c = new _Cursor(body);
  const legacyVersion = c.u16("legacy_version");
  c.bytes(32, "random");
  const sessionId = c.vector(1, "session id");
  if (sessionId.length > 32) {
    throw new _Malformed(`its session id takes ${sessionId.length} bytes, over 32`);
  }
  const suites = c.vector(2, "cipher suites");
  if (suites.length < 2 || suites.length % 2 !== 0) {
    throw new _Malformed(`its cipher suites take ${suites.length} bytes, not an even 2 or more`);
  }
  if (c.vector(1, "compression methods").length === 0) {
    throw new _Malformed("it has no compression method");
  }
  const hello: HelloOk = { status: "ok", length, serverName: null, recordVersion, legacyVersion };
  if (c.remaining === 0) return hello;
  const block = c.vector(2, "extensions");
  if (c.remaining !== 0) {
    throw new _Malformed(`${c.remaining} bytes follow its extensions block`);
  }
  const extensions = new _Cursor(block);
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16("extension type");
    const data = extensions.vector(2, `extension ${type}`);
    if (seen.has(type)) throw new _Malformed(`extension ${type} appears twice`);
    seen.add(type);
    if (type === _EXT_SERVER_NAME) hello.serverName = _serverName(data);
    else if (type === _EXT_ALPN) hello.alpn = _alpn(data);
    else if (type === _EXT_SUPPORTED_VERSIONS) hello.supportedVersions = _supportedVersions(data);
  }
  return hello;
}

function _whole(data: Uint8Array, lengthBytes: 1 | 2, what: string): _Cursor {
  const c = new _Cursor(data);
  const list = c.vector(lengthBytes, what);
  if (c.remaining !== 0) {
    throw new _Malformed(`its ${what} leaves ${c.remaining} bytes of its extension unused`);
  }
  if (list.length === 0) throw new _Malformed(`its ${what} is empty`);
  return new _Cursor(list);
}

function _serverName(data: Uint8Array): string | null {
  const list = _whole(data, 2, "server name list");
  let hostName: Uint8Array | undefined;
  while (list.remaining > 0) {
    const nameType = list.u8("server name type");
    const name = list.vector(2, "server name");
    if (nameType !== _NAME_TYPE_HOST_NAME) continue;
    if (hostName) throw new _Malformed("its server name list holds two host names");
    hostName = name;
  }
  if (!hostName) return null;
  if (hostName.length > MAX_HOST_NAME_BYTES) {
    throw new _Malformed(
      `its server name takes ${hostName.length} bytes, over ${MAX_HOST_NAME_BYTES}`,
    );
  }
  // Latin-1, one char per byte: checkHostName refuses every byte over 0x7f.
  const raw = String.fromCharCode(...hostName);
  const check = checkHostName(raw);
  if (check.kind === "name") return check.name;
  if (check.kind === "ip") return null;
  throw new _Malformed(`its server name ${_printable(raw)} ${check.problem}`);
}

/** `raw` quoted for a log line: control and non-ASCII characters escaped. */
function _printable(raw: string): string {
  return JSON.stringify(raw).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function _alpn(data: Uint8Array): string[] {
  const list = _whole(data, 2, "ALPN protocol list");
  const protocols: string[] = [];
  while (list.remaining > 0) {
    const name = list.vector(1, "ALPN protocol");
    if (name.length === 0) throw new _Malformed("its ALPN protocol list holds an empty name");
    protocols.push(_utf8Lossy.decode(name));
  }
  return protocols;
}

function _supportedVersions(data: Uint8Array): number[] {
  const list = _whole(data, 1, "supported versions");
  if (list.remaining % 2 !== 0) {
    throw new _Malformed(`its supported versions take ${list.remaining} bytes, an odd number`);
  }
  const versions: number[] = [];
  while (list.remaining > 0) versions.push(list.u16("supported version"));
  return versions;
}
