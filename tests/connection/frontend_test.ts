import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { Gate } from "../../src/connection/gate.ts";
import { Logger } from "../../src/observability/log.ts";
import { Frontend, type FrontendContext } from "../../src/connection/frontend.ts";
import type { Session } from "../../src/connection/session.ts";
import {
  LOOPBACK,
  readAll,
  readExactly,
  startEchoServer,
  waitUntil,
  withTimeout,
  writeAll,
} from "../_helpers.ts";

const encoder = new TextEncoder();

function frontend(backendPort: number, gate: Gate) {
  const ended: Session[] = [];
  const lines: string[] = [];
  const ctx: FrontendContext = {
    gate,
    logger: new Logger((line) => lines.push(line)),
    onEnd: (session) => void ended.push(session),
    connectTimeout: 5000,
    sniTimeout: 5000,
    caCerts: [],
    retries: null,
    onConnect: () => {},
  };
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const server = new Frontend(
    {
      name: "main",
      listen: { hostname: LOOPBACK, port: 0 },
      balance: "roundrobin",
      backends: [{ hostname: LOOPBACK, port: backendPort, weight: 1, backup: false, maxConn: 0 }],
    },
    listener,
    ctx,
  );
  return { server, ended, lines, port: (listener.addr as Deno.NetAddr).port };
}

Deno.test("Frontend serves connections, counts them and reports each end once", async () => {
  await using echo = startEchoServer();
  const { server, ended, port } = frontend(echo.port, new Gate(0));
  server.start();
  try {
    for (let i = 0; i < 3; i++) {
      using client = await Deno.connect({ hostname: LOOPBACK, port });
      await writeAll(client, encoder.encode("abc"));
      await client.closeWrite();
      assertEquals(new TextDecoder().decode(await readAll(client)), "abc");
    }
    await waitUntil(() => ended.length === 3, "three ends");
    assertEquals([server.total, server.sessions.size, server.bytesIn, server.bytesOut], [
      3,
      0,
      9,
      9,
    ]);
    ok(ended.every((s) => s.end === "eof" && s.closed));
  } finally {
    await server.stop();
  }
});

Deno.test("Frontend.stop returns at once even while the gate is full", async () => {
  await using echo = startEchoServer();
  const gate = new Gate(1);
  const { server, port } = frontend(echo.port, gate);
  server.start();
  using client = await Deno.connect({ hostname: LOOPBACK, port });
  await writeAll(client, encoder.encode("hold"));
  await readExactly(client, 4);
  await waitUntil(() => gate.open === 1, "the connection to count");
  await withTimeout(server.stop(), 5000, "stop with a full gate");
  // The open connection goes on after stop.
  await writeAll(client, encoder.encode("more"));
  assertEquals(new TextDecoder().decode(await readExactly(client, 4)), "more");
  await client.closeWrite();
  await readAll(client);
  await waitUntil(() => server.sessions.size === 0 && gate.open === 0, "the session to end");
});

Deno.test("Frontend at a full gate leaves new clients waiting, then serves them", async () => {
  await using echo = startEchoServer();
  const gate = new Gate(1);
  const { server, port } = frontend(echo.port, gate);
  server.start();
  try {
    using first = await Deno.connect({ hostname: LOOPBACK, port });
    await writeAll(first, encoder.encode("1"));
    await readExactly(first, 1);
    using second = await Deno.connect({ hostname: LOOPBACK, port }); // in the backlog
    await writeAll(second, encoder.encode("2"));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assertEquals(server.total, 1, "the second waits in the kernel's backlog");
    await first.closeWrite();
    await readAll(first);
    assertEquals(
      new TextDecoder().decode(await withTimeout(readExactly(second, 1), 5000, "2")),
      "2",
    );
    await second.closeWrite();
    await readAll(second);
  } finally {
    await server.stop();
  }
  await waitUntil(() => server.sessions.size === 0, "sessions to end");
});

Deno.test("Frontends sharing a gate hold it exactly: a client one loop accepted past it waits its turn", async () => {
  await using echo = startEchoServer();
  const gate = new Gate(1);
  const a = frontend(echo.port, gate);
  const b = frontend(echo.port, gate);
  a.server.start();
  b.server.start();
  const roundTrip = async (conn: Deno.Conn, text: string) => {
    await writeAll(conn, encoder.encode(text));
    return new TextDecoder().decode(await readExactly(conn, text.length));
  };
  try {
    // A fills the gate; B was already in accept, so it takes b1 but holds it, unread.
    using a1 = await Deno.connect({ hostname: LOOPBACK, port: a.port });
    assertEquals(await roundTrip(a1, "a"), "a");
    using b1 = await Deno.connect({ hostname: LOOPBACK, port: b.port });
    const b1Reply = roundTrip(b1, "b");
    await waitUntil(() => b.server.total === 0 && gate.open === 1, "b1 held");
    assertEquals(echo.accepted, 1, "the held client reaches no backend");
    await a1.closeWrite();
    await readAll(a1);
    assertEquals(await withTimeout(b1Reply, 5000, "b1 served once a1 ended"), "b");
    assertEquals(gate.open, 1);
    await b1.closeWrite();
    await readAll(b1);
    await waitUntil(() => gate.open === 0, "b1 to end");
    // Nothing is open: a new client of A must be served, not left in the backlog.
    using a2 = await Deno.connect({ hostname: LOOPBACK, port: a.port });
    assertEquals(await withTimeout(roundTrip(a2, "c"), 5000, "a2 served"), "c");
    await a2.closeWrite();
    await readAll(a2);
  } finally {
    await a.server.stop();
    await b.server.stop();
  }
  await waitUntil(() => gate.open === 0, "sessions to end");
});

Deno.test("Frontend moved by a reload while its loop holds a client past the gate: the move does not wait for a place", async () => {
  await using echo = startEchoServer();
  const gate = new Gate(1);
  const a = frontend(echo.port, gate);
  const b = frontend(echo.port, gate);
  a.server.start();
  b.server.start();
  try {
    using a1 = await Deno.connect({ hostname: LOOPBACK, port: a.port });
    await writeAll(a1, encoder.encode("a"));
    await readExactly(a1, 1);
    using b1 = await Deno.connect({ hostname: LOOPBACK, port: b.port });
    await writeAll(b1, encoder.encode("b"));
    await waitUntil(() => gate.open === 1 && b.server.total === 0, "b1 held past the gate");
    // The reload moves B while a1 still holds the only place.
    const moved = Deno.listen({ hostname: LOOPBACK, port: 0 });
    await withTimeout(b.server.relisten({ listener: moved, tls: undefined }), 5000, "the move");
    assertEquals(await withTimeout(readAll(b1), 5000, "b1 closed"), new Uint8Array(0));
    assertEquals(echo.accepted, 1, "the held client reached no backend");
    await a1.closeWrite();
    await readAll(a1);
  } finally {
    await a.server.stop();
    await b.server.stop();
  }
  await waitUntil(() => gate.open === 0, "sessions to end");
});
