import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import type { Backend } from "../../src/balancing/backend.ts";
import { Logger } from "../../src/observability/log.ts";
import { Pool } from "../../src/balancing/pool.ts";
import { proxy, type ProxyContext } from "../../src/connection/proxy.ts";
import { Session } from "../../src/connection/session.ts";
import {
  freePort,
  freePorts,
  hangingPort,
  LOOPBACK,
  pseudoRandomBytes,
  readAll,
  sha256,
  startEchoServer,
  tcpPair,
  waitUntil,
  withTimeout,
  writeAll,
} from "../_helpers.ts";

function context(ports: number[], retries: number | null = null) {
  const lines: string[] = [];
  const connects: [string, boolean][] = [];
  const ctx: ProxyContext = {
    pool: new Pool(
      "roundrobin",
      ports.map((port) => ({ hostname: LOOPBACK, port, weight: 1, backup: false, maxConn: 0 })),
    ),
    logger: new Logger((line) => lines.push(line)),
    connectTimeout: 5000,
    sniTimeout: 5000,
    caCerts: [],
    retries,
    onConnect: (backend: Backend, ok: boolean) => void connects.push([backend.id, ok]),
  };
  return { ctx, lines, connects };
}

Deno.test("proxy copies both ways, then closes both sockets and counts per backend", async () => {
  await using echo = startEchoServer();
  const { ctx, connects } = context([echo.port]);
  const [client, accepted] = await tcpPair();
  using _client = client;
  const session = new Session(accepted, "main");
  const proxying = proxy(session, ctx);
  const data = pseudoRandomBytes(300_000, 2);
  const [, echoed] = await Promise.all([
    writeAll(client, data).then(() => client.closeWrite()),
    readAll(client),
  ]);
  await proxying;
  ok(echoed.length === data.length && sha256(echoed) === sha256(data), "bytes differ");
  const backend = ctx.pool.backends[0]!;
  assertEquals(
    [session.end, session.closed, backend.active, backend.total],
    ["eof", true, 0, 1],
  );
  assertEquals([backend.bytesOut, backend.bytesIn], [data.length, data.length]);
  assertEquals(connects, [[backend.id, true]]);
});

Deno.test("proxy tries every backend at most once, then logs one line and closes", async () => {
  const ports = freePorts(3);
  const { ctx, lines, connects } = context(ports);
  const [client, accepted] = await tcpPair();
  using _client = client;
  const session = new Session(accepted, "main");
  await proxy(session, ctx);
  assertEquals(session.end, "no-backend");
  assertEquals(connects.map(([id]) => id).sort(), ports.map((p) => `${LOOPBACK}:${p}`).sort());
  ok(connects.every(([, ok]) => !ok));
  const closing = lines.filter((l) => l.includes("no backend available"));
  assertEquals(closing.length, 1, lines.join("\n"));
  ok(closing[0]!.includes("(3 tried)"), closing[0]);
  assertEquals(await client.read(new Uint8Array(1)), null, "the client sees the close");
  const counts = ctx.pool.backends.map((b) => [b.active, b.connectFailures]);
  assertEquals(counts, ports.map(() => [0, 1]));
});

Deno.test("proxy with retries 0 tries only the backend it picked", async () => {
  await using echo = startEchoServer();
  const { ctx, connects } = context([freePort(), echo.port], 0);
  const [client, accepted] = await tcpPair();
  using _client = client;
  const session = new Session(accepted, "main");
  await proxy(session, ctx);
  assertEquals(session.end, "no-backend");
  assertEquals(connects.length, 1);
  assertEquals(echo.accepted, 0);
});

Deno.test("proxy moves on to the next backend after a refused connect", async () => {
  await using echo = startEchoServer();
  const { ctx, connects } = context([freePort(), echo.port]);
  const [client, accepted] = await tcpPair();
  using _client = client;
  const proxying = proxy(new Session(accepted, "main"), ctx);
  await writeAll(client, new TextEncoder().encode("hi"));
  await client.closeWrite();
  assertEquals(new TextDecoder().decode(await readAll(client)), "hi");
  await proxying;
  assertEquals(connects.map(([, ok]) => ok), [false, true]);
});

Deno.test("proxy aborted while dialling stops at once and blames no backend", async () => {
  using hanging = await hangingPort();
  if (!hanging) {
    console.log("ignored in effect: could not fill a listen backlog on this machine");
    return;
  }
  const { ctx, connects, lines } = context([hanging.port]);
  ctx.connectTimeout = 20_000;
  const [client, accepted] = await tcpPair();
  using _client = client;
  const session = new Session(accepted, "main");
  const proxying = proxy(session, ctx);
  const backend = ctx.pool.backends[0]!;
  await waitUntil(() => backend.active === 1, "the dial to start"); // picked: dialling now
  session.abort("drained");
  await withTimeout(proxying, 5000, "proxy to return after abort");
  assertEquals(session.end, "drained");
  assertEquals(connects, []);
  assertEquals([backend.active, backend.connectFailures], [0, 0]);
  assertEquals(lines.filter((l) => l.includes("error dialing")), []);
});

Deno.test("proxy whose hello cannot be built ends the connection and counts the backend's connection out", async () => {
  await using echo = startEchoServer();
  const { ctx, lines } = context([echo.port]);
  const backend = ctx.pool.backends[0]!;
  backend.configure({ weight: 1, backup: false, maxConn: 0, proxy: "v2" });
  const [client, accepted] = await tcpPair();
  using _client = client;
  const session = new Session(accepted, "main");
  session.authority = "a".repeat(70_000); // past a PROXY v2 header's 65535-byte block
  await withTimeout(proxy(session, ctx), 5000, "proxy to return");
  assertEquals(session.end, "reset");
  assertEquals(backend.active, 0, "counted out: maxconn and leastconn see it gone");
  ok(lines.some((line) => /internal error/.test(line)), lines.join("\n"));
});
