import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { Gate } from "../../src/connection/gate.ts";

Deno.test("Gate without a limit never makes the accept loop wait", () => {
  const gate = new Gate(0);
  for (let i = 0; i < 1000; i++) ok(gate.tryEnter());
  assertEquals(gate.wait(), undefined);
  assertEquals(gate.open, 1000);
});

Deno.test("Gate at its limit waits until a connection leaves", async () => {
  const gate = new Gate(2);
  ok(gate.tryEnter());
  assertEquals(gate.wait(), undefined);
  ok(gate.tryEnter());
  assertEquals(gate.tryEnter(), false);
  const waiting = gate.wait();
  ok(waiting instanceof Promise);
  let woken = false;
  waiting.then(() => woken = true);
  await Promise.resolve();
  assertEquals(woken, false);
  gate.leave();
  await waiting;
  assertEquals(gate.open, 1);
  assertEquals(gate.wait(), undefined);
});

Deno.test("Gate.release wakes every waiting accept loop", async () => {
  const gate = new Gate(1);
  ok(gate.tryEnter());
  const waits = [gate.wait(), gate.wait()];
  gate.wakeAll();
  await Promise.all(waits);
  assertEquals(gate.open, 1);
});
