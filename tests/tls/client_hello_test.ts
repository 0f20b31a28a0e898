import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  type HelloErrorReason,
  type HelloOk,
  type HelloResult,
  MAX_HELLO_BYTES,
  MAX_HELLO_RECORD_BYTES,
  MAX_HELLO_RECORDS,
  parseClientHello,
} from "../../src/tls/client_hello.ts";
import {
  alpn,
  bytes,
  ext,
  GROUPS_EXT,
  handshake,
  hello,
  helloBody,
  helloMessage,
  helloMessageOfLength,
  OTHER_EXT,
  prng,
  record,
  records,
  sni,
  supportedVersions,
  u16,
  u24,
  vec16,
  vec8,
} from "./_hello.ts";

const REASONS: readonly HelloErrorReason[] = [
  "not-tls",
  "not-client-hello",
  "malformed",
  "too-large",
];

/** The fixed part of a body: legacy_version, random, empty session id, one suite, null compression. */
const FIXED = bytes(u16(0x0303), new Uint8Array(32), vec8(), vec16(u16(0x1301)), vec8(0));

function okHello(length: number, fields: Partial<HelloOk> = {}): HelloOk {
  return {
    status: "ok",
    length,
    serverName: "api.example.com",
    recordVersion: 0x0301,
    legacyVersion: 0x0303,
    ...fields,
  };
}

/** Ends of the 1-4 cuts that split `size` bytes into 2-5 non-empty fragments. */
function fragmentSizes(random: () => number, size: number, pieces: number): number[] {
  const cuts = new Set<number>();
  while (cuts.size < pieces - 1) cuts.add(1 + Math.floor(random() * (size - 1)));
  const sorted = [...cuts].sort((a, b) => a - b);
  return sorted.map((cut, i) => cut - (sorted[i - 1] ?? 0));
}

const VALID: { name: string; bytes: Uint8Array; hello: Partial<HelloOk> }[] = [
  {
    name: "TLS 1.3 with SNI, ALPN and supported_versions (GREASE kept)",
    bytes: hello({
      extensions: [
        GROUPS_EXT,
        sni("api.example.com"),
        alpn("h2", "http/1.1"),
        supportedVersions(0x0a0a, 0x0304, 0x0303),
      ],
    }),
    hello: { alpn: ["h2", "http/1.1"], supportedVersions: [0x0a0a, 0x0304, 0x0303] },
  },
  {
    name: "SNI first among extensions",
    bytes: hello({ extensions: [sni("api.example.com"), OTHER_EXT, GROUPS_EXT] }),
    hello: {},
  },
  {
    name: "SNI in the middle of the extensions",
    bytes: hello({ extensions: [OTHER_EXT, sni("api.example.com"), GROUPS_EXT] }),
    hello: {},
  },
  {
    name: "SNI last among extensions",
    bytes: hello({ extensions: [OTHER_EXT, GROUPS_EXT, sni("api.example.com")] }),
    hello: {},
  },
  {
    name: "TLS 1.2 without SNI",
    bytes: hello({ extensions: [OTHER_EXT, GROUPS_EXT] }),
    hello: { serverName: null },
  },
  {
    name: "TLS 1.0 without an extensions block",
    bytes: hello({ legacyVersion: 0x0301, sessionId: new Uint8Array(), extensions: null }),
    hello: { serverName: null, legacyVersion: 0x0301 },
  },
  {
    name: "SSL 3.0 record and legacy versions, no extensions",
    bytes: hello({ legacyVersion: 0x0300, extensions: null }, 0x0300),
    hello: { serverName: null, legacyVersion: 0x0300, recordVersion: 0x0300 },
  },
  {
    name: "an empty extensions block",
    bytes: hello({ extensions: [] }),
    hello: { serverName: null },
  },
  {
    name: "a TLS 1.2 record version on the first record",
    bytes: hello({}, 0x0303),
    hello: { recordVersion: 0x0303 },
  },
  {
    name: "upper case and a trailing dot, normalized",
    bytes: hello({ extensions: [sni("API.Example.COM.")] }),
    hello: {},
  },
  {
    name: "an IPv4 literal, as no SNI",
    bytes: hello({ extensions: [sni("192.0.2.1")] }),
    hello: { serverName: null },
  },
  {
    name: "an IPv6 literal, as no SNI",
    bytes: hello({ extensions: [sni("2001:db8::1")] }),
    hello: { serverName: null },
  },
  {
    name: "a bracketed IPv6 literal, as no SNI",
    bytes: hello({ extensions: [sni("[::1]")] }),
    hello: { serverName: null },
  },
  {
    name: "an entry of an unknown name type before the host_name one",
    bytes: hello({
      extensions: [ext(0, vec16(bytes(7, vec16("opaque")), bytes(0, vec16("a.example.com"))))],
    }),
    hello: { serverName: "a.example.com" },
  },
  {
    name: "a server name list with no host_name entry",
    bytes: hello({ extensions: [ext(0, vec16(bytes(7, vec16("opaque"))))] }),
    hello: { serverName: null },
  },
  {
    name: "a single-label name",
    bytes: hello({ extensions: [sni("localhost")] }),
    hello: { serverName: "localhost" },
  },
  {
    name: "an IDN A-label",
    bytes: hello({ extensions: [sni("xn--bcher-kva.example")] }),
    hello: { serverName: "xn--bcher-kva.example" },
  },
  {
    name: "a 255-byte name of 63-byte labels",
    bytes: hello({ extensions: [sni(["a", "b", "c", "d"].map((c) => c.repeat(63)).join("."))] }),
    hello: { serverName: ["a", "b", "c", "d"].map((c) => c.repeat(63)).join(".") },
  },
  {
    name: "a hello of exactly MAX_HELLO_BYTES",
    bytes: records(helloMessageOfLength(MAX_HELLO_BYTES)),
    hello: {},
  },
];

Deno.test("parseClientHello reads each valid hello in the table", async (t) => {
  for (const { name, bytes: buf, hello: fields } of VALID) {
    await t.step(name, () => {
      assertEquals(parseClientHello(buf), okHello(buf.length, fields));
    });
  }
});

Deno.test("parseClientHello answers incomplete at every strict prefix of a valid hello", () => {
  for (const { name, bytes: buf } of VALID) {
    for (let n = 0; n < buf.length; n++) {
      const result = parseClientHello(buf.subarray(0, n));
      assertEquals(result, { status: "incomplete" }, `${name}, prefix of ${n} bytes`);
    }
  }
});

Deno.test("parseClientHello joins a hello split across 2-5 records, at any cut", () => {
  const random = prng(11);
  for (const { name, bytes: buf, hello: fields } of VALID) {
    const message = buf.subarray(5);
    const version = (buf[1]! << 8) | buf[2]!;
    for (let pieces = 2; pieces <= 5; pieces++) {
      for (let round = 0; round < 20; round++) {
        // Round 0 cuts inside the 4-byte handshake header, where the length is.
        const sizes = round === 0
          ? [1, 2, ...fragmentSizes(random, message.length - 3, pieces - 2).slice(0, -1)]
          : fragmentSizes(random, message.length, pieces).slice(0, -1);
        const split = records(message, sizes.slice(0, pieces - 1), version);
        const expected = okHello(split.length, fields);
        assertEquals(parseClientHello(split), expected, `${name}, fragments ${sizes}`);
        for (let n = 0; n < split.length; n++) {
          assertEquals(parseClientHello(split.subarray(0, n)).status, "incomplete");
        }
      }
    }
  }
});

Deno.test("parseClientHello leaves bytes after the hello's records to the stream", () => {
  const after = bytes(record(Uint8Array.of(1), 20, 0x0303), record(bytes("early"), 23, 0x0303));
  for (const { name, bytes: buf, hello: fields } of VALID) {
    assertEquals(parseClientHello(bytes(buf, after)), okHello(buf.length, fields), name);
  }
});

Deno.test("parseClientHello refuses an HTTP request at its first byte", () => {
  assertEquals(parseClientHello(bytes("G")).status, "error");
  const result = parseClientHello(bytes("GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n"));
  ok(result.status === "error" && result.reason === "not-tls");
});

Deno.test("parseClientHello decides at the first byte that shows the input is bad", () => {
  const start = helloMessage().subarray(0, 10);
  const EARLY: [bytes: Uint8Array, reason: HelloErrorReason][] = [
    [bytes(0x17), "not-tls"],
    [bytes(22, 2), "not-tls"],
    [bytes(22, u16(0x0301), u16(0)), "malformed"],
    [bytes(22, u16(0x0301), u16(0x4001)), "malformed"],
    [bytes(22, u16(0x0301), u16(300), 2), "not-client-hello"],
    [bytes(22, u16(0x0301), u16(1), 1, 23), "malformed"],
    [bytes(record(start), 21), "malformed"],
    [bytes(record(start), 22, 4), "malformed"],
  ];
  for (const [buf, reason] of EARLY) {
    const result = parseClientHello(buf);
    ok(result.status === "error" && result.reason === reason, `${buf}: ${JSON.stringify(result)}`);
    assertEquals(parseClientHello(buf.subarray(0, -1)).status, "incomplete", `${buf}`);
  }
});

Deno.test("parseClientHello refuses a too-large hello at its handshake header", () => {
  const oversized = bytes(22, u16(0x0301), u16(0x4000), 1, u24(MAX_HELLO_BYTES - 3));
  const result = parseClientHello(oversized);
  ok(result.status === "error" && result.reason === "too-large", JSON.stringify(result));
  assertEquals(parseClientHello(oversized.subarray(0, -1)).status, "incomplete");
  // One byte less is fine (the padded hello of exactly MAX_HELLO_BYTES is in VALID).
  const withinBound = bytes(22, u16(0x0301), u16(0x4000), 1, u24(MAX_HELLO_BYTES - 4));
  assertEquals(parseClientHello(withinBound).status, "incomplete");
});

Deno.test("parseClientHello decides by MAX_HELLO_RECORD_BYTES, however the hello is split", () => {
  // The largest hello in the most records takes exactly the bound.
  const message = helloMessageOfLength(MAX_HELLO_BYTES);
  const most = records(message, new Array(MAX_HELLO_RECORDS - 1).fill(1));
  assertEquals(most.length, MAX_HELLO_RECORD_BYTES);
  assertEquals(parseClientHello(most), okHello(most.length));
  // Any bytes that start like a hello are decided by then, whatever follows.
  const random = prng(7);
  for (let round = 0; round < 300; round++) {
    const pieces = 1 + Math.floor(random() * (MAX_HELLO_RECORDS + 8));
    const sizes = Array.from({ length: pieces }, () => 1 + Math.floor(random() * 600));
    const start = records(message.subarray(0, 4 + Math.floor(random() * 12_000)), sizes);
    const buf = new Uint8Array(MAX_HELLO_RECORD_BYTES);
    buf.set(start.subarray(0, buf.length));
    for (let i = start.length; i < buf.length; i++) buf[i] = Math.floor(random() * 256);
    ok(parseClientHello(buf).status !== "incomplete", `round ${round}`);
  }
});

/** A record holding a handshake message of type 1 with `body`. */
function withBody(...body: (Uint8Array | number | readonly number[] | string)[]) {
  return records(handshake(1, bytes(...body)));
}

const ERRORS: { name: string; bytes: Uint8Array; reason: HelloErrorReason }[] = [
  { name: "an HTTP request", bytes: bytes("GET / HTTP/1.1\r\n\r\n"), reason: "not-tls" },
  { name: "SSL 2 ClientHello", bytes: bytes(0x80, 0x2e, 1, u16(0x0301)), reason: "not-tls" },
  { name: "record version 2.0", bytes: bytes(22, 2, 0, u16(4), 1), reason: "not-tls" },
  { name: "an alert record first", bytes: record(Uint8Array.of(2, 40), 21), reason: "not-tls" },
  { name: "application data first", bytes: record(bytes("x"), 23, 0x0303), reason: "not-tls" },
  {
    name: "a ServerHello",
    bytes: records(handshake(2, helloBody())),
    reason: "not-client-hello",
  },
  {
    name: "a handshake type split from its length by a record",
    bytes: records(handshake(11, helloBody()), [1]),
    reason: "not-client-hello",
  },
  {
    name: "a hello over MAX_HELLO_BYTES",
    bytes: records(helloMessageOfLength(MAX_HELLO_BYTES + 1), [MAX_HELLO_BYTES]),
    reason: "too-large",
  },
  {
    name: "a hello in more than MAX_HELLO_RECORDS records",
    bytes: records(helloMessage(), new Array(MAX_HELLO_RECORDS).fill(1)),
    reason: "too-large",
  },
  { name: "an empty first record", bytes: bytes(22, u16(0x0301), u16(0)), reason: "malformed" },
  {
    name: "an empty record in the middle",
    bytes: bytes(records(helloMessage().subarray(0, 10)).subarray(0, 15), record(bytes())),
    reason: "malformed",
  },
  {
    name: "a record over 16384 bytes",
    bytes: bytes(22, u16(0x0301), u16(0x4001), 1),
    reason: "malformed",
  },
  {
    name: "a record running past the end of the hello",
    bytes: record(bytes(helloMessage(), 0)),
    reason: "malformed",
  },
  {
    name: "a ChangeCipherSpec record inside the hello",
    bytes: bytes(record(helloMessage().subarray(0, 50)), record(Uint8Array.of(1), 20)),
    reason: "malformed",
  },
  {
    name: "an application data record inside the hello",
    bytes: bytes(record(helloMessage().subarray(0, 2)), record(bytes("data"), 23)),
    reason: "malformed",
  },
  {
    name: "a second record of version 2.x",
    bytes: bytes(record(helloMessage().subarray(0, 2)), 22, 2, 0, u16(1), 0),
    reason: "malformed",
  },
  { name: "an empty body", bytes: withBody(), reason: "malformed" },
  { name: "a body ending in its random", bytes: withBody(u16(0x0303), 1, 2), reason: "malformed" },
  {
    name: "a session id over 32 bytes",
    bytes: withBody(u16(0x0303), new Uint8Array(32), vec8(new Uint8Array(33)), vec16(0, 1), 1, 0),
    reason: "malformed",
  },
  {
    name: "a session id running past the body",
    bytes: withBody(u16(0x0303), new Uint8Array(32), 20, new Uint8Array(10)),
    reason: "malformed",
  },
  {
    name: "an odd cipher suites length",
    bytes: withBody(u16(0x0303), new Uint8Array(32), vec8(), vec16(0x13, 0x01, 0x13), vec8(0)),
    reason: "malformed",
  },
  {
    name: "no cipher suites",
    bytes: withBody(u16(0x0303), new Uint8Array(32), vec8(), vec16(), vec8(0)),
    reason: "malformed",
  },
  {
    name: "cipher suites running past the body",
    bytes: withBody(u16(0x0303), new Uint8Array(32), vec8(), u16(200), u16(0x1301)),
    reason: "malformed",
  },
  {
    name: "no compression methods",
    bytes: withBody(u16(0x0303), new Uint8Array(32), vec8(), vec16(u16(0x1301)), vec8()),
    reason: "malformed",
  },
  {
    name: "compression methods running past the body",
    bytes: withBody(u16(0x0303), new Uint8Array(32), vec8(), vec16(u16(0x1301)), 3, 0),
    reason: "malformed",
  },
  { name: "one byte where the extensions start", bytes: withBody(FIXED, 0), reason: "malformed" },
  {
    name: "an extensions block shorter than the rest",
    bytes: withBody(FIXED, vec16(OTHER_EXT), 0),
    reason: "malformed",
  },
  {
    name: "an extensions block longer than the rest",
    bytes: withBody(FIXED, u16(OTHER_EXT.length + 1), OTHER_EXT),
    reason: "malformed",
  },
  {
    name: "an extension running past the block",
    bytes: withBody(FIXED, vec16(u16(11), u16(5), 1, 0)),
    reason: "malformed",
  },
  {
    name: "a truncated extension header",
    bytes: withBody(FIXED, vec16(OTHER_EXT, 0, 11, 0)),
    reason: "malformed",
  },
  {
    name: "an extension twice",
    bytes: hello({ extensions: [OTHER_EXT, sni("a.example.com"), OTHER_EXT] }),
    reason: "malformed",
  },
  { name: "server_name with no data", bytes: hello({ extensions: [ext(0)] }), reason: "malformed" },
  {
    name: "a server name list shorter than its extension",
    bytes: hello({ extensions: [ext(0, vec16(0, vec16("a.example.com")), 0)] }),
    reason: "malformed",
  },
  {
    name: "a server name list longer than its extension",
    bytes: hello({ extensions: [ext(0, u16(100), 0, vec16("a.example.com"))] }),
    reason: "malformed",
  },
  {
    name: "an empty server name list",
    bytes: hello({ extensions: [ext(0, vec16())] }),
    reason: "malformed",
  },
  {
    name: "a host name running past its list",
    bytes: hello({ extensions: [ext(0, vec16(0, u16(40), "a.example.com"))] }),
    reason: "malformed",
  },
  {
    name: "two host_name entries (RFC 6066)",
    bytes: hello({ extensions: [sni("a.example.com", "b.example.com")] }),
    reason: "malformed",
  },
  { name: "an empty host name", bytes: hello({ extensions: [sni("")] }), reason: "malformed" },
  { name: "a lone dot", bytes: hello({ extensions: [sni(".")] }), reason: "malformed" },
  {
    name: "a 256-byte host name",
    bytes: hello({ extensions: [sni(`${"a".repeat(63)}.`.repeat(4))] }),
    reason: "malformed",
  },
  {
    name: "a 64-byte label",
    bytes: hello({ extensions: [sni(`${"a".repeat(64)}.example.com`)] }),
    reason: "malformed",
  },
  {
    name: "an empty label",
    bytes: hello({ extensions: [sni("a..example.com")] }),
    reason: "malformed",
  },
  {
    name: "two trailing dots",
    bytes: hello({ extensions: [sni("example.com..")] }),
    reason: "malformed",
  },
  {
    name: "an underscore",
    bytes: hello({ extensions: [sni("a_b.example.com")] }),
    reason: "malformed",
  },
  {
    name: "a leading hyphen",
    bytes: hello({ extensions: [sni("-a.example.com")] }),
    reason: "malformed",
  },
  {
    name: "a wildcard",
    bytes: hello({ extensions: [sni("*.example.com")] }),
    reason: "malformed",
  },
  {
    name: "a byte over 0x7f",
    bytes: hello({ extensions: [ext(0, vec16(0, vec16("caf", 0xc3, 0xa9, ".example")))] }),
    reason: "malformed",
  },
  {
    name: "a NUL byte",
    bytes: hello({ extensions: [ext(0, vec16(0, vec16("a.example.com", 0, ".evil")))] }),
    reason: "malformed",
  },
  {
    name: "an empty ALPN list",
    bytes: hello({ extensions: [ext(16, vec16())] }),
    reason: "malformed",
  },
  {
    name: "an empty ALPN protocol",
    bytes: hello({ extensions: [ext(16, vec16(vec8("h2"), vec8()))] }),
    reason: "malformed",
  },
  {
    name: "an ALPN protocol running past its list",
    bytes: hello({ extensions: [ext(16, vec16(9, "h2"))] }),
    reason: "malformed",
  },
  {
    name: "an odd supported_versions length",
    bytes: hello({ extensions: [ext(43, vec8(3, 4, 3))] }),
    reason: "malformed",
  },
  {
    name: "empty supported_versions",
    bytes: hello({ extensions: [ext(43, vec8())] }),
    reason: "malformed",
  },
];

Deno.test("parseClientHello refuses each bad input in the table, with its reason", async (t) => {
  for (const { name, bytes: buf, reason } of ERRORS) {
    await t.step(name, () => {
      const result = parseClientHello(buf);
      ok(result.status === "error", `${name}: ${JSON.stringify(result)}`);
      assertEquals(result.reason, reason, result.message);
      ok(result.message.startsWith("Cannot parse ClientHello as "), result.message);
      ok(!result.message.includes("\n") && !result.message.includes("\0"), result.message);
    });
  }
});

/** Whether the answer at every prefix of `buf` is `incomplete` or the answer for all of `buf`. */
function decidesOnce(buf: Uint8Array): boolean {
  const final = parseClientHello(buf);
  for (let n = 0; n < buf.length; n++) {
    const result = parseClientHello(buf.subarray(0, n));
    if (result.status === "incomplete") continue;
    try {
      assertEquals(result, final);
    } catch {
      return false;
    }
  }
  return true;
}

Deno.test("parseClientHello gives its verdict once: more bytes never change it", () => {
  for (const { name, bytes: buf } of ERRORS) ok(decidesOnce(buf), name);
  for (const { name, bytes: buf } of VALID.slice(0, 8)) ok(decidesOnce(bytes(buf, "more")), name);
});

function isResult(result: HelloResult, buf: Uint8Array): boolean {
  if (result.status === "incomplete") return true;
  if (result.status === "error") return REASONS.includes(result.reason);
  return result.length <= buf.length;
}

Deno.test("parseClientHello never throws on seeded random bytes", () => {
  const random = prng(42);
  const byte = () => Math.floor(random() * 256);
  for (let round = 0; round < 3000; round++) {
    const length = Math.floor(random() * 400);
    const noise = Uint8Array.from({ length }, byte);
    ok(isResult(parseClientHello(noise), noise));
    // The same noise behind a plausible record and handshake header reaches the body parser.
    const framed = bytes(22, 3, 1, u16(length + 4), 1, u24(length), noise);
    ok(isResult(parseClientHello(framed), framed));
  }
});

Deno.test("parseClientHello never throws and decides once on mutated hellos", () => {
  const random = prng(1234);
  const seeds = VALID.slice(0, 6).map((v) => v.bytes);
  let oks = 0;
  for (let round = 0; round < 1500; round++) {
    const buf = Uint8Array.from(seeds[round % seeds.length]!);
    const flips = 1 + Math.floor(random() * 3);
    for (let i = 0; i < flips; i++) {
      buf[Math.floor(random() * buf.length)] = Math.floor(random() * 256);
    }
    const result = parseClientHello(buf);
    ok(isResult(result, buf), JSON.stringify(result));
    if (result.status === "ok") oks++;
    if (round % 10 === 0) ok(decidesOnce(buf), `round ${round}`);
  }
  ok(oks > 0, "no mutation left a valid hello: the mutations are too coarse to mean much");
});
