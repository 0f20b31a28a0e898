/**
 * `deno task compile` (support/compile.ts) and `deno task lb`: the same flags
 * for both, refusals in one line that leave nothing behind, and, when a real
 * denort is in DENORT_BIN, a standalone lb that works end to end (ignored
 * otherwise, with the reason). Every build writes into a temp folder.
 * @module
 */
import { deepStrictEqual as assertEquals, match, ok } from "node:assert/strict";
import { dirname } from "node:path";
import { httpGet } from "../backends/http_get.ts";
import { startBackends } from "../backends/httpd.ts";
import {
  compileArgs,
  denortProblem,
  LB_FLAGS,
  LB_PERMISSIONS,
  WORKER_MODULE,
} from "../support/compile.ts";
import { startLb } from "../support/lb_process.ts";
import { LOOPBACK } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TASKS: Record<string, string> = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks;
const decoder = new TextDecoder();

/** A task's command line as words, `deno` first. */
function taskWords(name: string): string[] {
  const task = TASKS[name];
  ok(task !== undefined, `deno.json has no "${name}" task`);
  return task.trim().split(/\s+/);
}

/** Runs the compile task's command (its own permissions) with `args`; stdin closed. */
async function runCompile(args: string[], options: Deno.CommandOptions = {}) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [...taskWords("compile").slice(1), ...args],
    cwd: ROOT,
    stdin: "null",
    ...options,
  }).output();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A temp folder for one test; `out` (not created) is where the binary would go. */
function tempDir(): { dir: string; out: string } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "lb-compile-" });
  return {
    dir,
    out: `${dir}/out/lb`,
    [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }),
  };
}

/** Asserts a refusal: exit 1, one `compile:` line matching `pattern`, no output folder. */
function assertRefused(
  result: { code: number; stderr: string },
  pattern: RegExp,
  out: string,
): void {
  assertEquals(result.code, 1, result.stderr);
  const lines = result.stderr.trim().split("\n");
  assertEquals(lines.length, 1, result.stderr);
  match(lines[0]!, /^compile: /);
  match(lines[0]!, pattern);
  ok(!exists(out), `${out} was written`);
  ok(!exists(dirname(out)), `${dirname(out)} was left behind`);
}

Deno.test("deno task lb runs main.ts with exactly the compiled binary's flags", () => {
  const words = taskWords("lb");
  assertEquals(words.slice(0, 2), ["deno", "run"]);
  assertEquals(words.at(-1), "main.ts");
  assertEquals(words.slice(2, -1), [...LB_FLAGS]);
  assertEquals(LB_FLAGS.filter((f) => f.startsWith("--allow-")), [...LB_PERMISSIONS]);
});

Deno.test("deno task compile runs support/compile.ts, which builds main.ts with LB_FLAGS", () => {
  const words = taskWords("compile");
  assertEquals(words.slice(0, 2), ["deno", "run"]);
  assertEquals(words.at(-1), "support/compile.ts");
  const args = compileArgs("/x/lb");
  assertEquals(args.slice(0, 1 + LB_FLAGS.length), ["compile", ...LB_FLAGS]);
  assertEquals(args.slice(1 + LB_FLAGS.length), [
    "--include",
    WORKER_MODULE,
    "--output",
    "/x/lb",
    "main.ts",
  ]);
  ok(exists(`${ROOT}${WORKER_MODULE}`), `${WORKER_MODULE} (the --include) is missing`);
});

Deno.test("deno task lb --version prints lb's version", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "lb", "--version"],
    cwd: ROOT,
    stdin: "null",
  }).output();
  assertEquals(code, 0, decoder.decode(stderr));
  match(decoder.decode(stdout), /^lb \S+\n$/);
});

Deno.test("compile refuses a DENORT_BIN that is the Deno CLI in one line, writing nothing", async () => {
  using tmp = tempDir();
  const result = await runCompile(["--output", tmp.out], {
    env: { DENORT_BIN: Deno.execPath() },
  });
  assertRefused(
    result,
    /is the Deno CLI \(deno \d+\.\d+\.\d+\), not denort: set DENORT_BIN/,
    tmp.out,
  );
});

Deno.test("compile refuses a DENORT_BIN that does not exist or cannot run, in one line", async (t) => {
  using tmp = tempDir();
  await t.step("missing", async () => {
    const result = await runCompile(["--output", tmp.out], {
      env: { DENORT_BIN: `${tmp.dir}/nonexistent` },
    });
    assertRefused(result, /nonexistent does not exist: set DENORT_BIN to a denort/, tmp.out);
  });
  await t.step("not executable", async () => {
    Deno.writeTextFileSync(`${tmp.dir}/denort`, "");
    const result = await runCompile(["--output", tmp.out], {
      env: { DENORT_BIN: `${tmp.dir}/denort` },
    });
    assertRefused(result, /denort is not executable: set DENORT_BIN/, tmp.out);
  });
  await t.step("a folder", async () => {
    const result = await runCompile(["--output", tmp.out], { env: { DENORT_BIN: tmp.dir } });
    assertRefused(result, /is not a file/, tmp.out);
  });
});

Deno.test("compile without DENORT_BIN, offline, says in one line to set it and writes nothing", async () => {
  using tmp = tempDir();
  // A fresh DENO_DIR has no cached denort, and the unreachable proxy fails the download at once.
  const env: Record<string, string> = {
    DENO_DIR: `${tmp.dir}/deno_dir`,
    HTTPS_PROXY: "http://127.0.0.1:1",
    HTTP_PROXY: "http://127.0.0.1:1",
    NO_COLOR: "1",
  };
  for (const name of ["PATH", "HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const result = await runCompile(["--output", tmp.out], { env, clearEnv: true });
  assertRefused(
    result,
    /^compile: cannot download denort \(offline\?\): set DENORT_BIN to a denort \d+\.\d+\.\d+ binary \(see README "Compiling"\)/,
    tmp.out,
  );
});

const TRUE = ["/usr/bin/true", "/bin/true"].find(exists);

Deno.test({
  name: `compile deletes a binary whose --version is not lb's and says so in one line${
    TRUE ? "" : " (ignored: no /usr/bin/true to build from)"
  }`,
  ignore: TRUE === undefined,
  async fn() {
    using tmp = tempDir();
    // An ELF that is not denort: deno compile takes it, the result answers as `true` does.
    const result = await runCompile(["--output", tmp.out], { env: { DENORT_BIN: TRUE! } });
    assertRefused(result, /the binary is not lb: its --version printed .*, not "lb \S+"/, tmp.out);
  },
});

/** `cc` on PATH, or undefined. */
const CC = ["cc", "gcc"].find((program) => {
  try {
    return new Deno.Command(program, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
});

Deno.test({
  name: `compile keeps a binary whose --version is lb's, creating its folder${
    CC ? "" : " (ignored: no cc to build a stand-in denort)"
  }`,
  ignore: CC === undefined,
  async fn() {
    using tmp = tempDir();
    const version = (await new Deno.Command(Deno.execPath(), {
      args: ["run", `${ROOT}main.ts`, "--version"],
    }).output()).stdout;
    const want = decoder.decode(version).trim();
    // A stand-in denort that answers as lb does: deno compile appends lb to it, unread.
    Deno.writeTextFileSync(
      `${tmp.dir}/denort.c`,
      `#include <stdio.h>\nint main(void) { puts(${JSON.stringify(want)}); return 0; }\n`,
    );
    const cc = await new Deno.Command(CC!, {
      args: ["-o", `${tmp.dir}/denort`, `${tmp.dir}/denort.c`],
    }).output();
    assertEquals(cc.code, 0, decoder.decode(cc.stderr));
    const result = await runCompile(["--output", tmp.out], {
      env: { DENORT_BIN: `${tmp.dir}/denort` },
    });
    assertEquals(result.code, 0, result.stderr);
    match(result.stderr, new RegExp(`^compile: wrote ${tmp.out} \\(${want}, \\d+ MiB, `));
    ok(Deno.statSync(tmp.out).isFile);
    assertEquals([...Deno.readDirSync(dirname(tmp.out))].map((e) => e.name), ["lb"]);
  },
});

Deno.test("compile --help prints usage and exits 0; a bad flag exits 2", async () => {
  const help = await runCompile(["--help"]);
  assertEquals(help.code, 0, help.stderr);
  match(help.stdout, /^Usage: deno task compile \[--output PATH\]/);
  const bad = await runCompile(["--bogus"]);
  assertEquals(bad.code, 2, bad.stderr);
  match(bad.stderr, /^compile: Unknown option '--bogus'/);
});

const DENORT = Deno.env.get("DENORT_BIN");
const missing = DENORT === undefined
  ? "DENORT_BIN is not set (no denort to build offline with)"
  : await denortProblem(DENORT);
if (missing) console.log(`compile_test end to end ignored: ${missing}`);

Deno.test({
  name: `deno task compile builds an lb that balances round robin${
    missing ? ` (ignored: ${missing})` : ""
  }`,
  ignore: missing !== undefined,
  async fn() {
    using tmp = tempDir();
    const built = await runCompile(["--output", tmp.out]);
    assertEquals(built.code, 0, built.stderr);
    match(built.stderr, /^compile: wrote .*\(lb \S+, \d+ MiB, /m);
    await using backends = startBackends(
      [0, 0, 0],
      (port) => `hello from server on port ${port}`,
    );
    await using lb = await startLb([
      "-f",
      `${LOOPBACK}:0`,
      "--health-interval",
      "0",
      ...backends.ports.flatMap((p) => ["-p", String(p)]),
    ], { binary: tmp.out, timeoutMs: 20_000 });
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push(await httpGet(lb.port));
    assertEquals(
      new Set(answers.slice(0, 3)),
      new Set(backends.ports.map((p) => `hello from server on port ${p}`)),
    );
    assertEquals(answers.slice(3), answers.slice(0, 3));
  },
});
