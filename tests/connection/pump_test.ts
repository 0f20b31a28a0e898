import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import {
  MAX_BUFFER,
  MAX_BUFFER_COUNT,
  type Meter,
  MID_BUFFER,
  MIN_BUFFER,
  pump,
} from "../../src/connection/pump.ts";
import {
  closeQuietly,
  concat,
  delay,
  digestAll,
  pseudoRandomBytes,
  readAll,
  readExactly,
  sha256,
  tcpPair,
  withTimeout,
  writeAll,
} from "../_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Two loopback pairs, as a proxy sees them: `client` talks to `front`, and
 * `back` talks to `server`. The pump under test runs between front and back.
 */
async function proxyLine() {
  const [client, front] = await tcpPair();
  const [back, server] = await tcpPair();
  return {
    client,
    front,
    back,
    server,
    [Symbol.dispose]() {
      for (const conn of [client, front, back, server]) closeQuietly(conn);
    },
  };
}

/**
 * A source that records the size of every buffer it is asked to fill and
 * answers what `next` returns for it (bytes read, or null for EOF); a
 * scripted stand-in for a socket, so that which reads come back full is exact.
 */
function scriptedSource(next: (size: number) => number | null | Promise<number | null>) {
  const sizes: number[] = [];
  const conn = {
    read: async (buf: Uint8Array) => {
      sizes.push(buf.length);
      return await next(buf.length);
    },
  } as unknown as Deno.Conn;
  return { conn, sizes };
}

/** A destination that takes every write whole. */
const sink = {
  write: (chunk: Uint8Array) => Promise.resolve(chunk.length),
  closeWrite: () => Promise.resolve(),
} as unknown as Deno.Conn;

Deno.test("pump copies bytes exactly, counts them, and passes EOF on as a FIN", async () => {
  using line = await proxyLine();
  const data = pseudoRandomBytes(4 * 1024 * 1024, 7);
  const meter: Meter = { bytes: 0 };
  const pumping = pump(line.front, line.back, meter);
  const [, got] = await Promise.all([
    writeAll(line.client, data).then(() => line.client.closeWrite()),
    digestAll(line.server), // ends only if the pump sends a FIN
  ]);
  await pumping;
  assertEquals(got, { bytes: data.length, sha256: sha256(data) });
  assertEquals(meter.bytes, data.length);
});

Deno.test("pump finishes partial writes when the reader is slow", async () => {
  using line = await proxyLine();
  const data = pseudoRandomBytes(8 * 1024 * 1024, 11);
  // Spy on the real socket's writes: socket buffers fill while the reader
  // sleeps, so some writes take only part of the chunk.
  const realWrite = line.back.write.bind(line.back);
  let partial = 0;
  line.back.write = async (chunk: Uint8Array) => {
    const n = await realWrite(chunk);
    if (n < chunk.length) partial++;
    return n;
  };
  const pumping = pump(line.front, line.back, { bytes: 0 });
  const reading = (async () => {
    const out = new Uint8Array(data.length);
    let got = 0;
    const buf = new Uint8Array(16 * 1024);
    for (let i = 0;; i++) {
      if (i % 64 === 0) await delay(5);
      const n = await line.server.read(buf);
      if (n === null) break;
      out.set(buf.subarray(0, n), got);
      got += n;
    }
    return out.subarray(0, got);
  })();
  await writeAll(line.client, data);
  await line.client.closeWrite();
  const got = await reading;
  await pumping;
  ok(got.length === data.length && sha256(got) === sha256(data), "bytes differ");
  console.log(`partial writes seen: ${partial}`);
});

Deno.test("pump writes the rest of a chunk after a short write", async () => {
  using line = await proxyLine();
  const data = pseudoRandomBytes(MAX_BUFFER * 4, 3);
  // A real socket whose write takes at most 1000 bytes per call, as a
  // kernel does when its send buffer is nearly full.
  const realWrite = line.back.write.bind(line.back);
  line.back.write = (chunk: Uint8Array) => realWrite(chunk.subarray(0, 1000));
  const pumping = pump(line.front, line.back, { bytes: 0 });
  const [, got] = await Promise.all([
    writeAll(line.client, data).then(() => line.client.closeWrite()),
    readAll(line.server),
  ]);
  await pumping;
  assertEquals(got.length, data.length);
  ok(sha256(got) === sha256(data), "bytes differ");
});

Deno.test("pump half-close: one direction ends while the other keeps flowing", async () => {
  using line = await proxyLine();
  const up = pump(line.front, line.back, { bytes: 0 });
  const down = pump(line.back, line.front, { bytes: 0 });
  // The client sends a request and shuts its write side.
  await writeAll(line.client, encoder.encode("request"));
  await line.client.closeWrite();
  assertEquals(decoder.decode(await readAll(line.server)), "request");
  await withTimeout(up, 5000, "the up pump ends on EOF");
  // The server still answers, in several writes, after seeing EOF.
  for (const part of ["reply ", "after ", "EOF"]) {
    await writeAll(line.server, encoder.encode(part));
    await delay(10);
  }
  await line.server.closeWrite();
  assertEquals(decoder.decode(await readAll(line.client)), "reply after EOF");
  await withTimeout(down, 5000, "the down pump ends on EOF");
});

Deno.test("pump half-close: the server may finish first and still receive", async () => {
  using line = await proxyLine();
  const up = pump(line.front, line.back, { bytes: 0 });
  const down = pump(line.back, line.front, { bytes: 0 });
  await writeAll(line.server, encoder.encode("banner"));
  await line.server.closeWrite();
  assertEquals(decoder.decode(await readAll(line.client)), "banner");
  await withTimeout(down, 5000, "the down pump ends on EOF");
  await writeAll(line.client, encoder.encode("late upload"));
  await line.client.closeWrite();
  assertEquals(decoder.decode(await readAll(line.server)), "late upload");
  await up;
});

Deno.test("pump delivers bytes written just before the client closes", async () => {
  using line = await proxyLine();
  const data = pseudoRandomBytes(1024 * 1024, 5);
  const pumping = pump(line.front, line.back, { bytes: 0 });
  await writeAll(line.client, data);
  line.client.close(); // full close at once, no closeWrite first
  const got = await digestAll(line.server);
  await pumping;
  assertEquals(got, { bytes: data.length, sha256: sha256(data) });
});

Deno.test("pump passes a source reset on as a FIN, so the destination is told", async () => {
  using line = await proxyLine();
  const pumping = pump(line.front, line.back, { bytes: 0 });
  await writeAll(line.client, encoder.encode("last words"));
  // Closing a socket with unread received data sends a RST. Deno reads a
  // reset as end of stream, so the pump must end and half-close its
  // destination rather than wait: the backend learns the client is gone.
  await writeAll(line.front, encoder.encode("unread"));
  await readExactly(line.client, 1); // "unread" has arrived; the rest stays unread
  const head = await readExactly(line.server, 10); // the pump has forwarded "last words"
  line.client.close();
  await withTimeout(pumping.catch(() => {}), 5000, "the pump ends on a reset source");
  assertEquals(decoder.decode(concat([head, await readAll(line.server)])), "last words");
});

Deno.test("pump rejects when the destination resets", async () => {
  using line = await proxyLine();
  await writeAll(line.back, encoder.encode("unread"));
  await readExactly(line.server, 1); // "unread" has arrived; the rest stays unread
  line.server.close(); // RST: it had unread data
  await line.back.read(new Uint8Array(1)).catch(() => null); // back has seen the reset
  const pumping = pump(line.front, line.back, { bytes: 0 });
  const chunk = new Uint8Array(64 * 1024);
  const writing = (async () => {
    try {
      // Keep writing until the pump fails and its source gets closed.
      for (let i = 0; i < 200; i++) await writeAll(line.client, chunk);
    } catch {
      // The test closes the client side below.
    }
  })();
  await withTimeout(rejects(pumping), 5000, "the pump rejects on a write to a reset peer");
  line.client.close();
  line.front.close();
  await writing;
});

Deno.test("pump ends when its sockets are closed under a pending read", async () => {
  using line = await proxyLine();
  const pumping = pump(line.front, line.back, { bytes: 0 }); // its first read is in flight now
  line.front.close();
  line.back.close();
  // Either outcome ends it; what matters is that it does not hang.
  await withTimeout(pumping.catch(() => {}), 5000, "the pump ends after close");
  // And the peer of the destination is not left hanging.
  assertEquals(await line.server.read(new Uint8Array(1)), null);
});

Deno.test("pump reads into 1 KiB, 64 KiB, then 1 MiB while reads fill them, and back to 1 KiB after one does not", async () => {
  // What the socket holds at each read: a burst that fills every size on the
  // way up, ends 5 bytes into a largest buffer, then a small message.
  const bursts = [MIN_BUFFER + MID_BUFFER + 2 * MAX_BUFFER + 5, 100];
  const src = scriptedSource((size) => {
    if (bursts.length === 0) return null;
    const n = Math.min(size, bursts[0]!);
    bursts[0]! -= n;
    if (bursts[0] === 0) bursts.shift();
    return n;
  });
  const meter: Meter = { bytes: 0 };
  await pump(src.conn, sink, meter);
  assertEquals(src.sizes, [
    MIN_BUFFER,
    MID_BUFFER,
    MAX_BUFFER,
    MAX_BUFFER,
    MAX_BUFFER, // 5 bytes: drained, so the next read is small
    MIN_BUFFER, // 100 bytes
    MIN_BUFFER, // EOF
  ]);
  assertEquals(meter.bytes, MIN_BUFFER + MID_BUFFER + 2 * MAX_BUFFER + 5 + 100);
});

Deno.test("pump stays at 64 KiB while every 1 MiB buffer is in use, and they are shared again once given back", async () => {
  const { promise: open, resolve: openGate } = Promise.withResolvers<void>();
  // Each source fills its first two buffers, then holds the third until the
  // gate opens: by then every pump has taken the largest buffer it could get.
  const held: Promise<void>[] = [];
  const start = () => {
    const { promise: reached, resolve } = Promise.withResolvers<void>();
    held.push(reached);
    let reads = 0;
    const src = scriptedSource(async (size) => {
      if (++reads < 3) return size;
      resolve();
      await open;
      return null;
    });
    return { src, pumping: pump(src.conn, sink, { bytes: 0 }) };
  };
  const pumps = Array.from({ length: MAX_BUFFER_COUNT + 1 }, start);
  await withTimeout(Promise.all(held), 5000, "every pump reaches its third read");
  const third = pumps.map((p) => p.src.sizes[2]!);
  assertEquals(third.filter((size) => size === MAX_BUFFER).length, MAX_BUFFER_COUNT);
  assertEquals(third.filter((size) => size === MID_BUFFER).length, 1);
  openGate();
  await Promise.all(pumps.map((p) => p.pumping));
  // Given back: a new pump gets one.
  const next = start();
  await withTimeout(held.at(-1)!, 5000, "the next pump reaches its third read");
  assertEquals(next.src.sizes, [MIN_BUFFER, MID_BUFFER, MAX_BUFFER]);
  await next.pumping;
});

Deno.test("pump grows from an early read's buffer as from its own small one", async () => {
  // The early read filled its buffer; the socket holds 64 KiB more, then ends.
  let left = MID_BUFFER;
  const src = scriptedSource((size) => {
    if (left === 0) return null;
    const n = Math.min(size, left);
    left -= n;
    return n;
  });
  const first = { buf: new Uint8Array(MIN_BUFFER), read: Promise.resolve(MIN_BUFFER) };
  const meter: Meter = { bytes: 0 };
  await pump(src.conn, sink, meter, first);
  assertEquals(src.sizes, [MID_BUFFER, MAX_BUFFER]);
  assertEquals(meter.bytes, MIN_BUFFER + MID_BUFFER);
});
