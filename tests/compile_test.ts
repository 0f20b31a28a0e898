/**
 * `deno task compile` builds a standalone lb that works end to end. Offline
 * builds need a denort binary in DENORT_BIN; without one the test is ignored
 * and says why (the `deno` CLI itself cannot serve as DENORT_BIN).
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { httpGet } from "../backends/http_get.ts";
import { startBackends } from "../backends/httpd.ts";
import { startLb } from "../support/lb_process.ts";
import { LOOPBACK } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function denortMissing(): string | undefined {
  const denort = Deno.env.get("DENORT_BIN");
  if (!denort) return "DENORT_BIN is not set (no denort to build offline with)";
  try {
    if (!Deno.statSync(denort).isFile) return `DENORT_BIN=${denort} is not a file`;
  } catch {
    return `DENORT_BIN=${denort} does not exist`;
  }
  return undefined;
}

/** The `compile` task's arguments from deno.json, with the output moved to `output`. */
function compileArgs(output: string): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks;
  const words = String(tasks.compile).split(/\s+/);
  ok(words[0] === "deno" && words[1] === "compile", `unexpected compile task: ${tasks.compile}`);
  const args = words.slice(1);
  const at = args.indexOf("--output");
  ok(at > 0, "the compile task names its --output");
  args[at + 1] = output;
  return args;
}

const missing = denortMissing();
if (missing) console.log(`compile_test ignored: ${missing}`);

Deno.test({
  name: `deno task compile builds an lb that balances round robin${
    missing ? ` (ignored: ${missing})` : ""
  }`,
  ignore: missing !== undefined,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "lb-compile-" });
    try {
      const binary = `${dir}/lb`;
      const built = await new Deno.Command(Deno.execPath(), {
        args: compileArgs(binary),
        cwd: ROOT,
        stdin: "null",
      }).output();
      const log = new TextDecoder().decode(built.stderr);
      assertEquals(built.code, 0, log);
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
      ], { binary, timeoutMs: 20_000 });
      const answers: string[] = [];
      for (let i = 0; i < 6; i++) answers.push(await httpGet(lb.port));
      assertEquals(
        new Set(answers.slice(0, 3)),
        new Set(backends.ports.map((p) => `hello from server on port ${p}`)),
      );
      assertEquals(answers.slice(3), answers.slice(0, 3));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
