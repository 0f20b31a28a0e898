import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { LB_FLAGS, LB_PERMISSIONS } from "../../support/compile.ts";
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

Deno.test("startLb runs lb with exactly the compiled binary's flags unless told otherwise", async () => {
  await using lb = await startLb(["-f", "127.0.0.1:0", "-p", "9"]);
  // ps, not /proc/PID/cmdline: Deno grants /proc reads only with --allow-all.
  const ps = await new Deno.Command("ps", { args: ["-o", "args=", "-p", String(lb.child.pid)] })
    .output();
  const args = new TextDecoder().decode(ps.stdout).trim().split(/\s+/);
  for (const flag of LB_FLAGS) assertEquals(args.includes(flag), true, flag);
  assertEquals(args.filter((a) => a.startsWith("--allow-")), [...LB_PERMISSIONS]);
});
