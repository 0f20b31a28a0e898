import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { crc32c } from "../../src/proxy_protocol/crc32c.ts";
import { prng, randomBytes, text } from "./_helpers.ts";

Deno.test("crc32c matches the Castagnoli check values", () => {
  assertEquals(crc32c(text("123456789")), 0xe3069283);
  assertEquals(crc32c(new Uint8Array()), 0);
  assertEquals(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  assertEquals(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43); // RFC 3720 B.4: 32 bytes of ones
});

Deno.test("crc32c continues across pieces", () => {
  const data = randomBytes(prng(4960), 1000);
  for (const cut of [0, 1, 499, 999, 1000]) {
    assertEquals(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), crc32c(data));
  }
});
