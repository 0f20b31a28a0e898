import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { startLb } from "../../support/lb_process.ts";
import { LOOPBACK, startEchoServer } from "../_helpers.ts";

Deno.test("startLb reports lb's own message when lb exits before listening", async () => {
  await rejects(startLb(["--bogus"]), (error: Error) => {
    ok(error.message.includes('lb: unknown flag "--bogus"'), error.message);
    return true;
  });
});

Deno.test("startLb parses the chosen port and dispose stops lb with exit 0", async () => {
  await using echo = startEchoServer();
  let status: Promise<Deno.CommandStatus>;
  {
    await using lb = await startLb(["-f", `${LOOPBACK}:0`, "-p", String(echo.port)]);
    ok(lb.port > 0);
    assertEquals(lb.ports, [lb.port]);
    (await Deno.connect({ hostname: LOOPBACK, port: lb.port })).close();
    status = lb.status;
  }
  assertEquals((await status).code, 0);
});
