import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  encodeProxyV1,
  encodeProxyV1Unknown,
  encodeProxyV2,
  encodeProxyV2Local,
} from "../../src/proxy_protocol/encode.ts";
import type { ProxyAddress, ProxyHeader } from "../../src/proxy_protocol/header.ts";
import { formatIPv4, formatIPv6 } from "../../src/proxy_protocol/ip.ts";
import { parseProxyHeader } from "../../src/proxy_protocol/parse.ts";
import { bytes, prng, randomBytes, SIG, text, tlv, u16, v2 } from "./_helpers.ts";

const decoder = new TextDecoder();

function parsed(buf: Uint8Array): ProxyHeader {
  const result = parseProxyHeader(buf);
  if (result.status !== "ok") throw new Error(`not ok: ${JSON.stringify(result)}`);
  assertEquals(result.length, buf.length);
  return result.header;
}

function tcp(
  version: 1 | 2,
  family: "INET" | "INET6",
  source: ProxyAddress,
  destination: ProxyAddress,
): ProxyHeader {
  return { version, command: "PROXY", family, transport: "stream", source, destination };
}

const client4 = { hostname: "192.168.0.1", port: 56324 };
const server4 = { hostname: "192.168.0.11", port: 443 };
const client6 = { hostname: "2001:db8::5", port: 5123 };
const server6 = { hostname: "2001:db8::1", port: 443 };

Deno.test("encodeProxyV1 writes the spec's TCP4 example byte for byte", () => {
  assertEquals(
    decoder.decode(encodeProxyV1(client4, server4)),
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
  );
  assertEquals(
    decoder.decode(
      encodeProxyV1({ hostname: "0.0.0.0", port: 0 }, { hostname: "::ffff:1.2.3.4", port: 65535 }),
    ),
    "PROXY TCP4 0.0.0.0 1.2.3.4 0 65535\r\n",
  );
});

Deno.test("encodeProxyV1 writes TCP6 in RFC 5952 hex, mapping an IPv4 endpoint", () => {
  assertEquals(
    decoder.decode(encodeProxyV1({ hostname: "2001:DB8:0:0:0:0:0:5", port: 5123 }, server6)),
    "PROXY TCP6 2001:db8::5 2001:db8::1 5123 443\r\n",
  );
  assertEquals(
    decoder.decode(encodeProxyV1({ hostname: "10.0.0.5", port: 1 }, server6)),
    "PROXY TCP6 ::ffff:a00:5 2001:db8::1 1 443\r\n",
  );
  assertEquals(
    decoder.decode(encodeProxyV1(client6, { hostname: "::ffff:10.0.0.1", port: 80 })),
    "PROXY TCP6 2001:db8::5 ::ffff:a00:1 5123 80\r\n",
  );
});

Deno.test("encodeProxyV1Unknown writes the short UNKNOWN line", () => {
  assertEquals(encodeProxyV1Unknown(), text("PROXY UNKNOWN\r\n"));
});

Deno.test("encodeProxyV2 lays out a TCP4 header as the spec's struct", () => {
  assertEquals(
    encodeProxyV2(client4, server4),
    bytes(SIG, 0x21, 0x11, u16(12), [192, 168, 0, 1, 192, 168, 0, 11], u16(56324), u16(443)),
  );
});

Deno.test("encodeProxyV2 lays out a TCP6 header, mapping an IPv4 endpoint", () => {
  const src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
  const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1];
  assertEquals(
    encodeProxyV2(client6, { hostname: "10.0.0.1", port: 80 }),
    bytes(SIG, 0x21, 0x21, u16(36), src, mapped, u16(5123), u16(80)),
  );
});

Deno.test("encodeProxyV2 appends AUTHORITY then UNIQUE_ID TLVs", () => {
  assertEquals(
    encodeProxyV2(client4, server4, { authority: "exämple.com", uniqueId: "DEADbeef" }),
    v2(
      0x21,
      0x11,
      [192, 168, 0, 1, 192, 168, 0, 11],
      u16(56324),
      u16(443),
      tlv(0x02, "exämple.com"),
      tlv(0x05, [0xde, 0xad, 0xbe, 0xef]),
    ),
  );
});

Deno.test("encodeProxyV2 with checksum ends in a CRC32C TLV the parser verifies", () => {
  const header = encodeProxyV2(client4, server4, { authority: "a.example", checksum: true });
  assertEquals(header.subarray(header.length - 7, header.length - 4), Uint8Array.of(0x03, 0, 4));
  assertEquals(parsed(header).authority, "a.example");
  header[20] = header[20]! ^ 0x40;
  const result = parseProxyHeader(header);
  assertEquals(result.status === "error" && result.reason, "checksum");
});

Deno.test("encodeProxyV2Local writes LOCAL, family UNSPEC and an empty block", () => {
  assertEquals(encodeProxyV2Local(), bytes(SIG, 0x20, 0x00, 0x00, 0x00));
  encodeProxyV2Local()[12] = 0;
  assertEquals(encodeProxyV2Local()[12], 0x20); // each call returns its own bytes
});

Deno.test("encodeProxyV1 and encodeProxyV2 refuse non-IP hostnames and bad ports", () => {
  const bad: [ProxyAddress, ErrorConstructor][] = [
    [{ hostname: "localhost", port: 80 }, SyntaxError],
    [{ hostname: "[::1]", port: 80 }, SyntaxError],
    [{ hostname: "fe80::1%eth0", port: 80 }, SyntaxError],
    [{ hostname: "010.0.0.1", port: 80 }, SyntaxError],
    [{ hostname: "", port: 80 }, SyntaxError],
    [{ hostname: "10.0.0.1", port: 65536 }, RangeError],
    [{ hostname: "10.0.0.1", port: -1 }, RangeError],
    [{ hostname: "10.0.0.1", port: 1.5 }, RangeError],
    [{ hostname: "10.0.0.1", port: NaN }, RangeError],
  ];
  for (const [address, type] of bad) {
    for (const encode of [encodeProxyV1, encodeProxyV2]) {
      assertThrows(() => encode(address, server4), type, JSON.stringify(address));
      assertThrows(() => encode(client6, address), type, JSON.stringify(address));
    }
  }
});

Deno.test("encodeProxyV2 refuses a non-hex or oversized unique ID and an oversized block", () => {
  assertThrows(() => encodeProxyV2(client4, server4, { uniqueId: "abc" }), SyntaxError);
  assertThrows(() => encodeProxyV2(client4, server4, { uniqueId: "zz" }), SyntaxError);
  assertThrows(() => encodeProxyV2(client4, server4, { uniqueId: "00".repeat(129) }), RangeError);
  assertEquals(
    parsed(encodeProxyV2(client4, server4, { uniqueId: "00".repeat(128) })).uniqueId,
    "00".repeat(128),
  );
  assertThrows(
    () => encodeProxyV2(client4, server4, { authority: "a".repeat(0xffff - 12 - 3 + 1) }),
    RangeError,
  );
  const largest = encodeProxyV2(client4, server4, { authority: "a".repeat(0xffff - 12 - 3) });
  assertEquals(largest.length, 16 + 0xffff);
  assertEquals(parsed(largest).authority?.length, 0xffff - 12 - 3);
});

Deno.test("encodeProxyV1 and encodeProxyV2 round-trip through parseProxyHeader", () => {
  const cases: [string, ProxyAddress, ProxyAddress, ProxyHeader, ProxyHeader][] = [
    ["IPv4", client4, server4, tcp(1, "INET", client4, server4), tcp(2, "INET", client4, server4)],
    [
      "IPv6",
      client6,
      server6,
      tcp(1, "INET6", client6, server6),
      tcp(2, "INET6", client6, server6),
    ],
    [
      "IPv4-mapped on both sides (as IPv4)",
      { hostname: "::ffff:192.168.0.1", port: 56324 },
      { hostname: "::FFFF:c0a8:b", port: 443 },
      tcp(1, "INET", client4, server4),
      tcp(2, "INET", client4, server4),
    ],
    [
      "IPv4 client, IPv6 server",
      client4,
      server6,
      tcp(1, "INET6", { hostname: "::ffff:192.168.0.1", port: 56324 }, server6),
      tcp(2, "INET6", { hostname: "::ffff:192.168.0.1", port: 56324 }, server6),
    ],
    [
      "IPv6 client, IPv4-mapped server",
      client6,
      { hostname: "::ffff:192.168.0.11", port: 443 },
      tcp(1, "INET6", client6, { hostname: "::ffff:192.168.0.11", port: 443 }),
      tcp(2, "INET6", client6, { hostname: "::ffff:192.168.0.11", port: 443 }),
    ],
  ];
  for (const [name, source, destination, v1Header, v2Header] of cases) {
    assertEquals(parsed(encodeProxyV1(source, destination)), v1Header, name);
    assertEquals(parsed(encodeProxyV2(source, destination)), v2Header, name);
    assertEquals(
      parsed(
        encodeProxyV2(source, destination, { authority: "h", uniqueId: "01", checksum: true }),
      ),
      { ...v2Header, authority: "h", uniqueId: "01" },
      name,
    );
  }
  assertEquals(parsed(encodeProxyV2Local()), {
    version: 2,
    command: "LOCAL",
    family: "UNSPEC",
    transport: "unspec",
    source: null,
    destination: null,
  });
  assertEquals(parsed(encodeProxyV1Unknown()), {
    version: 1,
    command: "PROXY",
    family: "UNSPEC",
    transport: "unspec",
    source: null,
    destination: null,
  });
});

Deno.test("encodeProxyV1 and encodeProxyV2 round-trip seeded random endpoints", () => {
  const random = prng(2012_0621);
  for (let i = 0; i < 2000; i++) {
    const v6 = [random() < 0.5, random() < 0.5];
    const [source, destination] = v6.map((isV6): ProxyAddress => {
      const raw = randomBytes(random, isV6 ? 16 : 4);
      if (isV6) { for (let g = 0; g < 8; g++) if (random() < 0.4) raw[2 * g] = raw[2 * g + 1] = 0; }
      return {
        hostname: isV6 ? formatIPv6(raw) : formatIPv4(raw),
        port: Math.floor(random() * 65536),
      };
    }) as [ProxyAddress, ProxyAddress];
    const anyV6 = [source, destination].some((a) =>
      a.hostname.includes(":") && !a.hostname.startsWith("::ffff:")
    );
    const expect = (address: ProxyAddress): ProxyAddress =>
      anyV6 && !address.hostname.includes(":")
        ? { ...address, hostname: `::ffff:${address.hostname}` }
        : !anyV6 && address.hostname.startsWith("::ffff:")
        ? { ...address, hostname: address.hostname.slice(7) }
        : address;
    const family = anyV6 ? "INET6" : "INET";
    assertEquals(
      parsed(encodeProxyV1(source, destination)),
      tcp(1, family, expect(source), expect(destination)),
    );
    assertEquals(
      parsed(encodeProxyV2(source, destination)),
      tcp(2, family, expect(source), expect(destination)),
    );
  }
});
