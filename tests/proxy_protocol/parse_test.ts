import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { crc32c } from "../../src/proxy_protocol/crc32c.ts";
import type { ProxyHeader, ProxyParseErrorReason } from "../../src/proxy_protocol/header.ts";
import {
  MAX_HEADER_BYTES,
  parseProxyHeader,
  type ParseResult,
} from "../../src/proxy_protocol/parse.ts";
import { bytes, prng, randomBytes, SIG, text, tlv, u16, v2 } from "./_helpers.ts";

const REASONS: readonly ProxyParseErrorReason[] = [
  "not-proxy",
  "malformed",
  "too-long",
  "version",
  "command",
  "family",
  "checksum",
  "repeated",
];

/** A v2 header with a correct CRC32C TLV at the end of its block. */
function withChecksum(verCmd: number, family: number, ...block: Uint8Array[]): Uint8Array {
  const header = v2(verCmd, family, ...block, tlv(0x03, [0, 0, 0, 0]));
  new DataView(header.buffer).setUint32(header.length - 4, crc32c(header));
  return header;
}

const TCP4_BLOCK = [192, 168, 0, 1, 192, 168, 0, 11, ...u16(56324), ...u16(443)];
const TCP6_SRC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
const TCP6_DST = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1];
const TCP6_BLOCK = [...TCP6_SRC, ...TCP6_DST, ...u16(5123), ...u16(8080)];
const SPEC_SOURCE = { hostname: "192.168.0.1", port: 56324 };
const SPEC_DESTINATION = { hostname: "192.168.0.11", port: 443 };

function unixPath(path: string): Uint8Array {
  const out = new Uint8Array(108);
  out.set(text(path));
  return out;
}

function header(fields: Partial<ProxyHeader> & Pick<ProxyHeader, "version">): ProxyHeader {
  return {
    command: "PROXY",
    family: "UNSPEC",
    transport: "unspec",
    source: null,
    destination: null,
    ...fields,
  };
}

const FFFF6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

/** Valid headers: the spec's examples and its v2 byte layouts, built by hand. */
const VALID: { name: string; bytes: Uint8Array; header: ProxyHeader }[] = [
  {
    name: "v1 TCP4 (the spec's example)",
    bytes: text("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
    header: header({
      version: 1,
      family: "INET",
      transport: "stream",
      source: SPEC_SOURCE,
      destination: SPEC_DESTINATION,
    }),
  },
  {
    name: "v1 TCP4 longest line (56 bytes)",
    bytes: text("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
    header: header({
      version: 1,
      family: "INET",
      transport: "stream",
      source: { hostname: "255.255.255.255", port: 65535 },
      destination: { hostname: "255.255.255.255", port: 65535 },
    }),
  },
  {
    name: "v1 TCP4 zero addresses and ports",
    bytes: text("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"),
    header: header({
      version: 1,
      family: "INET",
      transport: "stream",
      source: { hostname: "0.0.0.0", port: 0 },
      destination: { hostname: "0.0.0.0", port: 0 },
    }),
  },
  {
    name: "v1 TCP6 longest line (104 bytes)",
    bytes: text(`PROXY TCP6 ${FFFF6} ${FFFF6} 65535 65535\r\n`),
    header: header({
      version: 1,
      family: "INET6",
      transport: "stream",
      source: { hostname: FFFF6, port: 65535 },
      destination: { hostname: FFFF6, port: 65535 },
    }),
  },
  {
    name: "v1 TCP6 with upper case, zeros and an embedded IPv4 address (made canonical)",
    bytes: text("PROXY TCP6 2001:DB8:0:0:0:0:0:5 ::FFFF:10.0.0.1 5123 8080\r\n"),
    header: header({
      version: 1,
      family: "INET6",
      transport: "stream",
      source: { hostname: "2001:db8::5", port: 5123 },
      destination: { hostname: "::ffff:10.0.0.1", port: 8080 },
    }),
  },
  {
    name: "v1 UNKNOWN short form (15 bytes)",
    bytes: text("PROXY UNKNOWN\r\n"),
    header: header({ version: 1 }),
  },
  {
    name: "v1 UNKNOWN worst case (107 bytes)",
    bytes: text(`PROXY UNKNOWN ${FFFF6} ${FFFF6} 65535 65535\r\n`),
    header: header({ version: 1 }),
  },
  {
    name: "v1 UNKNOWN with anything before the CRLF",
    bytes: bytes("PROXY UNKNOWN ", [0x00, 0x7f, 0xff, 0x09], " x  y\r\n"),
    header: header({ version: 1 }),
  },
  {
    name: "v2 PROXY TCP over IPv4 (\\x11)",
    bytes: v2(0x21, 0x11, TCP4_BLOCK),
    header: header({
      version: 2,
      family: "INET",
      transport: "stream",
      source: SPEC_SOURCE,
      destination: SPEC_DESTINATION,
    }),
  },
  {
    name: "v2 PROXY UDP over IPv4 (\\x12)",
    bytes: v2(0x21, 0x12, TCP4_BLOCK),
    header: header({
      version: 2,
      family: "INET",
      transport: "dgram",
      source: SPEC_SOURCE,
      destination: SPEC_DESTINATION,
    }),
  },
  {
    name: "v2 PROXY TCP over IPv6 (\\x21)",
    bytes: v2(0x21, 0x21, TCP6_BLOCK),
    header: header({
      version: 2,
      family: "INET6",
      transport: "stream",
      source: { hostname: "2001:db8::5", port: 5123 },
      destination: { hostname: "::ffff:10.0.0.1", port: 8080 },
    }),
  },
  {
    name: "v2 PROXY UDP over IPv6 (\\x22)",
    bytes: v2(0x21, 0x22, TCP6_BLOCK),
    header: header({
      version: 2,
      family: "INET6",
      transport: "dgram",
      source: { hostname: "2001:db8::5", port: 5123 },
      destination: { hostname: "::ffff:10.0.0.1", port: 8080 },
    }),
  },
  {
    name: "v2 PROXY UNIX stream (\\x31)",
    bytes: v2(0x21, 0x31, unixPath("/run/client.sock"), unixPath("/run/lb.sock")),
    header: header({
      version: 2,
      family: "UNIX",
      transport: "stream",
      sourcePath: "/run/client.sock",
      destinationPath: "/run/lb.sock",
    }),
  },
  {
    name: "v2 PROXY UNIX datagram (\\x32)",
    bytes: v2(0x21, 0x32, unixPath("/a"), unixPath("")),
    header: header({
      version: 2,
      family: "UNIX",
      transport: "dgram",
      sourcePath: "/a",
      destinationPath: "",
    }),
  },
  {
    name: "v2 PROXY UNSPEC (\\x00) with an empty block",
    bytes: v2(0x21, 0x00),
    header: header({ version: 2 }),
  },
  {
    name: "v2 PROXY UNSPEC with a block, skipped",
    bytes: v2(0x21, 0x00, TCP4_BLOCK, tlv(0x02, "ignored.example")),
    header: header({ version: 2 }),
  },
  {
    name: "v2 PROXY AF_INET over an UNSPEC transport (\\x10): no addresses",
    bytes: v2(0x21, 0x10, TCP4_BLOCK),
    header: header({ version: 2, family: "INET" }),
  },
  {
    name: "v2 PROXY AF_UNSPEC over STREAM (\\x01): no addresses",
    bytes: v2(0x21, 0x01, [1, 2, 3]),
    header: header({ version: 2, transport: "stream" }),
  },
  {
    name: "v2 LOCAL (\\x20) with family UNSPEC and no block",
    bytes: v2(0x20, 0x00),
    header: header({ version: 2, command: "LOCAL" }),
  },
  {
    name: "v2 LOCAL with an address block, skipped",
    bytes: v2(0x20, 0x11, TCP4_BLOCK, tlv(0x02, "ignored.example")),
    header: header({ version: 2, command: "LOCAL" }),
  },
  {
    name: "v2 LOCAL with an unknown family byte, which LOCAL ignores",
    bytes: v2(0x20, 0xff, [1, 2, 3, 4]),
    header: header({ version: 2, command: "LOCAL" }),
  },
  {
    name: "v2 PROXY TCP4 with every registered TLV type",
    bytes: v2(
      0x21,
      0x11,
      TCP4_BLOCK,
      tlv(0x01, "h2"), // ALPN
      tlv(0x02, "exämple.com"), // AUTHORITY
      tlv(0x04, []), // NOOP, empty
      tlv(0x04, [0, 0, 0, 0, 0]), // NOOP, padding
      tlv(0x05, [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]), // UNIQUE_ID
      tlv(0x20, [0x07, 0, 0, 0, 0, ...tlv(0x21, "TLSv1.3"), ...tlv(0x22, "client.example")]), // SSL
      tlv(0x30, "netns-a"), // NETNS
      tlv(0xe0, [1, 2, 3]), // custom
    ),
    header: header({
      version: 2,
      family: "INET",
      transport: "stream",
      source: SPEC_SOURCE,
      destination: SPEC_DESTINATION,
      authority: "exämple.com",
      uniqueId: "deadbeef0001",
    }),
  },
  {
    name: "v2 PROXY TCP6 with a 128-byte UNIQUE_ID and an empty AUTHORITY",
    bytes: v2(0x21, 0x21, TCP6_BLOCK, tlv(0x05, new Array(128).fill(0xab)), tlv(0x02, "")),
    header: header({
      version: 2,
      family: "INET6",
      transport: "stream",
      source: { hostname: "2001:db8::5", port: 5123 },
      destination: { hostname: "::ffff:10.0.0.1", port: 8080 },
      authority: "",
      uniqueId: "ab".repeat(128),
    }),
  },
  {
    name: "v2 PROXY TCP4 with a correct CRC32C",
    bytes: withChecksum(0x21, 0x11, bytes(TCP4_BLOCK), tlv(0x02, "a.example")),
    header: header({
      version: 2,
      family: "INET",
      transport: "stream",
      source: SPEC_SOURCE,
      destination: SPEC_DESTINATION,
      authority: "a.example",
    }),
  },
];

function okResult(value: ProxyHeader, length: number): ParseResult {
  return { status: "ok", header: value, length };
}

function reasonOf(result: ParseResult): string {
  return result.status === "error" ? result.reason : result.status;
}

/** The shortest prefix of `buf` that parses as something other than `incomplete`, or -1. */
function decidedAt(buf: Uint8Array): number {
  for (let n = 0; n <= buf.length; n++) {
    if (parseProxyHeader(buf.subarray(0, n)).status !== "incomplete") return n;
  }
  return -1;
}

/** The shortest prefix of `buf` that parses as a `repeated` error, or -1. */
function repeatedAt(buf: Uint8Array): number {
  for (let n = 0; n <= buf.length; n++) {
    if (reasonOf(parseProxyHeader(buf.subarray(0, n))) === "repeated") return n;
  }
  return -1;
}

Deno.test("parseProxyHeader decodes the spec's examples and v2 layouts", async (t) => {
  for (const { name, bytes: buf, header: expected } of VALID) {
    await t.step(name, () => {
      assertEquals(parseProxyHeader(buf), okResult(expected, buf.length));
    });
  }
});

Deno.test("parseProxyHeader reports incomplete at every strict prefix of a valid header", () => {
  for (const { name, bytes: buf } of VALID) {
    for (let n = 0; n < buf.length; n++) {
      const result = parseProxyHeader(buf.subarray(0, n));
      assertEquals(result, { status: "incomplete" }, `${name}, first ${n} bytes`);
    }
  }
});

Deno.test("parseProxyHeader leaves the data after a header intact", () => {
  const data = bytes("GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n", [0, 0x0d, 0x0a, 0xff]);
  for (const { name, bytes: buf, header: expected } of VALID) {
    const joined = bytes(buf, data);
    const result = parseProxyHeader(joined);
    assertEquals(result, okResult(expected, buf.length), name);
    assertEquals(joined.subarray(buf.length), data, name);
  }
});

Deno.test("parseProxyHeader refuses bytes that start neither signature at the first wrong byte", () => {
  const cases: [string | Uint8Array, number][] = [
    ["GET / HTTP/1.1\r\n", 1],
    [bytes(0x16, 0x03, 0x01), 1], // TLS ClientHello
    ["SSH-2.0-OpenSSH\r\n", 1],
    ["PROXZ TCP4", 5],
    ["proxy TCP4", 1],
    [" PROXY TCP4", 1],
    [bytes(SIG.slice(0, 7), "X"), 8],
    [bytes(SIG.slice(0, 11), 0x0d), 12],
    ["\r\n\r\n\r\n", 5], // CRLFs that are not the v2 signature
  ];
  for (const [input, at] of cases) {
    const buf = typeof input === "string" ? text(input) : input;
    assertEquals(decidedAt(buf), at, JSON.stringify(input));
    assertEquals(reasonOf(parseProxyHeader(buf)), "not-proxy", JSON.stringify(input));
  }
  assertEquals(parseProxyHeader(new Uint8Array()), { status: "incomplete" });
});

Deno.test("parseProxyHeader refuses malformed v1 lines, as soon as a field shows it", () => {
  const A = "1.2.3.4 5.6.7.8";
  const cases: [string | Uint8Array, number][] = [
    // [line, bytes needed to decide]
    ["PROXY\r\n", 6],
    ["PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", 6],
    ["PROXY \r\n", 7],
    ["PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 7],
    ["PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 10],
    ["PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 7],
    ["PROXY UNKNOWNX\r\n", 14],
    ["PROXY TCP4\r\n", 11],
    ["PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", 11],
    [`PROXY TCP4 ${A} 1 2\n`, 31],
    [`PROXY TCP4 ${A} 1 2\rX`, 32],
    [`PROXY TCP4 ${A} 1 2 \r\n`, 31],
    [`PROXY TCP4 ${A} 1 2 3\r\n`, 31],
    [`PROXY TCP4 ${A} 1\r\n`, 29],
    [`PROXY TCP4 ${A}\r\n`, 27],
    ["PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 20],
    ["PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", 13],
    ["PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", 20],
    ["PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 17],
    ["PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", 19],
    ["PROXY TCP4 ::1 5.6.7.8 1 2\r\n", 12],
    ["PROXY TCP4 1.2.3.4 ::ffff:5.6.7.8 1 2\r\n", 20],
    ["PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 19],
    ["PROXY TCP6 ::1 5.6.7.8 1 2\r\n", 23],
    ["PROXY TCP6 ::1 ::g 1 2\r\n", 18],
    ["PROXY TCP6 1::2::3 ::1 1 2\r\n", 19],
    ["PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 19],
    [`PROXY TCP4 ${A} 01 2\r\n`, 29],
    [`PROXY TCP4 ${A} 1 00\r\n`, 31],
    [`PROXY TCP4 ${A} 65536 2\r\n`, 32],
    [`PROXY TCP4 ${A} 123456 2\r\n`, 33],
    [`PROXY TCP4 ${A} -1 2\r\n`, 28],
    [`PROXY TCP4 ${A} +1 2\r\n`, 28],
    [`PROXY TCP4 ${A} 1 0x50\r\n`, 31],
    [bytes(`PROXY TCP4 ${A} 1 2`, 0xa0, "\r\n"), 31],
    [bytes("PROXY TCP4 1.2.3.4", 0, " 5.6.7.8 1 2\r\n"), 19],
    ["PROXY UNKNOWN\n", 14],
    ["PROXY UNKNOWN \rX\r\n", 16],
  ];
  for (const [input, at] of cases) {
    const buf = typeof input === "string" ? text(input) : input;
    assertEquals(reasonOf(parseProxyHeader(buf)), "malformed", JSON.stringify(input));
    assertEquals(decidedAt(buf), at, `decided late or early: ${JSON.stringify(input)}`);
  }
});

Deno.test("parseProxyHeader refuses a v1 line without CRLF in 107 bytes, at byte 107", () => {
  const unknown = `PROXY UNKNOWN ${"a".repeat(200)}`;
  assertEquals(decidedAt(text(unknown)), 107);
  assertEquals(reasonOf(parseProxyHeader(text(unknown))), "too-long");
  assertEquals(reasonOf(parseProxyHeader(text(unknown.slice(0, 106)))), "incomplete");
  // CRLF ending at byte 108: one too many.
  const line108 = `PROXY UNKNOWN ${"a".repeat(92)}\r\n`;
  assertEquals(line108.length, 108);
  assertEquals(reasonOf(parseProxyHeader(text(line108))), "too-long");
  assertEquals(decidedAt(text(line108)), 107);
  // CRLF ending at byte 107: accepted.
  const line107 = `PROXY UNKNOWN ${"a".repeat(91)}\r\n`;
  assertEquals(parseProxyHeader(text(line107 + "data")), okResult(header({ version: 1 }), 107));
  // A TCP6 line padded past the limit with valid-looking IPv6 text.
  const tcp6 =
    `PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ${"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"} 65535 65535\r\n`;
  assertEquals(reasonOf(parseProxyHeader(text(tcp6))), "too-long");
});

Deno.test("parseProxyHeader refuses a v2 version other than 2 at byte 13", () => {
  for (const verCmd of [0x01, 0x11, 0x31, 0xf1, 0x00]) {
    const buf = v2(verCmd, 0x11, TCP4_BLOCK);
    assertEquals(reasonOf(parseProxyHeader(buf)), "version", verCmd.toString(16));
    assertEquals(decidedAt(buf), 13);
  }
});

Deno.test("parseProxyHeader refuses a v2 command other than LOCAL and PROXY at byte 13", () => {
  for (let command = 2; command <= 0xf; command++) {
    const buf = v2(0x20 | command, 0x11, TCP4_BLOCK);
    assertEquals(reasonOf(parseProxyHeader(buf)), "command", command.toString(16));
    assertEquals(decidedAt(buf), 13);
  }
});

Deno.test("parseProxyHeader refuses an unknown v2 family or transport at byte 14", () => {
  for (const family of [0x03, 0x0f, 0x13, 0x23, 0x33, 0x40, 0x41, 0x51, 0xf1, 0xff]) {
    const buf = v2(0x21, family, TCP4_BLOCK);
    assertEquals(reasonOf(parseProxyHeader(buf)), "family", family.toString(16));
    assertEquals(decidedAt(buf), 14);
  }
});

Deno.test("parseProxyHeader refuses a v2 block shorter than its addresses at byte 16", () => {
  const cases: [number, number][] = [[0x11, 12], [0x12, 12], [0x21, 36], [0x22, 36], [
    0x31,
    216,
  ], [0x32, 216]];
  for (const [family, needed] of cases) {
    const short = v2(0x21, family, new Uint8Array(needed - 1));
    assertEquals(reasonOf(parseProxyHeader(short)), "malformed", family.toString(16));
    assertEquals(decidedAt(short), 16);
    const empty = v2(0x21, family);
    assertEquals(reasonOf(parseProxyHeader(empty)), "malformed", family.toString(16));
    const exact = v2(0x21, family, new Uint8Array(needed));
    assertEquals(parseProxyHeader(exact).status, "ok", family.toString(16));
  }
});

Deno.test("parseProxyHeader waits for the whole v2 block its length announces", () => {
  const buf = v2(0x21, 0x11, TCP4_BLOCK, tlv(0xe0, new Uint8Array(1000)));
  assertEquals(parseProxyHeader(buf.subarray(0, 50)), { status: "incomplete" });
  assertEquals(parseProxyHeader(buf.subarray(0, buf.length - 1)), { status: "incomplete" });
  assertEquals(parseProxyHeader(buf).status, "ok");
  const largest = v2(0x21, 0x11, TCP4_BLOCK, tlv(0xe0, new Uint8Array(0xffff - 12 - 3)));
  assertEquals(largest.length, MAX_HEADER_BYTES);
  assertEquals(parseProxyHeader(largest.subarray(0, MAX_HEADER_BYTES - 1)), {
    status: "incomplete",
  });
  assertEquals(parseProxyHeader(largest), okResult(VALID[8]!.header, MAX_HEADER_BYTES));
});

Deno.test("parseProxyHeader refuses v2 TLVs that overrun the block or break their own rules", () => {
  const cases: [string, Uint8Array, ProxyParseErrorReason][] = [
    ["value past the block", v2(0x21, 0x11, TCP4_BLOCK, [0x02, 0, 5], "abcd"), "malformed"],
    [
      "value one past the block",
      v2(0x21, 0x11, TCP4_BLOCK, tlv(0x04, "ab"), [0x04, 0, 1]),
      "malformed",
    ],
    ["1 byte of TLV header", v2(0x21, 0x11, TCP4_BLOCK, [0x04]), "malformed"],
    ["2 bytes of TLV header", v2(0x21, 0x11, TCP4_BLOCK, [0x04, 0]), "malformed"],
    ["SSL value past the block", v2(0x21, 0x21, TCP6_BLOCK, [0x20, 0xff, 0xff]), "malformed"],
    ["AUTHORITY not UTF-8", v2(0x21, 0x11, TCP4_BLOCK, tlv(0x02, [0x61, 0xff])), "malformed"],
    [
      "AUTHORITY twice",
      v2(0x21, 0x11, TCP4_BLOCK, tlv(0x02, "a"), tlv(0x02, "b")),
      "malformed",
    ],
    [
      "UNIQUE_ID of 129 bytes",
      v2(0x21, 0x11, TCP4_BLOCK, tlv(0x05, new Uint8Array(129))),
      "malformed",
    ],
    [
      "UNIQUE_ID twice",
      v2(0x21, 0x11, TCP4_BLOCK, tlv(0x05, [1]), tlv(0x05, [1])),
      "malformed",
    ],
    ["CRC32C of 3 bytes", v2(0x21, 0x11, TCP4_BLOCK, tlv(0x03, [0, 0, 0])), "malformed"],
    ["CRC32C wrong", v2(0x21, 0x11, TCP4_BLOCK, tlv(0x03, [1, 2, 3, 4])), "checksum"],
  ];
  for (const [name, buf, reason] of cases) {
    assertEquals(reasonOf(parseProxyHeader(buf)), reason, name);
    assertEquals(decidedAt(buf), buf.length, name);
  }
  const good = withChecksum(0x21, 0x11, bytes(TCP4_BLOCK), tlv(0x02, "a.example"));
  for (let i = 0; i < good.length; i++) {
    // Skip the fields whose corruption has an error of its own: version and
    // command, family, length, and the two TLVs' type and length.
    if ([12, 13, 14, 15, 28, 29, 30, 40, 41, 42].includes(i)) continue;
    const corrupt = good.slice();
    corrupt[i] = corrupt[i]! ^ 0x01;
    const reason = i < 12 ? "not-proxy" : "checksum";
    assertEquals(reasonOf(parseProxyHeader(corrupt)), reason, `byte ${i}`);
  }
});

Deno.test("parseProxyHeader refuses a second header right after the first", () => {
  const v1 = text("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  const v1Unknown = text("PROXY UNKNOWN\r\n");
  const v2Tcp4 = v2(0x21, 0x11, TCP4_BLOCK);
  const v2Local = v2(0x20, 0x00);
  for (const first of [v1, v1Unknown, v2Tcp4, v2Local]) {
    for (const second of [v1, v1Unknown, v2Tcp4, v2Local, text("PROXY"), bytes(SIG)]) {
      assertEquals(reasonOf(parseProxyHeader(bytes(first, second, "data"))), "repeated");
      const signature = second[0] === 0x50 ? 5 : 12;
      assertEquals(repeatedAt(bytes(first, second)), first.length + signature);
    }
    // Until a whole signature is there, the bytes after a header are data.
    assertEquals(parseProxyHeader(bytes(first, "PROX")).status, "ok");
    assertEquals(parseProxyHeader(bytes(first, SIG.slice(0, 11))).status, "ok");
  }
});

Deno.test("parseProxyHeader never throws on seeded random bytes", () => {
  const random = prng(20100_1029);
  const starts = [
    new Uint8Array(),
    text("PROXY "),
    text("PROXY TCP4 "),
    bytes(SIG),
    bytes(SIG, 0x21),
  ];
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const start = starts[i % starts.length]!;
    const buf = bytes(start, randomBytes(random, Math.floor(random() * 300)));
    const result = parseProxyHeader(buf);
    seen.add(reasonOf(result));
    if (result.status === "ok") ok(result.length > 0 && result.length <= buf.length);
    if (result.status === "error") ok(REASONS.includes(result.reason) && result.message !== "");
  }
  ok(seen.has("not-proxy") && seen.has("malformed") && seen.has("incomplete"), [...seen].join());
});

Deno.test("parseProxyHeader decides once: more bytes never change an error", () => {
  const random = prng(1403);
  for (let i = 0; i < 3000; i++) {
    const base = VALID[i % VALID.length]!.bytes;
    const buf = bytes(base, "after");
    for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) {
      const at = Math.floor(random() * buf.length);
      buf[at] = random() < 0.5 ? Math.floor(random() * 256) : buf[at]! ^ (1 << (i % 8));
    }
    let first: ParseResult | undefined;
    for (let n = 0; n <= buf.length; n++) {
      const result = parseProxyHeader(buf.subarray(0, n));
      if (result.status === "incomplete") {
        ok(first === undefined, `incomplete after a decision, at ${n}`);
        continue;
      }
      first ??= result;
      if (first.status === "error") assertEquals(reasonOf(result), reasonOf(first));
      else if (result.status === "ok") assertEquals(result, first);
      else assertEquals(reasonOf(result), "repeated");
    }
  }
});
