/**
 * `deno task compile [--output PATH]`: builds the standalone `lb` (default
 * `dist/lb`) with exactly {@link LB_FLAGS}, and checks before and after that
 * the result is lb. A `DENORT_BIN` that is missing, not executable or the
 * Deno CLI itself is refused; a denort download that fails (offline) becomes
 * one line saying what to do; the binary is kept only when its `--version`
 * prints what `deno run main.ts --version` prints. Every refusal is one line
 * on stderr (type errors come above it, in deno's words) and exit 1, and
 * leaves neither a binary nor an empty folder.
 *
 * `deno task lb` runs main.ts from source with the same flags (deno.json;
 * tests/compile_test.ts keeps the two equal).
 *
 * @example
 * ```sh
 * deno task compile                                   # dist/lb, denort downloaded once
 * DENORT_BIN=/opt/denort deno task compile --output /tmp/lb
 * ```
 * @module
 */
import { dirname, relative, resolve } from "node:path";
import { parseArgs } from "node:util";

/** What lb may do: listen and dial, read `--config`, write `--log-file`. */
export const LB_PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write"] as const;

/** V8 flags: a 1 MiB young generation, for less memory per idle connection (bench/README.md). */
export const LB_V8_FLAGS = "--max-semi-space-size=1";

/** `--unstable-net` for `--workers` (SO_REUSEPORT), then the V8 flags. */
export const LB_RUNTIME_FLAGS = ["--unstable-net", `--v8-flags=${LB_V8_FLAGS}`] as const;

/** Every flag lb runs with, compiled or from source (`deno task lb`), in that order. */
export const LB_FLAGS = [...LB_RUNTIME_FLAGS, ...LB_PERMISSIONS] as const;

/** The Worker module behind `--workers`: loaded by URL, so `deno compile` must be told. */
export const WORKER_MODULE = "src/workers/worker.ts";

/** Where the binary goes without `--output`, relative to the repository. */
export const DEFAULT_OUTPUT = "dist/lb";

const ROOT = resolve(new URL("../", import.meta.url).pathname);
const USAGE = `Usage: deno task compile [--output PATH]

Builds the standalone lb (default: ${DEFAULT_OUTPUT}) with ${LB_FLAGS.join(" ")}.
Offline, set DENORT_BIN to a denort ${Deno.version.deno} binary (see README "Compiling").`;
/** Bound on running DENORT_BIN or the built binary with `--version`. */
const VERSION_TIMEOUT_MS = 10_000;

/**
 * The arguments of `deno compile` that build lb into `output`.
 *
 * @param output Path of the binary.
 * @returns `compile`, {@link LB_FLAGS}, the worker include, the output and main.ts.
 */
export function compileArgs(output: string): string[] {
  return ["compile", ...LB_FLAGS, "--include", WORKER_MODULE, "--output", output, "main.ts"];
}

/** What a program printed, bounded in time. */
interface Bounded {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs `program args` with stdin closed; kills it (SIGKILL) after `timeoutMs`. */
async function runBounded(
  program: string,
  args: string[],
  timeoutMs: number,
  cwd = ROOT,
): Promise<Bounded> {
  const child = new Deno.Command(program, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, timeoutMs);
  try {
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr), timedOut };
  } finally {
    clearTimeout(timer);
  }
}

function firstLine(text: string): string {
  const line = stripAnsi(text).trim().split("\n")[0] ?? "";
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}

function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/**
 * Why `path` cannot serve as DENORT_BIN, or undefined when it may: it must be
 * an executable file and not the Deno CLI, which answers `--version` with
 * `deno X.Y.Z` (a denort without an embedded program only complains, and is
 * killed after a bound in case it runs one).
 *
 * @param path The DENORT_BIN value.
 * @returns The reason, for a one-line refusal.
 */
export async function denortProblem(path: string): Promise<string | undefined> {
  if (path === "") return "DENORT_BIN is set but empty";
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? `DENORT_BIN=${path} does not exist`
      : `DENORT_BIN=${path} cannot be read: ${message(error)}`;
  }
  if (!info.isFile) return `DENORT_BIN=${path} is not a file`;
  if (info.mode !== null && (info.mode & 0o111) === 0) {
    return `DENORT_BIN=${path} is not executable`;
  }
  let probe: Bounded;
  try {
    probe = await runBounded(path, ["--version"], VERSION_TIMEOUT_MS);
  } catch (error) {
    return `DENORT_BIN=${path} cannot be run: ${message(error)}`;
  }
  const said = /^deno \d+\.\d+\.\d+\S*/m.exec(stripAnsi(probe.stdout))?.[0];
  if (said) return `DENORT_BIN=${path} is the Deno CLI (${said}), not denort`;
  return undefined;
}

/** The top-most folder of `dir` that does not exist yet, if any. */
function firstMissing(dir: string): string | undefined {
  let missing: string | undefined;
  for (let at = dir; at !== dirname(at); at = dirname(at)) {
    try {
      Deno.statSync(at);
      return missing;
    } catch {
      missing = at;
    }
  }
  return missing;
}

/** deno's output up to its `Stack backtrace:` (which says nothing about lb). */
function withoutBacktrace(text: string): string {
  return text.replace(/\n*Stack backtrace:[\s\S]*$/, "").trimEnd();
}

function denortHint(): string {
  return `set DENORT_BIN to a denort ${Deno.version.deno} binary (see README "Compiling")`;
}

/**
 * One line for a failed `deno compile` whose type check passed: its `error:`
 * line and the last cause of the chain under it, with what to do.
 */
function compileFailure(stderr: string, denort: string | undefined): string {
  // Its numbered frames would look like the cause chain above them.
  const log = withoutBacktrace(stripAnsi(stderr));
  const cause = log.split("\n").map((l) => /^\s*\d+: (.*)$/.exec(l)?.[1]).filter(Boolean).at(-1);
  const said = cause ?? /^error: (.*)$/m.exec(log)?.[1] ?? firstLine(log);
  // deno prints "Download <url of denort>" as it starts fetching: an error right after it is
  // the download's (deno has no exit status of its own for that).
  if (!denort && /^Download\s+\S*denort\S*\s*\n\s*error:/m.test(log)) {
    return `cannot download denort (offline?): ${denortHint()}; deno said: ${said}`;
  }
  return denort
    ? `deno compile failed with DENORT_BIN=${denort} (${said}): ${denortHint()}`
    : `deno compile failed: ${said}`;
}

/**
 * Builds lb into `output` (an absolute path), checked
 * before and after; on any failure nothing is left at `output` or in a
 * folder it created.
 *
 * @param output Where the binary goes.
 * @param denort The DENORT_BIN value, if set (absolute).
 * @returns The `lb --version` line of the binary written.
 * @throws {Error} With a one-line reason.
 */
async function compile(output: string, denort: string | undefined): Promise<string> {
  try {
    Deno.statSync(resolve(ROOT, WORKER_MODULE));
  } catch {
    throw new Error(
      `${WORKER_MODULE} (the --workers module) is missing: update WORKER_MODULE in support/compile.ts`,
    );
  }
  if (denort !== undefined) {
    const problem = await denortProblem(denort);
    if (problem) throw new Error(`${problem}: ${denortHint()}`);
  }
  // Type errors first, in deno's own words: any later failure then fits one line.
  const checked = await new Deno.Command(Deno.execPath(), {
    args: ["check", "main.ts", WORKER_MODULE],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!checked.success) {
    console.error(withoutBacktrace(new TextDecoder().decode(checked.stderr)));
    throw new Error(`main.ts does not type-check (above): nothing written`);
  }

  const source = await runBounded(Deno.execPath(), ["run", "main.ts", "--version"], 60_000);
  const want = source.stdout.trim();
  if (source.code !== 0 || !/^lb \S+$/.test(want)) {
    throw new Error(
      `deno run main.ts --version printed "${firstLine(source.stdout + source.stderr)}", ` +
        `not "lb VERSION": fix main.ts first`,
    );
  }

  const parent = dirname(output);
  const created = firstMissing(parent);
  Deno.mkdirSync(parent, { recursive: true });
  const work = Deno.makeTempDirSync({ dir: parent, prefix: ".lb-compile-" });
  let kept = false;
  try {
    const built = `${work}/lb`;
    const child = new Deno.Command(Deno.execPath(), {
      args: compileArgs(built),
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(denort ? { env: { DENORT_BIN: denort } } : {}),
    });
    const { code, stderr } = await child.output();
    if (code !== 0) throw new Error(compileFailure(new TextDecoder().decode(stderr), denort));
    const check = await runBounded(built, ["--version"], VERSION_TIMEOUT_MS, work);
    const got = check.stdout.trim();
    if (got !== want) {
      const printed = check.timedOut
        ? `did not answer in ${VERSION_TIMEOUT_MS / 1000}s`
        : `printed "${firstLine(check.stdout + check.stderr)}"`;
      throw new Error(
        `the binary is not lb: its --version ${printed}, not "${want}"; ` +
          (denort ? `DENORT_BIN=${denort} is not a denort: ${denortHint()}` : "nothing written"),
      );
    }
    Deno.renameSync(built, output);
    kept = true;
    return want;
  } finally {
    Deno.removeSync(work, { recursive: true });
    if (!kept && created) Deno.removeSync(created, { recursive: true });
  }
}

/** Where the command was started: `deno task` runs in the repository but keeps it in INIT_CWD. */
function callerDir(): string {
  return Deno.env.get("INIT_CWD") ?? Deno.cwd();
}

/** `path` relative to where the command was started when inside it. */
function shown(path: string): string {
  const rel = relative(callerDir(), path);
  return rel.startsWith("..") ? path : rel;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The command line: `[--output PATH] [--help]`.
 *
 * @returns The exit status: 0 built, 1 refused or failed, 2 bad arguments.
 */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        output: { type: "string", short: "o" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    console.error(`compile: ${message(error)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const output = values.output === undefined
    ? resolve(ROOT, DEFAULT_OUTPUT)
    : resolve(callerDir(), values.output);
  try {
    const denort = Deno.env.get("DENORT_BIN");
    const version = await compile(output, denort ? resolve(callerDir(), denort) : denort);
    const mib = (Deno.statSync(output).size / 2 ** 20).toFixed(0);
    console.error(
      `compile: wrote ${shown(output)} (${version}, ${mib} MiB, ${LB_FLAGS.join(" ")})`,
    );
    return 0;
  } catch (error) {
    console.error(`compile: ${message(error)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
