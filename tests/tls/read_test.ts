import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { concat, readAll, tcpPair, writeAll } from "../_helpers.ts";
import {
  type HelloOk,
  MAX_HELLO_BYTES,
  MAX_HELLO_RECORD_BYTES,
  parseClientHello,
} from "../../src/tls/client_hello.ts";
import {
  ClientHelloError,
  type ClientHelloErrorReason,
  readClientHello,
} from "../../src/tls/read.ts";
import {
  alpn,
  bytes,
  captureHello,
  hello,
  helloMessage,
  helloMessageOfLength,
  onPath,
  padding,
  prng,
  record,
  records,
  sni,
  supportedVersions,
  u16,
  u24,
} from "./_hello.ts";

const HELLO = hello({
  extensions: [sni("api.example.com"), alpn("h2"), supportedVersions(0x0304)],
});

function isReason(reason: ClientHelloErrorReason) {
  return (error: unknown) => {
    ok(error instanceof ClientHelloError, `not a ClientHelloError: ${error}`);
    assertEquals([error.name, error.reason], ["ClientHelloError", reason]);
    return true;
  };
}

/** A fake connection that hands out `data` in reads of at most `chunk` bytes, then EOF. */
function fakeConn(data: Uint8Array, chunk = 1) {
  let at = 0;
  const sizes: number[] = [];
  const conn = {
    read(buf: Uint8Array): Promise<number | null> {
      sizes.push(buf.length);
      if (at === data.length) return Promise.resolve(null);
      const n = Math.min(chunk, buf.length, data.length - at);
      buf.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
  return { conn: conn as unknown as Deno.Conn, sizes };
}

Deno.test("readClientHello assembles a hello sent one byte per write, and returns every byte", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  using _receiver = receiver;
  const sent = records(helloMessage({ extensions: [sni("api.example.com")] }), [3, 40]);
  const writing = (async () => {
    for (let i = 0; i < sent.length; i++) await writeAll(sender, sent.subarray(i, i + 1));
  })();
  const { hello: got, bytes: read } = await readClientHello(receiver, { timeoutMs: 5000 });
  await writing;
  assertEquals(got.serverName, "api.example.com");
  assertEquals(got.length, sent.length);
  assertEquals(read, sent);
});

Deno.test("readClientHello parses after every read and stops reading at the hello's end", async () => {
  const fake = fakeConn(bytes(HELLO, "data that must stay unread"));
  const got = await readClientHello(fake.conn, { timeoutMs: 5000 });
  assertEquals(got.bytes, HELLO);
  assertEquals(fake.sizes.length, HELLO.length);
});

Deno.test("readClientHello returns the bytes that came with the hello, so nothing is lost", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  using _receiver = receiver;
  const after = bytes(record(Uint8Array.of(1), 20, 0x0303), record(bytes("early data"), 23));
  await writeAll(sender, bytes(HELLO, after));
  const got = await readClientHello(receiver, { timeoutMs: 5000 });
  assertEquals(got.hello.length, HELLO.length);
  await sender.closeWrite();
  // Replaying `bytes` and then the rest of the stream gives exactly what was sent.
  assertEquals(concat([got.bytes, await readAll(receiver)]), bytes(HELLO, after));
});

Deno.test("readClientHello grows its buffer for a large hello and never past the bound", async () => {
  const message = helloMessage({ extensions: [sni("api.example.com"), padding(12_000)] });
  const sent = records(message, [5000]);
  const fake = fakeConn(sent, 4096);
  const got = await readClientHello(fake.conn, { timeoutMs: 5000 });
  assertEquals([got.hello.serverName, got.bytes], ["api.example.com", sent]);
  ok(fake.sizes[0] === 1024, `first read of ${fake.sizes[0]} bytes`);
  // The largest hello in the most records fills the bound exactly: the reader finds room for it.
  const biggest = records(helloMessageOfLength(MAX_HELLO_BYTES), new Array(63).fill(1));
  assertEquals(biggest.length, MAX_HELLO_RECORD_BYTES);
  const fake2 = fakeConn(bytes(biggest, "more"), 65536);
  assertEquals((await readClientHello(fake2.conn, { timeoutMs: 5000 })).bytes, biggest);
  ok(fake2.sizes.every((size) => size <= MAX_HELLO_RECORD_BYTES), `reads of ${fake2.sizes}`);
});

Deno.test("readClientHello refuses a too-large hello at its header, without reading the rest", async () => {
  const header = bytes(22, u16(0x0301), u16(0x4000), 1, u24(MAX_HELLO_BYTES));
  const fake = fakeConn(bytes(header, new Uint8Array(20_000)), 9);
  await rejects(readClientHello(fake.conn, { timeoutMs: 5000 }), isReason("too-large"));
  assertEquals(fake.sizes.length, 1);
});

Deno.test("readClientHello refuses an HTTP request at once", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  using _receiver = receiver;
  await writeAll(sender, bytes("G"));
  await rejects(readClientHello(receiver, { timeoutMs: 60_000 }), isReason("not-tls"));
});

Deno.test("readClientHello refuses with the parser's reason and message", async () => {
  const inner = bytes(record(helloMessage().subarray(0, 10)), record(Uint8Array.of(1), 20));
  const fake = fakeConn(inner, 1000);
  await rejects(readClientHello(fake.conn, { timeoutMs: 5000 }), (error) => {
    isReason("malformed")(error);
    ok(error instanceof Error && error.message.startsWith("Cannot parse ClientHello as "));
    return true;
  });
});

Deno.test("readClientHello times out when half a hello arrives and the sender stalls", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  await writeAll(sender, HELLO.subarray(0, 20));
  const started = performance.now();
  await rejects(readClientHello(receiver, { timeoutMs: 100 }), isReason("timeout"));
  ok(performance.now() - started >= 90, "gave up before the timeout");
  receiver.close(); // as the caller must: it ends the pending read
});

Deno.test("readClientHello reports closed on EOF mid-hello and before any byte", async () => {
  for (const sent of [HELLO.subarray(0, 30), new Uint8Array()]) {
    const [sender, receiver] = await tcpPair();
    using _receiver = receiver;
    await writeAll(sender, sent);
    sender.close();
    await rejects(readClientHello(receiver, { timeoutMs: 5000 }), isReason("closed"));
  }
});

Deno.test("readClientHello reports closed with the cause when the read fails", async () => {
  const failing = {
    read: () => Promise.reject(new Deno.errors.ConnectionReset("reset by peer")),
  } as unknown as Deno.Conn;
  await rejects(readClientHello(failing, { timeoutMs: 5000 }), (error) => {
    isReason("closed")(error);
    ok((error as Error).cause instanceof Deno.errors.ConnectionReset);
    return true;
  });
});

Deno.test("readClientHello rejects with the signal's reason when aborted", async () => {
  const [sender, receiver] = await tcpPair();
  using _sender = sender;
  const controller = new AbortController();
  const reading = readClientHello(receiver, { timeoutMs: 60_000, signal: controller.signal });
  const reason = new Error("shutting down");
  controller.abort(reason);
  await rejects(reading, (error) => error === reason);
  receiver.close();
  const aborted = AbortSignal.abort(reason);
  await rejects(readClientHello(receiver, { timeoutMs: 1, signal: aborted }), (e) => e === reason);
});

Deno.test("readClientHello refuses a timeout outside 1 to 2^31 - 1 ms", async () => {
  const fake = fakeConn(HELLO);
  for (const timeoutMs of [0, -1, 1.5, NaN, Infinity, 2 ** 31]) {
    await rejects(readClientHello(fake.conn, { timeoutMs }), RangeError);
  }
  assertEquals(fake.sizes.length, 0);
});

/** Runs `fn` while counting the timers started and not yet fired or cleared. */
async function countingTimers(
  fn: () => Promise<unknown>,
): Promise<{ started: number; live: number }> {
  type Timer = ReturnType<typeof setTimeout>;
  const { setTimeout: realSet, clearTimeout: realClear } = globalThis;
  const live = new Set<Timer>();
  let started = 0;
  const countedSet = (callback: () => void, ms?: number): Timer => {
    started++;
    const id = realSet(() => {
      live.delete(id);
      callback();
    }, ms);
    live.add(id);
    return id;
  };
  globalThis.setTimeout = countedSet as unknown as typeof setTimeout;
  globalThis.clearTimeout = ((id: Timer | undefined) => {
    if (id !== undefined) live.delete(id);
    realClear(id);
  }) as typeof clearTimeout;
  try {
    await fn().catch(() => {});
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
  return { started, live: live.size };
}

Deno.test("readClientHello starts one timer and clears it, on success and on refusal", async () => {
  const outcomes = [
    fakeConn(HELLO, 7).conn,
    fakeConn(bytes("GET / HTTP/1.1\r\n\r\n")).conn,
    fakeConn(HELLO.subarray(0, 30), 100).conn,
  ];
  for (const conn of outcomes) {
    const timers = await countingTimers(() => readClientHello(conn, { timeoutMs: 60_000 }));
    assertEquals(timers, { started: 1, live: 0 });
  }
});

/** Checks a captured hello the way the table tests check built ones. */
function checkCaptured(captured: { hello: HelloOk; bytes: Uint8Array }): void {
  const { hello: got, bytes: read } = captured;
  assertEquals(parseClientHello(read), got);
  for (let n = 0; n < got.length; n++) {
    assertEquals(parseClientHello(read.subarray(0, n)).status, "incomplete", `prefix ${n}`);
  }
  // Re-framed in 2-5 records, the same hello comes out.
  const random = prng(got.length);
  const message = read.subarray(5, got.length);
  for (let pieces = 2; pieces <= 5; pieces++) {
    const sizes = Array.from(
      { length: pieces - 1 },
      () => 1 + Math.floor(random() * (message.length / pieces)),
    );
    const split = records(message, sizes, got.recordVersion);
    assertEquals(parseClientHello(split), { ...got, length: split.length });
  }
}

const OPENSSL = onPath("openssl");
const CURL = onPath("curl");
const S_CLIENT = ["s_client", "-connect", "127.0.0.1:{port}"];

Deno.test({
  name: "readClientHello reads openssl s_client's TLS 1.3 hello with SNI and ALPN",
  ignore: !OPENSSL,
  fn: async () => {
    const captured = await captureHello("openssl", [
      ...S_CLIENT,
      "-tls1_3",
      "-servername",
      "api.example.com",
      "-alpn",
      "h2,http/1.1",
    ]);
    const { hello: got } = captured;
    assertEquals([got.serverName, got.alpn, got.legacyVersion], [
      "api.example.com",
      ["h2", "http/1.1"],
      0x0303,
    ]);
    assertEquals(got.supportedVersions, [0x0304]);
    checkCaptured(captured);
  },
});

Deno.test({
  name: "readClientHello reads openssl s_client's TLS 1.2 hello with SNI",
  ignore: !OPENSSL,
  fn: async () => {
    const captured = await captureHello("openssl", [
      ...S_CLIENT,
      "-tls1_2",
      "-servername",
      "api.example.com",
    ]);
    assertEquals(captured.hello.serverName, "api.example.com");
    assertEquals(captured.hello.legacyVersion, 0x0303);
    assertEquals(captured.hello.supportedVersions, undefined);
    checkCaptured(captured);
  },
});

Deno.test({
  name: "readClientHello reads openssl s_client's TLS 1.0 hello",
  ignore: !OPENSSL,
  fn: async () => {
    const captured = await captureHello("openssl", [
      ...S_CLIENT,
      "-tls1",
      "-cipher",
      "DEFAULT@SECLEVEL=0",
      "-servername",
      "old.example.com",
    ]);
    assertEquals([captured.hello.serverName, captured.hello.legacyVersion], [
      "old.example.com",
      0x0301,
    ]);
    checkCaptured(captured);
  },
});

Deno.test({
  name: "readClientHello reads openssl s_client's hello without SNI as serverName null",
  ignore: !OPENSSL,
  fn: async () => {
    for (const flags of [[], ["-noservername"]]) {
      const captured = await captureHello("openssl", [...S_CLIENT, ...flags]);
      assertEquals(captured.hello.serverName, null, `flags ${flags}`);
      checkCaptured(captured);
    }
  },
});

Deno.test({
  name: "readClientHello normalizes a real upper-case name with a trailing dot, drops an IP",
  ignore: !OPENSSL,
  fn: async () => {
    const upper = await captureHello("openssl", [...S_CLIENT, "-servername", "API.Example.COM."]);
    assertEquals(upper.hello.serverName, "api.example.com");
    const ip = await captureHello("openssl", [...S_CLIENT, "-servername", "10.1.2.3"]);
    assertEquals(ip.hello.serverName, null);
    ok(new TextDecoder().decode(ip.bytes).includes("10.1.2.3"), "openssl sent no IP after all");
  },
});

Deno.test({
  name: "readClientHello reads curl's hello for a --resolve'd name",
  ignore: !CURL,
  fn: async () => {
    const captured = await captureHello("curl", [
      "--silent",
      "--max-time",
      "10",
      "--resolve",
      "api.example.com:{port}:127.0.0.1",
      "https://api.example.com:{port}/",
    ]);
    assertEquals(captured.hello.serverName, "api.example.com");
    ok(captured.hello.alpn?.includes("http/1.1"), `ALPN ${captured.hello.alpn}`);
    checkCaptured(captured);
  },
});
