/**
 * What a PROXY protocol header (HAProxy's `doc/proxy-protocol.txt`, versions
 * 1 and 2) tells the receiver about the connection it prefixes.
 *
 * @module
 */

/** An IP endpoint carried in a PROXY header. */
export interface ProxyAddress {
  /**
   * IPv4 as a dotted quad, IPv6 in RFC 5952 form (lower case, longest zero run
   * compressed, IPv4-mapped as `::ffff:a.b.c.d`): the form of
   * `Deno.NetAddr.hostname`.
   */
  hostname: string;
  /** 0-65535. */
  port: number;
}

/**
 * `PROXY`: the connection is relayed and the header describes the real client.
 * `LOCAL`: the connection is the sender's own (a health check); use the
 * socket's own endpoints.
 */
export type ProxyCommand = "PROXY" | "LOCAL";

/**
 * Address family: v2's AF_INET, AF_INET6, AF_UNIX and AF_UNSPEC. A v1 `TCP4`
 * line is `INET` over `stream`, `TCP6` is `INET6` over `stream`, and
 * `UNKNOWN` is `UNSPEC` over `unspec`.
 */
export type ProxyFamily = "INET" | "INET6" | "UNIX" | "UNSPEC";

/** Transport protocol: v2's STREAM (TCP, UNIX stream), DGRAM (UDP, UNIX datagram) or UNSPEC. */
export type ProxyTransport = "stream" | "dgram" | "unspec";

/** A decoded PROXY protocol header. */
export interface ProxyHeader {
  /** 1 for the text line, 2 for the binary header. */
  version: 1 | 2;
  /** v1 headers are always `PROXY` (an `UNKNOWN` line has no addresses instead). */
  command: ProxyCommand;
  /** `UNSPEC` for `LOCAL`, whose family byte the spec says to ignore. */
  family: ProxyFamily;
  /** `unspec` for `LOCAL`. */
  transport: ProxyTransport;
  /**
   * The real client, or `null` when the header carries no IP address (`LOCAL`,
   * v1 `UNKNOWN`, an UNSPEC family or transport, `UNIX`): the receiver then
   * uses the socket's own peer address.
   */
  source: ProxyAddress | null;
  /** The address the client connected to, or `null` exactly when `source` is. */
  destination: ProxyAddress | null;
  /** AF_UNIX source path, up to its first NUL byte (UTF-8, lossy). */
  sourcePath?: string;
  /** AF_UNIX destination path, up to its first NUL byte (UTF-8, lossy). */
  destinationPath?: string;
  /** PP2_TYPE_AUTHORITY (0x02): the host name the client asked for (e.g. TLS SNI). */
  authority?: string;
  /** PP2_TYPE_UNIQUE_ID (0x05): the sender's opaque connection ID (0-128 bytes) as lower-case hex. */
  uniqueId?: string;
}

/**
 * Why bytes are not a PROXY header, short enough for a metrics label:
 * - `not-proxy`: neither signature (no PROXY protocol at all);
 * - `malformed`: a field breaks the spec's syntax or lengths;
 * - `too-long`: a v1 line without CRLF in its first 107 bytes;
 * - `version`: a v2 version nibble other than 2;
 * - `command`: a v2 command other than LOCAL (0) or PROXY (1);
 * - `family`: a v2 address family above 3 or transport above 2;
 * - `checksum`: a v2 PP2_TYPE_CRC32C TLV that does not match the header;
 * - `repeated`: a second header follows the first ("several headers are not accepted").
 */
export type ProxyParseErrorReason =
  | "not-proxy"
  | "malformed"
  | "too-long"
  | "version"
  | "command"
  | "family"
  | "checksum"
  | "repeated";

/**
 * {@linkcode ProxyParseErrorReason} plus what can go wrong on a socket:
 * `timeout` (no complete header in time) and `closed` (EOF or a read error
 * before the header was complete).
 */
export type ProxyHeaderErrorReason = ProxyParseErrorReason | "timeout" | "closed";
