/**
 * PROXY protocol through lb end to end: `--accept-proxy` takes the client a
 * header names (and refuses anything else before a backend is dialled), and
 * `proxy=v1|v2` sends the client on; with HAProxy in front where installed.
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { parseProxyHeader } from "../../src/proxy_protocol/mod.ts";
import { startLb } from "../../support/lb_process.ts";
import {
  adminPort,
  exchangeFrom,
  LOOPBACK,
  metricValue,
  readAll,
  startEchoServer,
  startRecordingServer,
  startTcpServer,
  waitConnectable,
  waitUntil,
  writeAll,
} from "../_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Access-log entries lb has written so far (`--log json`). */
function entries(lines: string[]): Record<string, unknown>[] {
  return lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

Deno.test("--accept-proxy takes the client from a v1 header and forwards only the data after it", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(echo.port),
    "--accept-proxy",
    "--log",
    "json",
    "--balance",
    "source",
  ]);
  const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  // Header and data in one write: the data must not be lost or include the header.
  await writeAll(conn, encoder.encode("PROXY TCP4 203.0.113.7 10.0.0.1 5123 443\r\nhello"));
  await conn.closeWrite();
  assertEquals(decoder.decode(await readAll(conn)), "hello");
  conn.close();
  await waitUntil(() => entries(lb.stdout).length === 1, "the access log line");
  const [entry] = entries(lb.stdout);
  assertEquals(entry!.client, "203.0.113.7:5123");
  ok(/^127\.0\.0\.1:\d+$/.test(String(entry!.peer)), String(entry!.peer));
  assertEquals([entry!.bytesIn, entry!.bytesOut, entry!.end], [5, 5, "eof"]);
});

Deno.test("--accept-proxy refuses a malformed, a missing or a slow header: no byte reaches a backend, counted by reason", async () => {
  await using backend = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(backend.port),
    "--accept-proxy",
    "--proxy-timeout",
    "300ms",
    "--health-interval",
    "0",
    "--admin",
    "127.0.0.1:0",
    "--log",
    "json",
  ]);
  const admin = await adminPort(lb);
  const cases: [string, string][] = [
    ["PROXY TCP4 1.2.3.999 10.0.0.1 5123 443\r\nGET / HTTP/1.0\r\n\r\n", "proxy-malformed"],
    ["GET / HTTP/1.0\r\n\r\n", "proxy-not-proxy"],
    ["PROXY TCP4 1.2.3.4 10.0.0", "proxy-timeout"], // then silence
  ];
  for (const [bytes, reason] of cases) {
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    await writeAll(conn, encoder.encode(bytes));
    assertEquals(await readAll(conn), new Uint8Array(0), `${reason}: closed without a byte`);
    conn.close();
    await waitUntil(
      async () => await metricValue(admin, "lb_frontend_refused_total", `reason="${reason}"`) === 1,
      `lb_frontend_refused_total{reason="${reason}"} = 1`,
    );
  }
  assertEquals(backend.accepted, 0, "no backend was dialled");
  await waitUntil(() => entries(lb.stdout).length === 3, "three access log lines");
  assertEquals(entries(lb.stdout).map((e) => e.end), ["refused", "refused", "refused"]);
});

Deno.test("--proxy-from closes a connection from a peer not listed, before reading it", async () => {
  await using backend = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(backend.port),
    "--accept-proxy",
    "--proxy-from",
    "10.0.0.0/8",
    "--health-interval",
    "0",
    "--admin",
    "127.0.0.1:0",
  ]);
  const admin = await adminPort(lb);
  const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  await writeAll(conn, encoder.encode("PROXY TCP4 1.2.3.4 10.0.0.1 5123 443\r\nhello"));
  assertEquals(await readAll(conn), new Uint8Array(0));
  conn.close();
  await waitUntil(
    async () =>
      await metricValue(admin, "lb_frontend_refused_total", `reason="proxy-untrusted"`) === 1,
    "the refusal counted",
  );
  assertEquals(backend.accepted, 0);
});

Deno.test("proxy=v2 and proxy=v1 send the client's address before its first byte", async () => {
  for (const version of ["v1", "v2"]) {
    await using backend = startRecordingServer();
    const received = backend.results as Uint8Array[];
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      `${backend.port},proxy=${version}`,
      "--health-interval",
      "0",
    ]);
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    const local = conn.localAddr as Deno.NetAddr;
    await writeAll(conn, encoder.encode("payload"));
    await conn.closeWrite();
    await readAll(conn);
    conn.close();
    await waitUntil(() => received.length === 1, "the backend to read to EOF");
    const bytes = received[0]!;
    const parsed = parseProxyHeader(bytes);
    ok(parsed.status === "ok", JSON.stringify(parsed));
    assertEquals(parsed.header.version, version === "v1" ? 1 : 2);
    assertEquals(parsed.header.source, { hostname: "127.0.0.1", port: local.port });
    assertEquals(parsed.header.destination, { hostname: "127.0.0.1", port: lb.port });
    assertEquals(decoder.decode(bytes.subarray(parsed.length)), "payload");
  }
});

Deno.test("proxy=v2 health checks send a LOCAL header, not garbage", async () => {
  await using backend = startRecordingServer();
  const received = backend.results as Uint8Array[];
  await using _lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    `${backend.port},proxy=v2`,
    "--health-interval",
    "100ms",
  ]);
  await waitUntil(() => received.length >= 1, "a health check");
  const parsed = parseProxyHeader(received[0]!);
  ok(parsed.status === "ok", JSON.stringify(parsed));
  assertEquals([parsed.header.command, parsed.length], ["LOCAL", received[0]!.length]);
});

/** Whether `haproxy` runs here. */
function haproxyAvailable(): boolean {
  try {
    return new Deno.Command("haproxy", { args: ["-v"], stdout: "null", stderr: "null" })
      .outputSync()
      .success;
  } catch {
    return false;
  }
}

for (const send of ["send-proxy", "send-proxy-v2"]) {
  Deno.test({
    name: `HAProxy (${send}) in front of lb --accept-proxy: lb logs and hashes the original client`,
    ignore: !haproxyAvailable(),
    async fn() {
      await using echo = startEchoServer();
      await using lb = await startLb([
        "-f",
        "127.0.0.1:0",
        "-p",
        String(echo.port),
        "--accept-proxy",
        "--log",
        "json",
      ]);
      using probe = Deno.listen({ hostname: LOOPBACK, port: 0 });
      const front = probe.addr.port;
      probe.close();
      const dir = await Deno.makeTempDir({ prefix: "lb-haproxy-" });
      const cfg = `${dir}/haproxy.cfg`;
      await Deno.writeTextFile(
        cfg,
        [
          "global",
          "  maxconn 100",
          "defaults",
          "  mode tcp",
          "  timeout connect 2s",
          "  timeout client 5s",
          "  timeout server 5s",
          "frontend f",
          `  bind 127.0.0.1:${front}`,
          "  default_backend b",
          "backend b",
          `  server lb 127.0.0.1:${lb.port} ${send}`,
          "",
        ].join("\n"),
      );
      const haproxy = new Deno.Command("haproxy", {
        args: ["-f", cfg, "-db"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        // The client binds to 127.0.0.2 so that it differs from HAProxy's own address.
        let conn: Deno.TcpConn | undefined;
        await waitUntil(async () => {
          try {
            conn = await Deno.connect({ hostname: LOOPBACK, port: front });
            return true;
          } catch {
            return false;
          }
        }, "haproxy listening");
        conn!.close();
        assertEquals(await exchangeFrom("127.0.0.2", front, "ping"), "ping");
        await waitUntil(
          () => entries(lb.stdout).some((e) => String(e.client).startsWith("127.0.0.2:")),
          "an access log line for 127.0.0.2",
        );
      } finally {
        haproxy.kill("SIGTERM");
        await haproxy.status;
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

/** Whether `nginx` with the stream module runs here. */
const NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so";
function nginxAvailable(): boolean {
  try {
    Deno.statSync(NGINX_STREAM);
    return new Deno.Command("nginx", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

/** A free loopback port (racy by nature; used only for a peer's config file). */
function freePort(): number {
  using listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  return listener.addr.port;
}

/** Runs a peer (`command args`) until `fn` is done; waits until `port` accepts first. */
async function withPeer(
  command: string,
  args: string[],
  port: number,
  fn: () => Promise<void>,
): Promise<void> {
  const child = new Deno.Command(command, { args, stdout: "null", stderr: "null" }).spawn();
  try {
    await waitConnectable(port, `${command} listening on ${port}`);
    await fn();
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

for (const version of ["v1", "v2"]) {
  Deno.test({
    name: `lb proxy=${version} in front of HAProxy accept-proxy: HAProxy sees the client's address`,
    ignore: !haproxyAvailable(),
    async fn() {
      const port = freePort();
      const dir = await Deno.makeTempDir({ prefix: "lb-haproxy-" });
      try {
        await Deno.writeTextFile(
          `${dir}/haproxy.cfg`,
          [
            "defaults",
            "  mode http",
            "  timeout connect 2s",
            "  timeout client 5s",
            "  timeout server 5s",
            "frontend f",
            `  bind 127.0.0.1:${port} accept-proxy`,
            '  http-request return status 200 content-type text/plain lf-string "%ci"',
            "",
          ].join("\n"),
        );
        await withPeer("haproxy", ["-f", `${dir}/haproxy.cfg`, "-db"], port, async () => {
          await using lb = await startLb([
            "-f",
            "127.0.0.1:0",
            "-p",
            `${port},proxy=${version}`,
          ]);
          const answer = await exchangeFrom(
            "127.0.0.2",
            lb.port,
            "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
          );
          ok(answer.startsWith("HTTP/1.0 200") || answer.startsWith("HTTP/1.1 200"), answer);
          assertEquals(answer.split("\r\n\r\n")[1], "127.0.0.2");
        });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });

  Deno.test({
    name:
      `lb proxy=${version} in front of nginx listen proxy_protocol: nginx sees the client's address`,
    ignore: !nginxAvailable(),
    async fn() {
      const port = freePort();
      const dir = await Deno.makeTempDir({ prefix: "lb-nginx-" });
      try {
        await Deno.writeTextFile(
          `${dir}/nginx.conf`,
          [
            `load_module ${NGINX_STREAM};`,
            "daemon off;",
            "master_process off;",
            `pid ${dir}/nginx.pid;`,
            `error_log ${dir}/error.log warn;`,
            "events { worker_connections 64; }",
            "stream {",
            "  server {",
            `    listen 127.0.0.1:${port} proxy_protocol;`,
            '    return "$proxy_protocol_addr";',
            "  }",
            "}",
            "",
          ].join("\n"),
        );
        await withPeer("nginx", ["-c", `${dir}/nginx.conf`, "-p", dir], port, async () => {
          await using lb = await startLb([
            "-f",
            "127.0.0.1:0",
            "-p",
            `${port},proxy=${version}`,
          ]);
          assertEquals(await exchangeFrom("127.0.0.2", lb.port, ""), "127.0.0.2");
        });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test("--balance source hashes the client an accepted header names, not the peer", async () => {
  await using a = startEchoServer();
  await using b = startEchoServer();
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    String(a.port),
    "-p",
    String(b.port),
    "--accept-proxy",
    "--balance",
    "source",
    "--health-interval",
    "0",
  ]);
  const send = async (client: string) => {
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    await writeAll(conn, encoder.encode(`PROXY TCP4 ${client} 10.0.0.1 5123 443\r\nx`));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readAll(conn)), "x");
    conn.close();
  };
  // One client, many connections (all from the same peer): one backend.
  for (let i = 0; i < 10; i++) await send("203.0.113.7");
  assertEquals([a.accepted, b.accepted].sort(), [0, 10]);
  // Many clients behind the same peer: both backends.
  for (let i = 1; i <= 30; i++) await send(`198.51.100.${i}`);
  ok(a.accepted > 0 && b.accepted > 0, `spread ${a.accepted}/${b.accepted}`);
});

Deno.test("proxy=v2 to a server that speaks first: the header goes at once, no waiting for the client", async () => {
  // Like SMTP behind a PROXY-expecting server: it reads the header, then greets.
  await using backend = startTcpServer(async (conn) => {
    const buf = new Uint8Array(1024);
    let got = new Uint8Array(0);
    while (parseProxyHeader(got).status === "incomplete") {
      const n = await conn.read(buf);
      if (n === null) return;
      got = new Uint8Array([...got, ...buf.subarray(0, n)]);
    }
    await writeAll(conn, encoder.encode("220 hello\r\n"));
  });
  await using lb = await startLb([
    "-f",
    "127.0.0.1:0",
    "-p",
    `${backend.port},proxy=v2`,
    "--health-interval",
    "0",
  ]);
  const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
  try {
    const greeting = new Uint8Array(11);
    let n = 0;
    while (n < greeting.length) {
      const read = await conn.read(greeting.subarray(n));
      if (read === null) break;
      n += read;
    }
    assertEquals(decoder.decode(greeting.subarray(0, n)), "220 hello\r\n");
  } finally {
    conn.close();
  }
});
