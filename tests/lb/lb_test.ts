import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { parseConfigText } from "../../src/config/file.ts";
import { Lb } from "../../src/lb/lb.ts";
import { Logger } from "../../src/observability/log.ts";
import {
  LOOPBACK,
  readAll,
  readExactly,
  startEchoServer,
  waitUntil,
  writeAll,
} from "../_helpers.ts";

Deno.test("Lb.draining turns true once shutdown has closed every listener, while connections finish", async () => {
  await using echo = startEchoServer();
  const lb = Lb.start(
    parseConfigText(
      `{"health": {"interval": 0}, "frontends": [
        {"name": "web", "listen": "${LOOPBACK}:0", "backends": [{"port": ${echo.port}}]}]}`,
      "test",
    ),
    new Logger(() => {}),
  );
  const port = lb.frontends[0]!.listener.addr.port;
  using client = await Deno.connect({ hostname: LOOPBACK, port });
  await writeAll(client, new Uint8Array([1]));
  await readExactly(client, 1);
  assertEquals(lb.draining, false);

  const stopping = lb.shutdown(10_000);
  await waitUntil(() => lb.draining, "the drain to begin");
  await rejects(() => Deno.connect({ hostname: LOOPBACK, port }), /refused/i);
  assertEquals(lb.open, 1, "the open connection is waited for");
  await client.closeWrite();
  assertEquals(await readAll(client), new Uint8Array([1]).subarray(1));
  await stopping;
  assertEquals([lb.draining, lb.open], [true, 0]);
});
