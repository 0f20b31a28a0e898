/**
 * Runs an external command with a hard time bound.
 * @module
 */

/** What a bounded command printed, and how it ended. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs `command args`, killing it (SIGKILL) after `timeoutMs`. Never throws on a non-zero exit. */
export async function runBounded(command: string, args: string[], timeoutMs: number): Promise<Ran> {
  const child = new Deno.Command(command, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    timedOut,
  };
}
