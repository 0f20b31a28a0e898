/**
 * Runs `main.ts` (or a compiled `lb`) as a child process and follows its
 * output: used by the demo, the end-to-end tests and the bench.
 * @module
 */

import { LB_FLAGS } from "./compile.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
/**
 * The main thread's `listening on` line of a frontend; the admin endpoint's
 * (`admin: listening on`) and a worker's (`worker1 lb: ...`, the same port) are not.
 */
const FRONTEND_LISTENING = /^\S+ lb: .*(?<!admin: )listening on /;

/** Options for {@link startLb}. */
export interface StartOptions {
  /** A compiled binary to run instead of `deno run main.ts`. */
  binary?: string;
  /**
   * `deno run` flags (permissions, unstable, V8). @default LB_FLAGS: exactly the
   * compiled binary's, so that every end-to-end test proves the binary needs no other permission
   */
  denoFlags?: string[];
  /** How many `listening on` lines to wait for. @default 1 */
  frontends?: number;
  /** Bound on the start-up wait, ms. @default 10000 */
  timeoutMs?: number;
  /** Pass stderr through to ours as well as collecting it. @default false */
  echo?: boolean;
  env?: Record<string, string>;
}

/** A running lb: its ports and output. Dispose to stop it (SIGTERM, then SIGKILL). */
export interface LbProcess extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** The first frontend's port. */
  readonly port: number;
  /** Every frontend's port, in start order. */
  readonly ports: number[];
  /** stderr lines so far (operational log). */
  readonly stderr: string[];
  /** stdout lines so far (access log). */
  readonly stdout: string[];
  /** Resolves with the first stderr or stdout line, old or new, matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  readonly status: Promise<Deno.CommandStatus>;
}

/**
 * Starts lb with `args` and waits until every frontend is listening.
 *
 * @throws {Error} With lb's output when it exits or stalls before listening.
 */
export async function startLb(args: string[], options: StartOptions = {}): Promise<LbProcess> {
  const denoFlags = options.denoFlags ?? [...LB_FLAGS];
  const child = new Deno.Command(
    options.binary ?? Deno.execPath(),
    {
      args: options.binary ? args : ["run", ...denoFlags, MAIN, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: options.env ?? {},
    },
  ).spawn();
  const stderr: string[] = [];
  const stdout: string[] = [];
  const waiters = new Set<() => void>();
  const follow = async (stream: ReadableStream<Uint8Array>, lines: string[], echo: boolean) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (echo) console.error(line);
      }
      for (const wake of waiters) wake();
    }
    if (rest) lines.push(rest);
    for (const wake of waiters) wake();
  };
  const reading = Promise.all([
    follow(child.stderr, stderr, options.echo ?? false),
    follow(child.stdout, stdout, false),
  ]);
  let exited = false;
  const status = child.status.then(async (s) => {
    exited = true;
    await reading;
    for (const wake of waiters) wake();
    return s;
  });

  const waitFor = (pattern: RegExp, timeoutMs = 10_000, count = 1) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hits = [...stderr, ...stdout].filter((l) => pattern.test(l));
        if (hits.length >= count) return done(() => resolve(hits[count - 1]!));
        if (exited) {
          done(() =>
            reject(new Error(`lb exited before ${pattern}:\n${[...stderr, ...stdout].join("\n")}`))
          );
        }
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(new Error(`no ${pattern} from lb in ${timeoutMs}ms:\n${stderr.join("\n")}`))
          ),
        timeoutMs,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      waiters.add(check);
      check();
    });

  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (!exited) {
      try {
        child.kill(signal);
      } catch {
        // Exited meanwhile.
      }
    }
    return await status;
  };

  const frontends = options.frontends ?? 1;
  let ports: number[];
  try {
    await waitFor(FRONTEND_LISTENING, options.timeoutMs ?? 10_000, frontends);
    ports = stderr.filter((l) => FRONTEND_LISTENING.test(l)).map((l) =>
      Number(/listening on \S*:(\d+)/.exec(l)?.[1])
    );
  } catch (error) {
    await stop("SIGKILL");
    throw error;
  }
  return {
    child,
    port: ports[0]!,
    ports,
    stderr,
    stdout,
    waitFor: (pattern, timeoutMs) => waitFor(pattern, timeoutMs),
    stop,
    status,
    async [Symbol.asyncDispose]() {
      if (exited) return void await status;
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 5000);
      await stop("SIGTERM");
      clearTimeout(timer);
    },
  };
}
