import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import {
  type AccessEntry,
  accessEntry,
  AccessLog,
  formatEntry,
} from "../../src/observability/access_log.ts";
import { Session } from "../../src/connection/session.ts";
import { startLb } from "../../support/lb_process.ts";
import {
  closeQuietly,
  freePort,
  LOOPBACK,
  pseudoRandomBytes,
  readExactly,
  startEchoServer,
  tcpPair,
  waitUntil,
  withTimeout,
  writeAll,
} from "../_helpers.ts";

const ENTRY: AccessEntry = {
  time: "2026-01-01T00:00:00.000Z",
  client: "127.0.0.1:50312",
  frontend: "main",
  backend: "127.0.0.1:8101",
  bytesIn: 12,
  bytesOut: 345,
  durationMs: 20,
  end: "eof",
};

function parseJsonLines(lines: readonly string[]): AccessEntry[] {
  return lines.filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as AccessEntry);
}

/** Sends `size` bytes through lb in chunks, reads the echo back, closes; returns the local address. */
async function echoThrough(port: number, size: number): Promise<string> {
  using conn = await Deno.connect({ hostname: LOOPBACK, port });
  const local = `${conn.localAddr.hostname}:${conn.localAddr.port}`;
  const data = pseudoRandomBytes(size, 7);
  const reading = readExactly(conn, size);
  for (let at = 0; at < size; at += 1000) {
    await writeAll(conn, data.subarray(at, Math.min(size, at + 1000)));
  }
  assertEquals(await withTimeout(reading, 10_000, "echo"), data);
  await conn.closeWrite();
  assertEquals(await conn.read(new Uint8Array(1)), null);
  return local;
}

Deno.test("formatEntry writes text as one space-separated line and JSON as one object", () => {
  assertEquals(
    formatEntry(ENTRY, "text"),
    "2026-01-01T00:00:00.000Z 127.0.0.1:50312 main 127.0.0.1:8101 in=12 out=345 20ms eof",
  );
  assertEquals(formatEntry({ ...ENTRY, backend: null }, "text").split(" ")[3], "-");
  const json = formatEntry(ENTRY, "json");
  assert(!json.includes("\n"));
  assertEquals(JSON.parse(json), ENTRY);
});

Deno.test("accessEntry takes bytes, backend and end reason from the session", async () => {
  const [client, server] = await tcpPair();
  const session = new Session(server, "web");
  session.up.bytes = 10;
  session.down.bytes = 20;
  session.abort("timeout");
  closeQuietly(client);
  const entry = accessEntry(session, session.started + 1500);
  assertEquals(entry.frontend, "web");
  assertEquals(entry.backend, null);
  assertEquals([entry.bytesIn, entry.bytesOut, entry.durationMs, entry.end], [
    10,
    20,
    1500,
    "timeout",
  ]);
  assertEquals(entry.client, session.clientAddr);
});

Deno.test("AccessLog appends to a file, keeps what was there, and writes on close", async () => {
  const path = await Deno.makeTempFile({ suffix: ".log" });
  try {
    await Deno.writeTextFile(path, "old line\n");
    const log = await AccessLog.open({ format: "json", file: path, flushMs: 60_000 });
    const [client, server] = await tcpPair();
    const session = new Session(server, "main");
    session.up.bytes = 5;
    session.abort("eof");
    closeQuietly(client);
    log.record(session);
    log.record(session);
    // Buffered: nothing written until a flush (the timer is a minute away).
    assertEquals(await Deno.readTextFile(path), "old line\n");
    await log.close();
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
    assertEquals(lines.length, 3);
    assertEquals(lines[0], "old line");
    assertEquals(parseJsonLines(lines.slice(1)).map((e) => e.bytesIn), [5, 5]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("AccessLog drops and counts lines past maxBuffer instead of growing", async () => {
  const path = await Deno.makeTempFile({ suffix: ".log" });
  try {
    const log = await AccessLog.open({
      format: "text",
      file: path,
      flushMs: 60_000,
      maxBuffer: 300,
    });
    const [client, server] = await tcpPair();
    const session = new Session(server, "main");
    session.abort("eof");
    closeQuietly(client);
    for (let i = 0; i < 10; i++) log.record(session);
    await log.close();
    const written = (await Deno.readTextFile(path)).trimEnd().split("\n").length;
    assert(written >= 1 && written < 10, `${written} lines written`);
    assertEquals(log.dropped, 10 - written);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("AccessLog with format off opens no file and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const log = await AccessLog.open({ format: "off", file: `${dir}/never.log` });
    await log.close();
    assertEquals([...Deno.readDirSync(dir)].length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lb --log json writes one line per connection with the bytes sent each way", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb(["-f", "127.0.0.1:0", "-p", String(echo.port), "--log", "json"]);
  const sizes = [1, 50_000, 300_000];
  const locals: string[] = [];
  for (const size of sizes) locals.push(await echoThrough(lb.port, size));
  // Once lb has exited every line is flushed and read: any extra one would show.
  assertEquals((await lb.stop()).code, 0);
  // Each thread writes a line as its connection ends: across threads the order may differ.
  const entries = parseJsonLines(lb.stdout).sort((a, b) => a.bytesIn - b.bytesIn);
  assertEquals(entries.length, sizes.length, lb.stdout.join("\n"));
  entries.forEach((entry, i) => {
    assertEquals(entry.bytesIn, sizes[i]);
    assertEquals(entry.bytesOut, sizes[i]);
    assertEquals(entry.end, "eof");
    assertEquals(entry.frontend, "main");
    assertEquals(entry.backend, `127.0.0.1:${echo.port}`);
    assertEquals(entry.client, locals[i]);
    assert(entry.durationMs >= 0 && entry.durationMs < 30_000);
    assert(Math.abs(Date.parse(entry.time) - Date.now()) < 60_000);
  });
});

Deno.test("lb --log json records no-backend and timeout endings", async () => {
  await using echo = startEchoServer();
  const dead = freePort();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(dead),
    "--log",
    "json",
    "--retries",
    "0",
  ]);
  {
    using conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    assertEquals(await withTimeout(conn.read(new Uint8Array(16)), 10_000, "close"), null);
  }
  await waitUntil(() => lb.stdout.length >= 1, "no-backend line");
  const [noBackend] = parseJsonLines(lb.stdout);
  assertEquals(noBackend?.end, "no-backend");
  assertEquals(noBackend?.backend, null);
  assertEquals([noBackend?.bytesIn, noBackend?.bytesOut], [0, 0]);

  await using idle = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(echo.port),
    "--log",
    "json",
    "--idle-timeout",
    "300ms",
  ]);
  {
    using conn = await Deno.connect({ hostname: LOOPBACK, port: idle.port });
    await writeAll(conn, new TextEncoder().encode("hi"));
    assertEquals(await readExactly(conn, 2), new TextEncoder().encode("hi"));
    // Now silent: lb closes it after 300 ms idle.
    assertEquals(await withTimeout(conn.read(new Uint8Array(16)), 10_000, "idle close"), null);
  }
  await waitUntil(() => idle.stdout.length >= 1, "timeout line");
  const [timeout] = parseJsonLines(idle.stdout);
  assertEquals(timeout?.end, "timeout");
  assertEquals([timeout?.bytesIn, timeout?.bytesOut], [2, 2]);
  assert(timeout!.durationMs >= 250, `duration ${timeout!.durationMs}ms`);
});

Deno.test("lb --log off prints nothing on stdout", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb(["-f", "127.0.0.1:0", "-p", String(echo.port), "--log", "off"]);
  await echoThrough(lb.port, 1000);
  await echoThrough(lb.port, 10);
  assertEquals((await lb.stop()).code, 0);
  assertEquals(lb.stdout.filter((l) => l !== ""), []);
});

Deno.test("lb --log-file appends text lines and flushes them on shutdown", async () => {
  await using echo = startEchoServer();
  const path = await Deno.makeTempFile({ suffix: ".log" });
  try {
    await Deno.writeTextFile(path, "kept\n");
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      String(echo.port),
      "--log-file",
      path,
    ]);
    const local = await echoThrough(lb.port, 1234);
    // Stopped at once: the line may still be in lb's buffer and must be flushed on exit.
    assertEquals((await lb.stop()).code, 0);
    assertEquals(lb.stdout.filter((l) => l !== ""), []);
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
    assertEquals(lines.length, 2, lines.join("\n"));
    assertEquals(lines[0], "kept");
    assertMatch(
      lines[1]!,
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\dT\\S+Z ${
          local.replaceAll(".", "\\.")
        } main 127\\.0\\.0\\.1:${echo.port} in=1234 out=1234 \\d+ms eof$`,
      ),
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("lb --log-file that cannot be opened exits 1 with one line", async () => {
  const lb = startLb(["-f", "127.0.0.1:0", "-p", "9", "--log-file", "/nonexistent/dir/lb.log"]);
  const error = await lb.then(() => undefined, (e: Error) => e);
  assert(error, "lb started although its log file cannot be opened");
  assertMatch(error?.message ?? "", /lb: cannot open access log \/nonexistent\/dir\/lb\.log: /);
});

Deno.test("lb --log json records drained for a connection still open when the drain ends", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(echo.port),
    "--log",
    "json",
    "--drain-timeout",
    "300ms",
  ]);
  using conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  await writeAll(conn, new Uint8Array(3));
  await readExactly(conn, 3);
  assertEquals((await lb.stop()).code, 0);
  assertEquals(await withTimeout(conn.read(new Uint8Array(1)), 10_000, "close"), null);
  const entries = parseJsonLines(lb.stdout);
  assertEquals(entries.map((e) => [e.end, e.bytesIn, e.bytesOut]), [["drained", 3, 3]]);
  assert(entries[0]!.durationMs >= 250, `duration ${entries[0]!.durationMs}ms`);
});
