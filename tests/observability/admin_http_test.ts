import { deepStrictEqual as assertEquals, match as assertMatch, ok } from "node:assert/strict";
import { AdminHttp, type HttpLimits } from "../../src/observability/admin_http.ts";
import { LOOPBACK, readAll, waitUntil, withTimeout, writeAll } from "../_helpers.ts";

const encoder = new TextEncoder();

/** An AdminHttp on a free loopback port answering `GET PATH` with `PATH` and the Host it saw. */
function start(limits: Partial<HttpLimits> = {}): AdminHttp & AsyncDisposable {
  const server = AdminHttp.listen(
    { hostname: LOOPBACK, port: 0 },
    (request) =>
      Promise.resolve(
        new Response(`${new URL(request.url).pathname} ${request.headers.get("host")}\n`, {
          headers: { "x-seen": request.method },
        }),
      ),
    limits,
  );
  return Object.assign(server, { [Symbol.asyncDispose]: () => server.shutdown() });
}

/** Sends `head` (and `body`) on a new connection; resolves with everything the server sends. */
async function exchange(port: number, head: string, body = ""): Promise<string> {
  using conn = await Deno.connect({ hostname: LOOPBACK, port });
  await writeAll(conn, encoder.encode(head + body));
  return new TextDecoder().decode(await withTimeout(readAll(conn), 10_000, "the answer"));
}

/** The status line and the body of a raw answer. */
function parse(answer: string): { status: string; headers: string; body: string } {
  const [head = "", body = ""] = answer.split("\r\n\r\n");
  const [status = "", ...headers] = head.split("\r\n");
  return { status, headers: headers.join("\n").toLowerCase(), body };
}

async function get(port: number, path = "/ok"): Promise<string> {
  return parse(await exchange(port, `GET ${path} HTTP/1.1\r\nHost: a:1\r\n\r\n`)).status;
}

Deno.test("AdminHttp answers one request per connection with length and close", async () => {
  await using server = start();
  const port = server.addr.port;
  const answer = parse(await exchange(port, "GET /x?y=1 HTTP/1.1\r\nHost: h:9\r\n\r\n"));
  assertEquals(answer.status, "HTTP/1.1 200 OK");
  assertMatch(answer.headers, /^content-length: 7$/m);
  assertMatch(answer.headers, /^connection: close$/m);
  assertEquals(answer.body, "/x h:9\n");
  const head = parse(await exchange(port, "HEAD /x HTTP/1.1\r\nHost: h:9\r\n\r\n"));
  assertEquals([head.status, head.body], ["HTTP/1.1 200 OK", ""]);
  assertMatch(head.headers, /^content-length: 7$/m);
  const viaFetch = await fetch(`http://${LOOPBACK}:${port}/f`);
  assertEquals(await viaFetch.text(), `/f ${LOOPBACK}:${port}\n`);
});

Deno.test("AdminHttp refuses malformed heads (400) and any body (413)", async () => {
  await using server = start();
  const port = server.addr.port;
  const cases: [string, string, string?][] = [
    ["GET /\r\n\r\n", "400"],
    ["GET x HTTP/1.1\r\nHost: a\r\n\r\n", "400"],
    ["GET / HTTP/2.0\r\nHost: a\r\n\r\n", "400"],
    ["GET / HTTP/1.1\r\nbad header\r\n\r\n", "400"],
    ["GET / HTTP/1.1\r\n folded: no\r\n\r\n", "400"],
    ["POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", "413", "hello"],
    ["POST /reload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "413", "0\r\n\r\n"],
    ["POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", "400"],
    ["POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "200"],
  ];
  for (const [head, status, body] of cases) {
    const answer = parse(await exchange(port, head, body));
    assertEquals(answer.status.split(" ")[1], status, JSON.stringify(head));
  }
});

Deno.test("AdminHttp answers 431 to a head over 16 KiB, and 1 MiB of headers does not stop others", async () => {
  await using server = start();
  const port = server.addr.port;
  const header = (n: number) => `X-Big: ${"a".repeat(n)}\r\n`;
  assertEquals(
    parse(await exchange(port, `GET / HTTP/1.1\r\nHost: a\r\n${header(15_000)}\r\n`)).status,
    "HTTP/1.1 200 OK",
  );
  assertEquals(
    parse(await exchange(port, `GET / HTTP/1.1\r\nHost: a\r\n${header(17_000)}\r\n`)).status,
    "HTTP/1.1 431 Request Header Fields Too Large",
  );
  // 1 MiB of headers, written while another client is answered.
  using big = await Deno.connect({ hostname: LOOPBACK, port });
  const reading = readAll(big);
  const writing = writeAll(
    big,
    encoder.encode(`GET / HTTP/1.1\r\n${header(1024).repeat(1024)}\r\n`),
  )
    .then(() => "written", (error: Error) => error.name); // lb may close before it is all sent
  assertEquals(await get(port), "HTTP/1.1 200 OK");
  const answer = new TextDecoder().decode(await withTimeout(reading, 10_000, "the 431"));
  assertEquals(parse(answer).status, "HTTP/1.1 431 Request Header Fields Too Large");
  await writing;
  await waitUntil(() => server.connections === 0, "the big client's connection closed");
});

Deno.test("AdminHttp answers others while a slow-loris client trickles, then cuts it off (408)", async () => {
  await using server = start({ headerTimeoutMs: 1000 });
  const port = server.addr.port;
  using loris = await Deno.connect({ hostname: LOOPBACK, port });
  const answered = readAll(loris).then((bytes) => new TextDecoder().decode(bytes));
  let cut = false;
  answered.finally(() => cut = true);
  await writeAll(loris, encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n"));
  let sent = 0;
  let served = 0;
  while (!cut) {
    // One header byte at a time, and another client answered meanwhile.
    await writeAll(loris, encoder.encode("X")).catch(() => {});
    sent++;
    assertEquals(await get(port), "HTTP/1.1 200 OK");
    served++;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assertEquals(parse(await answered).status, "HTTP/1.1 408 Request Timeout");
  ok(served >= 2 && sent >= 2, `served ${served} while the loris sent ${sent} bytes`);
  await waitUntil(() => server.connections === 0, "the loris closed");
});

Deno.test("AdminHttp keeps at most maxConnections, closing the oldest idle one for a new client", async () => {
  await using server = start({ maxConnections: 8 });
  const port = server.addr.port;
  const idle: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const conn = await Deno.connect({ hostname: LOOPBACK, port });
      idle.push(conn);
      await writeAll(conn, encoder.encode("GET / HTTP/1.1\r\n")); // and nothing more
    }
    await waitUntil(() => server.connections <= 8, "at most 8 connections");
    assertEquals(await get(port), "HTTP/1.1 200 OK");
    // The oldest were closed (EOF), the newest are still waiting.
    // Closed: EOF, or a reset where the server had not read all the client sent.
    const first = idle[0]!.read(new Uint8Array(1)).catch((error) => error.name);
    ok([null, "ConnectionReset"].includes(await withTimeout(first, 10_000, "closed")));
    ok(server.connections <= 8, `${server.connections} connections`);
  } finally {
    for (const conn of idle) conn.close();
  }
});

Deno.test("AdminHttp.shutdown closes waiting connections and stops listening", async () => {
  const server = start();
  const port = server.addr.port;
  using waiting = await Deno.connect({ hostname: LOOPBACK, port });
  await writeAll(waiting, encoder.encode("GET / HTTP/1.1\r\n"));
  await waitUntil(() => server.connections === 1, "the connection accepted");
  await server.shutdown();
  assertEquals(await withTimeout(readAll(waiting), 10_000, "EOF"), new Uint8Array());
  const refused = await Deno.connect({ hostname: LOOPBACK, port }).then(
    (conn) => (conn.close(), false),
    () => true,
  );
  ok(refused, "still listening after shutdown");
});
