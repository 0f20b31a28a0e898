import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { formatAddr, formatHostPort } from "../../src/common/address.ts";
import { parseHostPort } from "../../src/config/host_port.ts";

Deno.test("formatHostPort brackets IPv6 so that parseHostPort reads it back", () => {
  assertEquals(formatHostPort({ hostname: "::1", port: 9 }), "[::1]:9");
  assertEquals(formatHostPort({ hostname: "127.0.0.1", port: 80 }), "127.0.0.1:80");
  assertEquals(parseHostPort(formatHostPort({ hostname: "::1", port: 9 }), "-p", "x"), {
    hostname: "::1",
    port: 9,
  });
});

Deno.test("formatAddr formats a real socket address", () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const addr = listener.addr as Deno.NetAddr;
  assertEquals(formatAddr(addr), `127.0.0.1:${addr.port}`);
});

Deno.test("formatAddr shows an IPv4 client of a dual-stack listener as plain IPv4", () => {
  const addr = (hostname: string): Deno.NetAddr => ({ transport: "tcp", hostname, port: 5123 });
  assertEquals(formatAddr(addr("::ffff:10.0.0.5")), "10.0.0.5:5123");
  assertEquals(formatAddr(addr("::1")), "[::1]:5123");
  assertEquals(formatAddr(addr("127.0.0.1")), "127.0.0.1:5123");
});
