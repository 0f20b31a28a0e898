import {
  deepStrictEqual as assertEquals,
  notStrictEqual,
  ok,
  throws as assertThrows,
} from "node:assert/strict";
import {
  CidrError,
  CidrList,
  formatCidr,
  parseCidr,
  parseIp,
  sourceKey,
} from "../../src/admission/cidr.ts";

function _list(...texts: string[]): CidrList {
  return new CidrList(texts.map((text) => parseCidr(text, "--allow")));
}

/** A seeded PRNG (mulberry32), so that a failure can be replayed. */
function _random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("parseCidr reads IPv4 and IPv6 ranges, a bare address being a range of one", () => {
  const cases: [string, string][] = [
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["127.0.0.2/32", "127.0.0.2/32"],
    ["127.0.0.2", "127.0.0.2/32"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["255.255.255.255", "255.255.255.255/32"],
    ["::1/128", "::1/128"],
    ["::1", "::1/128"],
    ["::", "::/128"],
    ["::/0", "::/0"],
    ["2001:db8::/32", "2001:db8::/32"],
    ["2001:DB8:0:0:0:0:0:0/32", "2001:db8::/32"],
    ["fe80::/10", "fe80::/10"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0/128"],
    ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8/128"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221/128"],
    ["  10.0.0.0/8 ", "10.0.0.0/8"],
  ];
  for (const [text, want] of cases) {
    assertEquals(formatCidr(parseCidr(text, "--allow")), want, text);
  }
  assertEquals(parseCidr("10.0.0.0/8", "--allow"), {
    family: 4,
    network: [0x0a000000],
    prefixLength: 8,
  });
  assertEquals(parseCidr("2001:db8::/32", "--allow"), {
    family: 6,
    network: [0x20010db8, 0, 0, 0],
    prefixLength: 32,
  });
});

Deno.test("parseCidr accepts host bits past the prefix and clears them", () => {
  assertEquals(formatCidr(parseCidr("10.1.2.3/8", "--allow")), "10.0.0.0/8");
  assertEquals(formatCidr(parseCidr("192.168.1.77/26", "--allow")), "192.168.1.64/26");
  assertEquals(formatCidr(parseCidr("2001:db8:ffff::1/32", "--allow")), "2001:db8::/32");
  assertEquals(formatCidr(parseCidr("2001:db8::1/0", "--allow")), "::/0");
});

Deno.test("parseCidr stores IPv4-mapped ranges of /96 and longer as the IPv4 range", () => {
  assertEquals(parseCidr("::ffff:10.0.0.0/104", "--allow"), {
    family: 4,
    network: [0x0a000000],
    prefixLength: 8,
  });
  assertEquals(formatCidr(parseCidr("::ffff:a00:0/104", "--allow")), "10.0.0.0/8");
  assertEquals(formatCidr(parseCidr("::ffff:127.0.0.2", "--allow")), "127.0.0.2/32");
  assertEquals(formatCidr(parseCidr("::FFFF:0:0/96", "--allow")), "0.0.0.0/0");
  // Shorter than /96 it reaches past the mapped space, so it stays IPv6.
  assertEquals(formatCidr(parseCidr("::ffff:1.2.3.4/95", "--allow")), "::fffe:0:0/95");
});

Deno.test("parseCidr rejects what is not an address or range, naming the field and the value", () => {
  const bad = [
    "",
    " ",
    "10.0.0.300/8",
    "256.0.0.0",
    "10.0.0/8",
    "10.0.0.0.0",
    "10.0.0.",
    ".10.0.0.0",
    "10..0.0",
    "010.0.0.1",
    "10.0.0.0/33",
    "10.0.0.0/",
    "10.0.0.0/-1",
    "10.0.0.0/08",
    "10.0.0.0/8/8",
    "10.0.0.0/ 8",
    "10.0.0.0 /8",
    "10.0.0.0/8x",
    "1.2.3.4:80",
    "0x0a.0.0.1",
    "localhost",
    "::1/129",
    "::/1000",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::",
    "::1:2:3:4:5:6:7:8",
    "1::2::3",
    ":::1",
    ":1::",
    ":",
    "1:",
    "1::2:",
    "12345::",
    "g::/16",
    "2001:db8::/32/1",
    "[::1]/128",
    "fe80::1%eth0",
    "::1.2.3",
    "::1.2.3.4.5",
    "1.2.3.4::",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::ffff:256.0.0.0",
  ];
  for (const text of bad) {
    assertThrows(
      () => parseCidr(text, "--allow"),
      (error: unknown) =>
        error instanceof CidrError && error instanceof SyntaxError && error.name === "CidrError" &&
        error.message.startsWith("--allow must be an address or CIDR like 10.0.0.0/8") &&
        error.message.includes(JSON.stringify(text)) && !error.message.includes("\n"),
      `accepted ${JSON.stringify(text)}`,
    );
  }
  assertThrows(() => parseCidr("10.0.0.300/8", "--allow"), {
    message:
      '--allow must be an address or CIDR like 10.0.0.0/8 or 2001:db8::/32: got "10.0.0.300/8"',
  });
});

Deno.test("formatCidr writes IPv6 in RFC 5952 form, as the URL parser does", () => {
  const random = _random(5952);
  for (let i = 0; i < 20_000; i++) {
    const groups = Array.from(
      { length: 8 },
      () => random() < 0.4 ? 0 : Math.floor(random() * 65536),
    );
    if (groups.slice(0, 6).join() === "0,0,0,0,0,65535") continue; // mapped: IPv4, tested above
    const full = groups.map((group) => group.toString(16)).join(":");
    const canonical = new URL(`http://[${full}]/`).hostname.slice(1, -1);
    assertEquals(formatCidr(parseCidr(full, "--allow")), `${canonical}/128`, full);
    assertEquals(formatCidr(parseCidr(canonical, "--allow")), `${canonical}/128`, canonical);
  }
});

Deno.test("parseIp reads addresses as Deno gives them, IPv4-mapped ones as IPv4", () => {
  assertEquals(parseIp("127.0.0.1"), { v4: 0x7f000001 });
  assertEquals(parseIp("255.255.255.255"), { v4: 0xffffffff });
  assertEquals(parseIp("::ffff:127.0.0.2"), { v4: 0x7f000002 });
  assertEquals(parseIp("::ffff:7f00:2"), { v4: 0x7f000002 });
  assertEquals(parseIp("::1"), { v6: new Uint32Array([0, 0, 0, 1]) });
  assertEquals(parseIp("ffff::"), { v6: new Uint32Array([0xffff0000, 0, 0, 0]) });
  assertEquals(parseIp("fe80::1%eth0"), { v6: new Uint32Array([0xfe800000, 0, 0, 1]) });
  for (const text of ["", "localhost", "10.0.0.0/8", "1.2.3", "::g", "[::1]"]) {
    assertEquals(parseIp(text), undefined, text);
  }
});

Deno.test("CidrList.has matches the first and last address of an IPv4 range, not one past either", () => {
  const list = _list("10.1.2.0/24", "192.168.0.64/26");
  for (const inside of ["10.1.2.0", "10.1.2.255", "192.168.0.64", "192.168.0.127"]) {
    ok(list.has(inside), inside);
  }
  for (const outside of ["10.1.1.255", "10.1.3.0", "192.168.0.63", "192.168.0.128"]) {
    ok(!list.has(outside), outside);
  }
});

Deno.test("CidrList.has matches the first and last address of an IPv6 range, not one past either", () => {
  const list = _list("2001:db8:1::/48", "fe80::/10", "2001:db8:ffff:ffff::/63");
  for (
    const inside of [
      "2001:db8:1::",
      "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
      "fe80::",
      "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "2001:db8:ffff:fffe::",
      "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    ]
  ) ok(list.has(inside), inside);
  for (
    const outside of [
      "2001:db8:0:ffff:ffff:ffff:ffff:ffff",
      "2001:db8:2::",
      "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "fec0::",
      "2001:db8:ffff:fffd:ffff:ffff:ffff:ffff",
      "2001:db9::",
    ]
  ) ok(!list.has(outside), outside);
});

Deno.test("CidrList.has with /32 and /128 matches exactly one address", () => {
  const list = _list("127.0.0.2/32", "2001:db8::7/128");
  ok(list.has("127.0.0.2"));
  ok(!list.has("127.0.0.1"));
  ok(!list.has("127.0.0.3"));
  ok(list.has("2001:db8::7"));
  ok(list.has("2001:DB8:0:0:0:0:0:7"));
  ok(!list.has("2001:db8::6"));
  ok(!list.has("2001:db8::8"));
});

Deno.test("CidrList.has with /0 matches a whole family, ::/0 IPv4 clients too", () => {
  const v4 = _list("0.0.0.0/0");
  ok(v4.has("0.0.0.0"));
  ok(v4.has("255.255.255.255"));
  ok(v4.has("::ffff:1.2.3.4"));
  ok(!v4.has("::1"));
  ok(!v4.has("2001:db8::1"));
  const v6 = _list("::/0");
  ok(v6.has("::"));
  ok(v6.has("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
  ok(v6.has("1.2.3.4"), "an IPv4 address is in ::/0 through its mapped form");
  // Only an IPv6 range holding all of ::ffff:0:0/96 takes IPv4 clients.
  ok(_list("::/80").has("10.0.0.1"));
  ok(!_list("2001:db8::/32").has("10.0.0.1"));
  ok(!_list("::/97").has("10.0.0.1"));
});

Deno.test("CidrList.has matches an IPv4-mapped client as IPv4, and a mapped range IPv4 clients", () => {
  const list = _list("10.0.0.0/8");
  ok(list.has("::ffff:10.200.0.1"));
  ok(list.has("::ffff:a00:1"));
  ok(!list.has("::ffff:11.0.0.0"));
  ok(!list.has("::10.0.0.1"), "an IPv4-compatible address is not an IPv4-mapped one");
  const mapped = _list("::ffff:10.0.0.0/104");
  ok(mapped.has("10.0.0.0"));
  ok(mapped.has("10.255.255.255"));
  ok(mapped.has("::ffff:10.1.2.3"));
  ok(!mapped.has("9.255.255.255"));
  ok(!mapped.has("11.0.0.0"));
});

Deno.test("CidrList.has finds nothing in an empty list, nor text that is not an address", () => {
  const empty = new CidrList([]);
  assertEquals(empty.size, 0);
  ok(!empty.has("127.0.0.1"));
  ok(!empty.has("::1"));
  const all = _list("0.0.0.0/0", "::/0");
  assertEquals(all.size, 2);
  for (const text of ["", "localhost", "/tmp/lb.sock", "1.2.3.4.5", "::g"]) {
    ok(!all.has(text), text);
  }
});

Deno.test("CidrList.hasIp agrees with has on every address", () => {
  const list = _list("10.0.0.0/8", "2001:db8::/32", "::ffff:192.168.0.0/112");
  const random = _random(1);
  for (let i = 0; i < 5000; i++) {
    const address = random() < 0.5
      ? `${random() < 0.5 ? "10" : "192"}.168.${Math.floor(random() * 256)}.1`
      : `2001:db${Math.floor(random() * 16).toString(16)}::${i.toString(16)}`;
    const ip = parseIp(address);
    ok(ip !== undefined);
    assertEquals(list.hasIp(ip), list.has(address), address);
  }
});

Deno.test("sourceKey keys an IPv4 client by its address, an IPv4-mapped one unmapped", () => {
  assertEquals(sourceKey("10.0.0.5"), "10.0.0.5");
  assertEquals(sourceKey("::ffff:10.0.0.5"), "10.0.0.5");
  assertEquals(sourceKey("::ffff:a00:5"), "10.0.0.5");
  assertEquals(sourceKey("10.0.0.5", 128), "10.0.0.5");
});

Deno.test("sourceKey puts two addresses of one IPv6 /64 together and another /64 apart", () => {
  const a = sourceKey("2001:db8:1:2::1");
  const b = sourceKey("2001:db8:1:2:ffff:ffff:ffff:ffff");
  const c = sourceKey("2001:db8:1:3::1");
  assertEquals(b, a);
  notStrictEqual(c, a);
  assertEquals(a, "2001:db8:1:2::/64");
  assertEquals(c, "2001:db8:1:3::/64");
});

Deno.test("sourceKey takes other IPv6 prefix lengths and refuses ones out of range", () => {
  assertEquals(sourceKey("2001:db8:1:2::1", 48), "2001:db8:1::/48");
  assertEquals(sourceKey("2001:db8:1:2::1", 56), "2001:db8:1::/56");
  assertEquals(sourceKey("2001:db8:1:2::1", 128), "2001:db8:1:2::1/128");
  assertEquals(sourceKey("2001:db8:1:2::1", 0), "::/0");
  for (const bad of [-1, 129, 64.5, NaN]) {
    assertThrows(() => sourceKey("::1", bad), RangeError, String(bad));
  }
});

Deno.test("sourceKey keeps text that is not an IP address as its own key", () => {
  assertEquals(sourceKey("localhost"), "localhost");
  assertEquals(sourceKey(""), "");
});
