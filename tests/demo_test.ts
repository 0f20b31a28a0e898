import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { httpGet } from "../backends/http_get.ts";
import { freePort, freePorts } from "./_helpers.ts";

const DEMO = new URL("../demo.ts", import.meta.url).pathname;

/**
 * `deno run demo.ts` with the permissions `deno task demo` grants, plus
 * `demoArgs`; stdin is closed, other options pass through.
 */
function demoCommand(demoArgs: string[], options: Deno.CommandOptions = {}): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-run", "--allow-read", "--allow-env", DEMO, ...demoArgs],
    stdin: "null",
    ...options,
  });
}

Deno.test("demo --once prints 10 answers spread evenly over three backends", async () => {
  const backends = freePorts(3);
  const { code, stdout, stderr } = await demoCommand([
    "--once",
    "--frontend",
    String(freePort()),
    "--backends",
    backends.join(","),
  ]).output();
  const out = new TextDecoder().decode(stdout);
  const what = `${out}\n${new TextDecoder().decode(stderr)}`;
  assertEquals(code, 0, what);
  const answers = [...out.matchAll(/^\s*(\d+): (.*)$/gm)].map((m) => m[2]!);
  assertEquals(answers.length, 10, what);
  for (const answer of answers) ok(/^hello from server on port \d+$/.test(answer), answer);
  const counts = [...out.matchAll(/^\s+(\d+)\s+hello from server on port (\d+)$/gm)]
    .map((m) => [Number(m[2]), Number(m[1])]);
  assertEquals(counts.map(([port]) => port).sort(), [...backends].sort(), what);
  assertEquals(counts.map(([, n]) => n).sort(), [3, 3, 4], what);
});

Deno.test("demo keeps serving after the requests until SIGINT, then stops lb and exits 0", async () => {
  const frontend = freePort();
  const child = demoCommand([
    "--requests",
    "3",
    "--frontend",
    String(frontend),
    "--backends",
    freePorts(3).join(","),
  ], { stdout: "piped", stderr: "piped" }).spawn();
  const stderr = new Response(child.stderr).text();
  let out = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const deadline = Date.now() + 20_000;
    while (!out.includes("lb is serving on port") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    ok(out.includes("lb is serving on port"), out);
    // Still serving: a request through the demo's lb gets an answer.
    ok((await httpGet(frontend)).startsWith("hello from server on port"));
  } finally {
    child.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
  }
  const status = await child.status;
  assertEquals(status.code, 0, `${out}\n${await stderr}`);
  await rejects(httpGet(frontend), Deno.errors.ConnectionRefused);
});

Deno.test("demo whose frontend port is taken exits 1 with lb's one line, no stack trace", async () => {
  using taken = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const { code, stderr } = await demoCommand([
    "--once",
    "--frontend",
    String((taken.addr as Deno.NetAddr).port),
    "--backends",
    "0,0,0",
  ], { stdout: "null" }).output();
  const text = new TextDecoder().decode(stderr);
  assertEquals(code, 1, text);
  ok(/^lb: cannot listen on /m.test(text), text);
  ok(!/^\s+at /m.test(text), `stack trace:\n${text}`);
  // The last line says which flag picks another port.
  ok(
    /^demo: lb did not start: \d+ is in use; pick another with --frontend PORT .*\n$/m.test(text),
    text,
  );
});

Deno.test("demo whose backend port is taken exits 1 with one line, no stack trace", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { code, stderr } = await demoCommand([
    "--once",
    "--frontend",
    "0",
    "--backends",
    `0,${(taken.addr as Deno.NetAddr).port},0`,
  ], { stdout: "null" }).output();
  const text = new TextDecoder().decode(stderr);
  assertEquals(code, 1, text);
  assertEquals(text.trim().split("\n").length, 1, text);
  ok(text.startsWith("demo: cannot start backends"), text);
  ok(text.includes("pick free ports with --backends P1,P2,P3"), text);
});

Deno.test("demo --help prints usage with every flag on stdout and exits 0", async () => {
  for (const flag of ["--help", "-h"]) {
    const { code, stdout, stderr } = await demoCommand([flag]).output();
    const out = new TextDecoder().decode(stdout);
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    assertEquals(new TextDecoder().decode(stderr), "");
    ok(out.startsWith("Usage: deno task demo [options]\n"), out);
    const flags = [...out.matchAll(/^ {2}(?:-\w, | {4})(--[\w-]+)/gm)].map((m) => m[1]);
    assertEquals(flags, ["--frontend", "--backends", "--requests", "--once", "--help"], out);
  }
});

Deno.test("demo with an unknown flag or a bad value exits 2 with the reason and usage", async () => {
  for (
    const [args, reason] of [
      [["--bogus"], /^demo: Unknown option '--bogus'/],
      [["--requests", "0"], /^demo: --requests must be a whole number above 0: got "0"/],
      [["--backends", "8101,x"], /^demo: --backends must be ports 0-65535 .*"8101,x"/],
    ] as const
  ) {
    const { code, stderr } = await demoCommand([...args], { stdout: "null" }).output();
    const text = new TextDecoder().decode(stderr);
    assertEquals(code, 2, text);
    ok(reason.test(text), text);
  }
});
