/**
 * lb: a TCP (layer-4) load balancer.
 *
 * @example
 * ```sh
 * deno task lb -f 8080 -p 8101 -p 8102 -p 8103
 * ```
 * @module
 */
import { describe } from "./src/common/errors.ts";
import { run } from "./src/lb/run.ts";

/** Exit status of an internal error (a bug in lb): EX_SOFTWARE from sysexits.h. */
export const EXIT_INTERNAL_ERROR = 70;

/**
 * Runs `runner` (lb itself by default) and exits with its status. If it
 * throws, that is a bug in lb: one line on stderr, never a stack trace, and
 * exit status {@link EXIT_INTERNAL_ERROR}.
 */
export async function main(
  args: string[],
  runner: (args: string[]) => Promise<number> = run,
): Promise<never> {
  // A rejection nobody awaited belongs to one connection or one request, not
  // to lb: one line, and lb keeps serving everyone else.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    console.error(`lb: internal error: ${describe(event.reason)}`);
  });
  let status: number;
  try {
    status = await runner(args);
  } catch (error) {
    console.error(`lb: internal error: ${describe(error)}`);
    status = EXIT_INTERNAL_ERROR;
  }
  Deno.exit(status);
}

if (import.meta.main) await main(Deno.args);
