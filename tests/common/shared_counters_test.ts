import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { Cell, SharedCounters } from "../../src/common/shared_counters.ts";

Deno.test("SharedCounters: the same name is the same count in every thread, a limit holds over all", () => {
  const main = SharedCounters.create(2, 64);
  const worker = SharedCounters.attach(main.buffer, 1);
  const a = main.cell("backend/web/127.0.0.1:8101");
  const b = worker.cell("backend/web/127.0.0.1:8101");
  const other = worker.cell("backend/web/127.0.0.1:8102");
  ok(a.tryAdd(3));
  ok(b.tryAdd(3));
  ok(b.tryAdd(3));
  assertEquals(a.tryAdd(3), false);
  assertEquals([a.value, b.value, other.value], [3, 3, 0]);
  assertEquals([a.part, b.part], [1, 2]);
  b.sub();
  assertEquals(a.value, 2);
  throws(() => SharedCounters.attach(main.buffer, 2), RangeError);
});

Deno.test("SharedCounters.reclaim takes a dead thread's part off every total", () => {
  const main = SharedCounters.create(3, 64);
  const dead = SharedCounters.attach(main.buffer, 2);
  main.cell("gate").add();
  for (let i = 0; i < 4; i++) dead.cell("gate").add();
  dead.cell("x").add();
  main.reclaim(2);
  assertEquals([main.cell("gate").value, main.cell("x").value], [1, 0]);
  assertEquals(SharedCounters.attach(main.buffer, 2).cell("gate").part, 0);
});

Deno.test("SharedCounters: a full table gives local counts, and says so", () => {
  const main = SharedCounters.create(1, 4);
  for (let i = 0; i < 4; i++) main.cell(`n${i}`).add();
  assertEquals(main.full, false);
  const local = main.cell("n4");
  assertEquals(main.full, true);
  local.add();
  assertEquals([local.value, main.cell("n0").value], [1, 1]);
});

Deno.test("Cell.changed wakes a waiter in another Worker's thread when the count changes", async () => {
  const main = SharedCounters.create(2, 16);
  const cell = main.cell("gate");
  const seen = cell.value;
  const worker = new Worker(
    `data:text/javascript,self.onmessage=(e)=>{const a=new Int32Array(e.data.buffer,e.data.at,1);` +
      `Atomics.add(a,0,1);Atomics.notify(a,0);self.postMessage("done")}`,
    { type: "module" },
  );
  try {
    const done = new Promise((resolve) => worker.onmessage = resolve);
    const changed = cell.changed(seen, 5000)!;
    worker.postMessage({ buffer: main.buffer, at: _totalOffset(main, cell) });
    assertEquals(await changed, "ok");
    await done;
    assertEquals(cell.value, seen + 1);
  } finally {
    worker.terminate();
  }
});

/** Byte offset of `cell`'s total in the buffer: the slot whose total moves when it does. */
function _totalOffset(counters: SharedCounters, cell: Cell): number {
  const totals = new Int32Array(counters.buffer, 8 + counters.slots * 12, counters.slots);
  const before = Array.from(totals);
  cell.add();
  const slot = Array.from(totals).findIndex((v, i) => v !== before[i]);
  cell.sub();
  return 8 + counters.slots * 12 + slot * 4;
}

Deno.test("SharedCounters.fullNews is true once, after the table fills", () => {
  const main = SharedCounters.create(1, 2);
  main.cell("a");
  main.cell("b");
  assertEquals(main.fullNews(), false);
  main.cell("c");
  assertEquals([main.fullNews(), main.fullNews()], [true, false]);
});

Deno.test("SharedCounters: a slot left mid-claim by a thread that ended stalls nobody for long, and is skipped after reclaim", () => {
  const main = SharedCounters.create(2, 1); // one slot
  // Worker 1 was terminated between taking the slot and writing its name: the
  // slot's state word (after the 8-byte header) says "claiming, by thread 1".
  const stateOfSlot0 = new Int32Array(main.buffer, 8, 1);
  stateOfSlot0[0] = 3 + 1;
  const first = main.cell("frontend/web"); // gives up on that slot after a bounded wait
  ok(main.full, "no slot: a count of this thread's own");
  first.add();
  assertEquals(first.value, 1);
  main.reclaim(1);
  assertEquals(stateOfSlot0[0], 2, "dead: never claimed again, so no name gets two slots");
  const since = Date.now();
  const worker = SharedCounters.attach(main.buffer, 1);
  worker.cell("backend/web/127.0.0.1:8101");
  ok(worker.full, "the dead slot is skipped");
  ok(Date.now() - since < 500, "and skipped at once, without waiting on it");
});
