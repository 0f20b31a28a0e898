/**
 * `deno run -A bench/idle_floor.ts [COUNT] [--workers N]`: bytes of RSS per
 * idle connection, lb (`--workers 1` unless given) against the floor proxy
 * (`bench/floor_proxy.ts`), each in front of the same idle backend, each
 * measured three times on a fresh process, alternating. Issue #9's idle
 * memory target compares these two.
 * @module
 */
import { parseArgs } from "node:util";
import { spawnDenoProxy } from "./deno_proxy.ts";
import { idleMemory } from "./memory.ts";
import { freePort, sleep, waitListening } from "./net.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { workers: { type: "string", default: "1" } },
});
const count = Number(positionals[0] ?? 4000);

/** A TCP server that accepts and holds every connection, reading nothing. */
const backend = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const held: Deno.Conn[] = [];
(async () => {
  for await (const conn of backend) held.push(conn);
})();
const backendPort = (backend.addr as Deno.NetAddr).port;

async function measure(kind: "lb" | "floor"): Promise<number> {
  const port = freePort();
  const main = new URL(kind === "lb" ? "../main.ts" : "./floor_proxy.ts", import.meta.url).pathname;
  const extra = kind === "lb"
    ? ["--log", "off", "--health-interval", "0", "--workers", values.workers!]
    : [];
  const child = spawnDenoProxy(main, port, [backendPort], extra);
  try {
    await waitListening(port);
    await sleep(500);
    const result = await idleMemory(port, () => [child.pid], count, 1500);
    return result.bytesPerConn;
  } finally {
    child.kill("SIGKILL");
    await child.status;
    for (const conn of held.splice(0)) conn.close();
  }
}

const results: Record<string, number[]> = { lb: [], floor: [] };
for (let round = 0; round < 3; round++) {
  for (const kind of (round % 2 ? ["floor", "lb"] : ["lb", "floor"]) as ("lb" | "floor")[]) {
    const bytes = await measure(kind);
    results[kind]!.push(bytes);
    console.log(`${kind}: ${count} idle connections: ${bytes.toFixed(0)} B/conn`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const lb = median(results.lb!);
const floor = median(results.floor!);
console.log(
  `medians: lb ${lb.toFixed(0)} B/conn, floor ${floor.toFixed(0)} B/conn, lb ÷ floor ${
    (lb / floor).toFixed(2)
  }x`,
);
backend.close();
Deno.exit(0);
