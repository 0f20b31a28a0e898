/**
 * lb: a TCP (layer-4) load balancer.
 *
 * @example
 * ```sh
 * deno run --allow-net main.ts -f 8080 -p 8101 -p 8102 -p 8103
 * ```
 * @module
 */
import { run } from "./src/lb/run.ts";

if (import.meta.main) {
  // Last line of defence: one line, never a stack trace, and keep serving.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    const reason = event.reason instanceof Error ? event.reason.message : String(event.reason);
    console.error(`lb: internal error: ${reason}`);
  });
  Deno.exit(await run(Deno.args));
}
