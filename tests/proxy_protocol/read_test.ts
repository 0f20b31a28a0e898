import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { encodeProxyV1, encodeProxyV2 } from "../../src/proxy_protocol/encode.ts";
import { ProxyHeaderError, readProxyHeader } from "../../src/proxy_protocol/read.ts";
import type { ProxyHeaderErrorReason } from "../../src/proxy_protocol/header.ts";
import { bytes, readAll, tcpPair, text, writeAll } from "./_helpers.ts";

const client = { hostname: "10.0.0.5", port: 5123 };
const frontend = { hostname: "10.0.0.1", port: 443 };
const expectedV2 = {
  version: 2,
  command: "PROXY",
  family: "INET",
  transport: "stream",
  source: client,
  destination: frontend,
} as const;

function isReason(reason: ProxyHeaderErrorReason) {
  return (error: unknown) => {
    ok(error instanceof ProxyHeaderError, `not a ProxyHeaderError: ${error}`);
    assertEquals([error.name, error.reason], ["ProxyHeaderError", reason]);
    return true;
  };
}

/** A fake connection that hands out `data` one byte per read, then EOF. */
function oneBytePerRead(data: Uint8Array): { conn: Deno.Conn; reads: () => number } {
  let at = 0;
  let reads = 0;
  const conn = {
    read(buf: Uint8Array): Promise<number | null> {
      reads++;
      if (at === data.length) return Promise.resolve(null);
      buf[0] = data[at++]!;
      return Promise.resolve(1);
    },
  };
  return { conn: conn as unknown as Deno.Conn, reads: () => reads };
}

Deno.test("readProxyHeader assembles a header sent in 1-byte writes", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  using _receiver = receiver;
  const header = encodeProxyV2(client, frontend, { authority: "example.com" });
  const writing = (async () => {
    for (let i = 0; i < header.length; i++) await writeAll(sender, header.subarray(i, i + 1));
    await writeAll(sender, text("hello"));
  })();
  const got = await readProxyHeader(receiver, { timeoutMs: 5000 });
  await writing;
  assertEquals(got.header, { ...expectedV2, authority: "example.com" });
  // The data is whatever came in the same reads plus the rest of the stream.
  await sender.closeWrite();
  assertEquals(bytes(got.rest, await readAll(receiver)), text("hello"));
});

Deno.test("readProxyHeader parses after every read and stops reading at the header's end", async () => {
  const header = text("PROXY TCP4 10.0.0.5 10.0.0.1 5123 443\r\n");
  const fake = oneBytePerRead(bytes(header, "data that must stay unread"));
  const got = await readProxyHeader(fake.conn, { timeoutMs: 5000 });
  assertEquals(got.header, { ...expectedV2, version: 1 });
  assertEquals(got.rest.length, 0);
  assertEquals(fake.reads(), header.length);
});

Deno.test("readProxyHeader returns the data that came with the header in one write", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  using _receiver = receiver;
  const data = text("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
  await writeAll(sender, bytes(encodeProxyV1(client, frontend), data));
  const got = await readProxyHeader(receiver, { timeoutMs: 5000 });
  assertEquals(got.header, { ...expectedV2, version: 1 });
  await sender.closeWrite();
  assertEquals(bytes(got.rest, await readAll(receiver)), data);
});

Deno.test("readProxyHeader reads a v2 header larger than its first buffer", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  using _receiver = receiver;
  const authority = "a".repeat(40_000);
  const data = new Uint8Array(100_000).fill(7);
  const writing = writeAll(sender, bytes(encodeProxyV2(client, frontend, { authority }), data))
    .then(() => sender.closeWrite());
  const got = await readProxyHeader(receiver, { timeoutMs: 5000 });
  assertEquals(got.header, { ...expectedV2, authority });
  assertEquals(bytes(got.rest, await readAll(receiver)), data);
  await writing;
});

Deno.test("readProxyHeader times out when half a header arrives and the sender stalls", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  const header = encodeProxyV1(client, frontend);
  await writeAll(sender, header.subarray(0, 20));
  const started = performance.now();
  await rejects(readProxyHeader(receiver, { timeoutMs: 100 }), isReason("timeout"));
  ok(performance.now() - started >= 90, "gave up before the timeout");
  receiver.close(); // as the caller must: it ends the pending read
});

Deno.test("readProxyHeader reports closed on EOF mid-header", async () => {
  const [sender, receiver] = await tcpPair();
  using _receiver = receiver;
  await writeAll(sender, encodeProxyV2(client, frontend).subarray(0, 20));
  sender.close();
  await rejects(readProxyHeader(receiver, { timeoutMs: 5000 }), isReason("closed"));
});

Deno.test("readProxyHeader refuses a non-PROXY first byte without waiting", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  using _receiver = receiver;
  await writeAll(sender, text("G"));
  await rejects(readProxyHeader(receiver, { timeoutMs: 60_000 }), isReason("not-proxy"));
});

Deno.test("readProxyHeader refuses a second header that arrives with the first", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  using _receiver = receiver;
  const header = encodeProxyV1(client, frontend);
  await writeAll(sender, bytes(header, header));
  await rejects(readProxyHeader(receiver, { timeoutMs: 5000 }), isReason("repeated"));
});

Deno.test("readProxyHeader rejects with the signal's reason when aborted", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  const controller = new AbortController();
  const reading = readProxyHeader(receiver, { timeoutMs: 60_000, signal: controller.signal });
  const reason = new Error("shutting down");
  controller.abort(reason);
  await rejects(reading, (error) => error === reason);
  receiver.close();
  const aborted = AbortSignal.abort(reason);
  await rejects(readProxyHeader(receiver, { timeoutMs: 1, signal: aborted }), (e) => e === reason);
});

Deno.test("readProxyHeader refuses a timeout outside 1 to 2^31 - 1 ms", async () => {
  const fake = oneBytePerRead(new Uint8Array());
  for (const timeoutMs of [0, -1, 1.5, NaN, Infinity, 2 ** 31]) {
    await rejects(readProxyHeader(fake.conn, { timeoutMs }), RangeError);
  }
  assertEquals(fake.reads(), 0);
});
