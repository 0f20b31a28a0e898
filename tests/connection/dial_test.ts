import { ok, rejects } from "node:assert/strict";
import { dial } from "../../src/connection/dial.ts";
import { freePort, hangingPort, LOOPBACK } from "../_helpers.ts";

Deno.test("dial connects to a listener", async () => {
  using listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const [conn, accepted] = await Promise.all([
    dial({ hostname: LOOPBACK, port }, 5000),
    listener.accept(),
  ]);
  conn.close();
  accepted.close();
});

Deno.test("dial connects with a timeout longer than a timer can wait", async () => {
  using listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const [conn, accepted] = await Promise.all([
    dial({ hostname: LOOPBACK, port }, 3_600_000_000),
    listener.accept(),
  ]);
  conn.close();
  accepted.close();
});

Deno.test("dial rejects a refused connect with ConnectionRefused", async () => {
  await rejects(
    dial({ hostname: LOOPBACK, port: freePort() }, 5000),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("dial gives up on a hanging connect with TimedOut after the timeout", async () => {
  using hanging = await hangingPort();
  if (!hanging) {
    console.log("ignored in effect: could not fill a listen backlog on this machine");
    return;
  }
  const started = Date.now();
  await rejects(dial({ hostname: LOOPBACK, port: hanging.port }, 300), Deno.errors.TimedOut);
  const elapsed = Date.now() - started;
  ok(elapsed >= 250 && elapsed < 5000, `took ${elapsed}ms`);
});

Deno.test("dial stops a hanging connect when its signal aborts, with the signal's reason", async () => {
  using hanging = await hangingPort();
  if (!hanging) {
    console.log("ignored in effect: could not fill a listen backlog on this machine");
    return;
  }
  const controller = new AbortController();
  const reason = new Error("client went away");
  setTimeout(() => controller.abort(reason), 100);
  const started = Date.now();
  await rejects(
    dial({ hostname: LOOPBACK, port: hanging.port }, 20_000, { signal: controller.signal }),
    (error) => error === reason,
  );
  ok(Date.now() - started < 5000);
});

Deno.test("dial with an already aborted signal does not connect", async () => {
  using listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  await rejects(dial({ hostname: LOOPBACK, port }, 5000, { signal: AbortSignal.abort() }));
});
