/**
 * `deno run -A bench/ab.ts TREE_OR_FILE... [--reps=N] [--d=SEC] [--ka]`: A/B
 * of lb versions on one measure, new connections/s (wrk `-c50`,
 * `Connection: close`), with HAProxy as the reference, runs interleaved and
 * the order reversed every other round to beat the shared machine's noise.
 * Each argument is a checkout of lb (its `main.ts` runs: make one with
 * `git archive REV | tar -x -C DIR`) or a `.ts` file taking lb's `-f`/`-p`
 * flags (such as `bench/floor_proxy.ts`); `DIR#v8=FLAGS` runs it with
 * `--v8-flags=FLAGS` instead of lb's (`DIR#semi=N`: `--max-semi-space-size=N`).
 * Prints each run and the medians, with the proxy's CPU µs per connection,
 * and each one's CPU per connection divided by the last argument's in the
 * same round (the two ran back to back: the steadiest figure). `--ka` adds
 * keep-alive req/s. A checkout runs with `--workers 1` (one thread, like the
 * floor).
 * @module
 */
import { parseArgs } from "node:util";
import { LB_V8_FLAGS } from "../support/compile.ts";
import { freePort, sleep, waitListening } from "./net.ts";
import { startHttpBackends, startPeer } from "./peers.ts";
import { findTools } from "./tools.ts";
import { runWrk } from "./wrk.ts";
import { spawnDenoProxy } from "./deno_proxy.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    reps: { type: "string", default: "3" },
    d: { type: "string", default: "4" },
    ka: { type: "boolean", default: false },
  },
});
const reps = Number(values.reps);
const durationSec = Number(values.d);
const { found } = findTools();
if (!found.nginx || !found.wrk || !found.haproxy) {
  console.error("ab: needs nginx, wrk and haproxy");
  Deno.exit(2);
}

function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function startVariant(spec: string, backends: number[]) {
  const [path, v8] = spec.includes("#v8=")
    ? spec.split("#v8=")
    : spec.split("#semi=").map((part, i) => i ? `--max-semi-space-size=${part}` : part);
  const main = path!.endsWith(".ts") ? path! : `${path}/main.ts`;
  const port = freePort();
  const child = spawnDenoProxy(
    main,
    port,
    backends,
    [
      "--log",
      "off",
      "--health-interval",
      "0",
      // lb with one worker, against the single-threaded floor: per-connection CPU compares.
      ...(path!.endsWith(".ts") ? [] : ["--workers", "1"]),
    ],
    v8 ?? LB_V8_FLAGS,
  );
  await waitListening(port);
  return {
    port,
    pid: child.pid,
    [Symbol.asyncDispose]: async () => {
      child.kill("SIGKILL");
      await child.status;
    },
  };
}

const dir = Deno.makeTempDirSync({ prefix: "lb-ab-" });
const backends = [freePort(), freePort()];
await using _backend = await startHttpBackends(found.nginx, dir, backends, 2);
const rates: Record<string, number[]> = {};
const cpu: Record<string, number[]> = {};
const keepAlive: Record<string, number[]> = {};
const order = ["haproxy", ...positionals];
for (let rep = 0; rep < reps; rep++) {
  for (const name of rep % 2 ? [...order].reverse() : order) {
    await using proxy = name === "haproxy"
      ? await startPeer("haproxy", { dir, threads: 2, haproxy: found.haproxy, backends })
      : await startVariant(name, backends);
    const pid = "pid" in proxy ? proxy.pid : 0;
    const wrk = { port: proxy.port, connections: 50, threads: 2, close: true };
    await runWrk(found.wrk, { ...wrk, durationSec: 1 }); // warm-up
    const before = pid ? cpuSeconds(pid) : 0;
    const { requestsPerSec } = await runWrk(found.wrk, { ...wrk, durationSec });
    (rates[name] ??= []).push(Math.round(requestsPerSec));
    let line = `${name}: ${Math.round(requestsPerSec)} conn/s`;
    if (pid) {
      const us = ((cpuSeconds(pid) - before) * 1e6) / (requestsPerSec * durationSec);
      (cpu[name] ??= []).push(Math.round(us));
      line += `, ${Math.round(us)} cpu-µs/conn`;
    }
    if (values.ka) {
      const ka = await runWrk(found.wrk, { ...wrk, close: false, durationSec });
      (keepAlive[name] ??= []).push(Math.round(ka.requestsPerSec));
      line += `, keep-alive ${Math.round(ka.requestsPerSec)} req/s`;
    }
    console.log(line);
    await sleep(200);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Each variant against the last argument (the floor, say) round by round: the
// two ran back to back, so the machine's drift between rounds cancels out.
const base = cpu[positionals.at(-1)!];
for (const name of order) {
  const parts = [`conn/s median ${median(rates[name]!)} (${rates[name]!.join(", ")})`];
  if (cpu[name]) parts.push(`cpu-µs/conn median ${median(cpu[name])}`);
  if (cpu[name] && base && name !== positionals.at(-1)) {
    const ratios = cpu[name].map((us, i) => us / base[i]!);
    parts.push(
      `÷ last: median ${median(ratios).toFixed(2)}x (${
        ratios.map((r) => r.toFixed(2)).join(", ")
      })`,
    );
  }
  if (keepAlive[name]) parts.push(`keep-alive median ${median(keepAlive[name])}`);
  console.log(`${name}: ${parts.join("; ")}`);
}
