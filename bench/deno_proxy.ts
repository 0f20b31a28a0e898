/**
 * Runs a Deno TCP proxy that takes lb's `-f`/`-p` flags (lb's `main.ts` from
 * a checkout, or `bench/floor_proxy.ts`) as a child process, for the A/B
 * scripts (`ab.ts`, `idle_floor.ts`).
 * @module
 */
import { LB_V8_FLAGS } from "../support/compile.ts";

/**
 * Spawns `deno run` of `main` listening on 127.0.0.1:`port` in front of the
 * `backends` ports, with lb's permissions and V8 flags.
 *
 * @param extra More flags after the `-f`/`-p` ones (lb's; the floor ignores them).
 * @param v8Flags `--v8-flags` value. @default LB_V8_FLAGS (lb's compile task)
 */
export function spawnDenoProxy(
  main: string,
  port: number,
  backends: number[],
  extra: string[] = [],
  v8Flags: string = LB_V8_FLAGS,
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--unstable-net",
      `--v8-flags=${v8Flags}`,
      main,
      "-f",
      `127.0.0.1:${port}`,
      ...backends.flatMap((p) => ["-p", `127.0.0.1:${p}`]),
      ...extra,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
}
