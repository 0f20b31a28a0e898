/**
 * Graceful drain on SIGTERM, end to end through main.ts: stop accepting at
 * once, let open connections finish up to the drain timeout, close the rest,
 * exit 0; a second signal exits at once.
 * @module
 */
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { type LbProcess, startLb } from "../support/lb_process.ts";
import {
  adminPort,
  closeQuietly,
  LOOPBACK,
  readAll,
  readExactly,
  startEchoServer,
  waitForStats,
  withTimeout,
  writeAll,
} from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** With the admin endpoint: `/stats` shows the drain (it serves until lb exits). */
const FRONT = [
  "-f",
  `${LOOPBACK}:0`,
  "--health-interval",
  "0",
  "--log",
  "off",
  "--admin",
  `${LOOPBACK}:0`,
];

/** Sends `text` and reads the echo back. */
async function echo(conn: Deno.Conn, text: string): Promise<string> {
  await writeAll(conn, encoder.encode(text));
  return decoder.decode(await withTimeout(readExactly(conn, text.length), 10_000, "echo"));
}

async function connectEchoed(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: LOOPBACK, port });
  assertEquals(await echo(conn, "hello"), "hello");
  return conn;
}

/** SIGTERM, then wait until lb has stopped accepting and drains (`/stats` says so). */
async function term(lb: LbProcess, signal: Deno.Signal = "SIGTERM"): Promise<number> {
  const admin = await adminPort(lb);
  const sent = Date.now();
  lb.child.kill(signal);
  await waitForStats(admin, "the drain", (stats) => stats.draining, 15_000);
  return sent;
}

Deno.test("SIGTERM drain lets a long-lived connection finish within the timeout, exits 0", async () => {
  await using backend = startEchoServer();
  await using lb = await startLb([...FRONT, "-p", String(backend.port), "--drain-timeout", "60s"]);
  using conn = await connectEchoed(lb.port);
  await term(lb);

  // Stopped accepting at once: a new client is refused.
  await rejects(() => Deno.connect({ hostname: LOOPBACK, port: lb.port }), /refused/i);
  // The open connection keeps flowing both ways while lb drains.
  for (let i = 0; i < 5; i++) assertEquals(await echo(conn, `still here ${i}`), `still here ${i}`);

  // It ends on its own terms (half-close, then the echo server's FIN) ...
  await conn.closeWrite();
  assertEquals(await withTimeout(readAll(conn), 10_000, "EOF"), new Uint8Array());
  const ended = Date.now();
  // ... and lb exits 0 right after, long before the 60 s timeout.
  const status = await withTimeout(lb.status, 20_000, "lb exit");
  assertEquals(status.code, 0);
  ok(Date.now() - ended < 20_000);
  // lb has exited: its whole log is in.
  ok(
    lb.stderr.some((l) => /draining 1 open connection\(s\), up to 60000ms/.test(l)),
    lb.stderr.join("\n"),
  );
  ok(lb.stderr.some((l) => / lb: stopped$/.test(l)));
});

Deno.test("SIGTERM drain closes a connection that outlives the timeout, exits 0", async () => {
  await using backend = startEchoServer();
  await using lb = await startLb([
    ...FRONT,
    "-p",
    String(backend.port),
    "--drain-timeout",
    "700ms",
  ]);
  using conn = await connectEchoed(lb.port);
  const sent = await term(lb);

  // The client never closes: lb closes it once the drain timeout is over.
  const buf = new Uint8Array(16);
  const closed = await withTimeout(
    conn.read(buf).then((n) => n === null ? "eof" : "data", () => "reset"),
    20_000,
    "lb closing the connection",
  );
  ok(closed === "eof" || closed === "reset", closed);
  ok(Date.now() - sent >= 600, `closed after ${Date.now() - sent}ms: before the timeout`);
  const status = await withTimeout(lb.status, 20_000, "lb exit");
  assertEquals(status.code, 0);
  closeQuietly(conn);
});

Deno.test("a second SIGTERM or SIGINT during the drain exits at once", async (t) => {
  for (const second of ["SIGTERM", "SIGINT"] as const) {
    await t.step(second, async () => {
      await using backend = startEchoServer();
      await using lb = await startLb([
        ...FRONT,
        "-p",
        String(backend.port),
        "--drain-timeout",
        "120s",
      ]);
      using conn = await connectEchoed(lb.port);
      await term(lb);
      const sent = Date.now();
      lb.child.kill(second);
      const status = await withTimeout(lb.status, 20_000, "lb exit after the second signal");
      ok(Date.now() - sent < 20_000);
      assertEquals(status.code, 1);
      ok(lb.stderr.some((l) => /second signal: exiting now/.test(l)), lb.stderr.join("\n"));
      closeQuietly(conn);
    });
  }
});

Deno.test("a second SIGTERM writes one `killed` access-log line for each open connection (one thread)", async () => {
  await using backend = startEchoServer();
  await using lb = await startLb([
    ...FRONT,
    "-p",
    String(backend.port),
    "--workers",
    "1",
    "--log",
    "json",
    "--drain-timeout",
    "120s",
  ]);
  const open = await Promise.all(Array.from({ length: 5 }, () => connectEchoed(lb.port)));
  await term(lb);
  lb.child.kill("SIGTERM");
  assertEquals((await lb.status).code, 1);
  const ends = lb.stdout.filter((line) => line.trim() !== "").map((line) => JSON.parse(line).end);
  assertEquals(ends, ["killed", "killed", "killed", "killed", "killed"], lb.stdout.join("\n"));
  for (const conn of open) closeQuietly(conn);
});

Deno.test("drainTimeout comes from the config file and follows a reload", async () => {
  await using backend = startEchoServer();
  const path = await Deno.makeTempFile({ prefix: "lb-drain-", suffix: ".json" });
  const write = (drainTimeout: string) =>
    Deno.writeTextFile(
      path,
      JSON.stringify({
        frontends: [{ name: "web", listen: `${LOOPBACK}:0`, backends: [{ port: backend.port }] }],
        health: { interval: 0 },
        log: "off",
        drainTimeout,
      }),
    );
  try {
    await write("120s");
    await using lb = await startLb(["--config", path, "--admin", `${LOOPBACK}:0`]);
    const admin = await adminPort(lb);
    using conn = await connectEchoed(lb.port);
    await write("500ms");
    lb.child.kill("SIGHUP");
    await waitForStats(admin, "the reload", (stats) => stats.reloads.applied === 1, 15_000);
    const sent = await term(lb);
    const status = await withTimeout(lb.status, 20_000, "lb exit");
    assertEquals(status.code, 0);
    ok(Date.now() - sent >= 400);
    ok(
      lb.stderr.some((l) => /draining 1 open connection\(s\), up to 500ms/.test(l)),
      lb.stderr.join("\n"),
    );
    closeQuietly(conn);
  } finally {
    await Deno.remove(path);
  }
});
