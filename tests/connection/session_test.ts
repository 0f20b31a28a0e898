import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { Session } from "../../src/connection/session.ts";
import { tcpPair, withTimeout } from "../_helpers.ts";

Deno.test("Session names the client and starts open", async () => {
  const [peer, client] = await tcpPair();
  using _peer = peer;
  const session = new Session(client, "main");
  assertEquals(session.clientAddr, `127.0.0.1:${(peer.localAddr as Deno.NetAddr).port}`);
  assertEquals(session.clientHost, "127.0.0.1");
  assertEquals(session.closed, false);
  session.close();
});

Deno.test("Session.abort closes both sockets once and keeps the first reason", async () => {
  const [clientPeer, client] = await tcpPair();
  const [upstream, backendPeer] = await tcpPair();
  using _a = clientPeer;
  using _b = backendPeer;
  const session = new Session(client, "main");
  session.upstream = upstream;
  session.abort("timeout");
  session.abort("reset");
  session.close();
  ok(session.closed);
  assertEquals(session.end, "timeout");
  // Both peers see the close.
  const closed = (peer: Deno.Conn) => withTimeout(peer.read(new Uint8Array(1)), 5000, "close");
  assertEquals(await closed(clientPeer), null);
  assertEquals(await closed(backendPeer), null);
});

Deno.test("Session.signal aborts when the session closes", async () => {
  const [peer, client] = await tcpPair();
  using _peer = peer;
  const session = new Session(client, "main");
  assertEquals(session.signal.aborted, false);
  session.abort("drained");
  assertEquals(session.signal.aborted, true);
});
