import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { ANY_HOST } from "../../src/common/address.ts";
import { listen } from "../../src/connection/listen.ts";

function hasIPv6(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("listen on ANY_HOST takes IPv4 clients, and IPv6 ones where the host has IPv6", async () => {
  using listener = listen({ hostname: ANY_HOST, port: 0 });
  const port = listener.addr.port;
  const hosts = hasIPv6() ? ["127.0.0.1", "::1"] : ["127.0.0.1"];
  for (const hostname of hosts) {
    using client = await Deno.connect({ hostname, port });
    using server = await listener.accept();
    await client.write(new Uint8Array([7]));
    const buf = new Uint8Array(1);
    assertEquals(await server.read(buf), 1);
    assertEquals(buf[0], 7);
  }
});

Deno.test("listen does not fall back when the port is in use", () => {
  using taken = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  assertThrows(() => listen({ hostname: ANY_HOST, port: taken.addr.port }), Deno.errors.AddrInUse);
});

Deno.test("listen with reusePort lets listeners join a port this lb holds, never someone else's", () => {
  using first = listen({ hostname: "127.0.0.1", port: 0 }, true);
  using second = listen({ hostname: "127.0.0.1", port: first.addr.port }, true, undefined, true);
  assertEquals(second.addr.port, first.addr.port);
  // Not joining (a second lb started on the same port): refused, though SO_REUSEPORT would share.
  assertThrows(
    () => listen({ hostname: "127.0.0.1", port: first.addr.port }, true),
    Deno.errors.AddrInUse,
  );
});
