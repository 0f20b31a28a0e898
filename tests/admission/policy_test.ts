import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { parseCidr } from "../../src/admission/cidr.ts";
import { AccessPolicy } from "../../src/admission/policy.ts";

function _cidrs(...texts: string[]) {
  return texts.map((text) => parseCidr(text, "--allow"));
}

Deno.test("AccessPolicy without lists lets every client in", () => {
  for (const policy of [new AccessPolicy(), new AccessPolicy({ allow: [], deny: [] })]) {
    assertEquals(policy.enabled, false);
    for (const address of ["127.0.0.1", "::1", "::ffff:10.0.0.1", "2001:db8::1", "localhost"]) {
      assertEquals(policy.check(address), "allowed", address);
    }
  }
});

Deno.test("AccessPolicy lets the deny list win over the allow list", () => {
  const policy = new AccessPolicy({
    allow: _cidrs("10.0.0.0/8", "2001:db8::/32"),
    deny: _cidrs("10.0.0.66", "10.9.0.0/16", "2001:db8:bad::/48"),
  });
  assertEquals(policy.enabled, true);
  assertEquals(policy.check("10.0.0.66"), "denied");
  assertEquals(policy.check("10.9.255.255"), "denied");
  assertEquals(policy.check("2001:db8:bad::1"), "denied");
  assertEquals(policy.check("10.0.0.65"), "allowed");
  assertEquals(policy.check("10.10.0.0"), "allowed");
  assertEquals(policy.check("2001:db8:bae::1"), "allowed");
  // In both lists is denied even when allowed by an exact match.
  const both = new AccessPolicy({ allow: _cidrs("10.0.0.1"), deny: _cidrs("10.0.0.0/8") });
  assertEquals(both.check("10.0.0.1"), "denied");
});

Deno.test("AccessPolicy with an allow list refuses every other client as not-allowed", () => {
  const policy = new AccessPolicy({ allow: _cidrs("192.168.0.0/16", "::1") });
  assertEquals(policy.check("192.168.3.4"), "allowed");
  assertEquals(policy.check("::1"), "allowed");
  assertEquals(policy.check("192.169.0.0"), "not-allowed");
  assertEquals(policy.check("127.0.0.1"), "not-allowed");
  assertEquals(policy.check("::2"), "not-allowed");
  assertEquals(policy.check("localhost"), "not-allowed");
});

Deno.test("AccessPolicy with only a deny list lets every other client in", () => {
  const policy = new AccessPolicy({ deny: _cidrs("203.0.113.0/24", "2001:db8::/32") });
  assertEquals(policy.check("203.0.113.9"), "denied");
  assertEquals(policy.check("2001:db8::9"), "denied");
  assertEquals(policy.check("203.0.114.0"), "allowed");
  assertEquals(policy.check("2001:db9::"), "allowed");
  assertEquals(policy.check("localhost"), "allowed");
});

Deno.test("AccessPolicy checks an IPv4-mapped client against IPv4 ranges", () => {
  const policy = new AccessPolicy({
    allow: _cidrs("::ffff:10.0.0.0/104"),
    deny: _cidrs("10.0.0.66"),
  });
  assertEquals(policy.check("::ffff:10.1.2.3"), "allowed");
  assertEquals(policy.check("10.1.2.3"), "allowed");
  assertEquals(policy.check("::ffff:10.0.0.66"), "denied");
  assertEquals(policy.check("::ffff:11.0.0.1"), "not-allowed");
});
