import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import {
  formatIP,
  formatIPv4,
  formatIPv6,
  isIPv4Mapped,
  parseIP,
  parseIPv4,
  parseIPv6,
} from "../../src/proxy_protocol/ip.ts";
import { prng, randomBytes } from "./_helpers.ts";

function hex(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("parseIPv4 reads dotted quads of 0-255", () => {
  assertEquals(parseIPv4("192.168.0.1"), Uint8Array.of(192, 168, 0, 1));
  assertEquals(parseIPv4("0.0.0.0"), Uint8Array.of(0, 0, 0, 0));
  assertEquals(parseIPv4("255.255.255.255"), Uint8Array.of(255, 255, 255, 255));
  assertEquals(parseIPv4("10.0.100.9"), Uint8Array.of(10, 0, 100, 9));
});

Deno.test("parseIPv4 rejects leading zeros, out-of-range octets and other shapes", () => {
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "1.2.3.00",
      "1.2.3.256",
      "1.2.3.1000",
      "1..3.4",
      "1.2.3.4.",
      ".1.2.3",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1.2.3.+4",
      "1.2.3.-4",
      "1.2.3.0x4",
      "1.2.3.４",
      "a.b.c.d",
      "::1",
    ]
  ) {
    assertEquals(parseIPv4(bad), null, `accepted ${JSON.stringify(bad)}`);
  }
});

Deno.test("parseIPv6 reads every RFC 4291 text form", () => {
  const cases: [string, string][] = [
    ["::", "00000000000000000000000000000000"],
    ["::1", "00000000000000000000000000000001"],
    ["1::", "00010000000000000000000000000000"],
    ["2001:db8::5", "20010db8000000000000000000000005"],
    ["2001:DB8:0:0:0:0:0:5", "20010db8000000000000000000000005"],
    ["2001:0db8:0000:0000:0000:0000:0000:0005", "20010db8000000000000000000000005"],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffffffffffffffffffffffffffffffff"],
    ["1:2:3:4:5:6:7::", "00010002000300040005000600070000"],
    ["::2:3:4:5:6:7:8", "00000002000300040005000600070008"],
    ["1:2:3::6:7:8", "00010002000300000000000600070008"],
    ["::ffff:10.0.0.5", "00000000000000000000ffff0a000005"],
    ["::10.0.0.5", "0000000000000000000000000a000005"],
    ["1:2:3:4:5:6:1.2.3.4", "00010002000300040005000601020304"],
    ["ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffffffffffffffffffffffffffffffff"],
  ];
  for (const [input, expected] of cases) assertEquals(hex(parseIPv6(input)), expected, input);
});

Deno.test("parseIPv6 rejects anything that is not 128 bits of RFC 4291 text", () => {
  for (
    const bad of [
      "",
      ":",
      ":::",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "1::2::3",
      "1:::2",
      ":1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:",
      ":1::",
      "::1:",
      "12345::",
      "g::",
      "::ffff:10.0.0.05",
      "::ffff:10.0.0",
      "::1.2.3.4:5",
      "1.2.3.4::",
      "1:2:3:4:5:6:7:1.2.3.4",
      "fe80::1%eth0",
      "[::1]",
      " ::1",
      "::1 ",
      "1.2.3.4",
      "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555",
    ]
  ) {
    assertEquals(parseIPv6(bad), null, `accepted ${JSON.stringify(bad)}`);
  }
});

Deno.test("parseIP picks the family from the text", () => {
  assertEquals(parseIP("127.0.0.1")?.length, 4);
  assertEquals(parseIP("::1")?.length, 16);
  assertEquals(parseIP("localhost"), null);
});

Deno.test("formatIPv6 writes RFC 5952 canonical text", () => {
  const cases: [string, string][] = [
    ["::", "::"],
    ["::1", "::1"],
    ["2001:0DB8:0:0:0:0:0:5", "2001:db8::5"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of equal runs
    ["2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"], // longest run, not the first
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
    ["1:0:0:0:0:0:0:0", "1::"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["ABCD:EF01::", "abcd:ef01::"],
    ["::ffff:a00:5", "::ffff:10.0.0.5"],
    ["::a00:5", "::a00:5"], // IPv4-compatible is not shown dotted
    ["::fffe:a00:5", "::fffe:a00:5"],
  ];
  for (const [input, expected] of cases) assertEquals(formatIPv6(parseIPv6(input)!), expected);
  assertEquals(formatIPv6(parseIPv6("::ffff:10.0.0.5")!, { mappedIPv4: false }), "::ffff:a00:5");
});

Deno.test("formatIPv6 agrees with the WHATWG URL serializer on random addresses", () => {
  const random = prng(5952);
  for (let i = 0; i < 2000; i++) {
    const bytes = randomBytes(random, 16);
    // Zero some groups so that runs of zeros, the interesting case, are common.
    for (let g = 0; g < 8; g++) if (random() < 0.5) bytes[2 * g] = bytes[2 * g + 1] = 0;
    if (isIPv4Mapped(bytes)) continue; // URL writes these in hex
    const expected = new URL(`http://[${formatIPv6(bytes)}]/`).hostname.slice(1, -1);
    assertEquals(formatIPv6(bytes), expected);
    assertEquals(parseIPv6(formatIPv6(bytes)), bytes);
  }
});

Deno.test("formatIP and parseIP round-trip IPv4 and IPv6 bytes", () => {
  const random = prng(4291);
  for (let i = 0; i < 1000; i++) {
    const bytes = randomBytes(random, i % 2 === 0 ? 4 : 16);
    assertEquals(parseIP(formatIP(bytes)), bytes);
  }
});

Deno.test("formatIPv4 and formatIPv6 refuse the wrong number of bytes", () => {
  assertThrows(() => formatIPv4(new Uint8Array(16)), RangeError);
  assertThrows(() => formatIPv6(new Uint8Array(4)), RangeError);
  assertThrows(() => formatIP(new Uint8Array(5)), RangeError);
});

Deno.test("isIPv4Mapped recognises ::ffff:0:0/96 only", () => {
  assertEquals(isIPv4Mapped(parseIPv6("::ffff:1.2.3.4")!), true);
  assertEquals(isIPv4Mapped(parseIPv6("::1.2.3.4")!), false);
  assertEquals(isIPv4Mapped(parseIPv6("1::ffff:1.2.3.4")!), false);
  assertEquals(isIPv4Mapped(Uint8Array.of(1, 2, 3, 4)), false);
});
