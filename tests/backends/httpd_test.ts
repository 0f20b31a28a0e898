import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { httpGet } from "../../backends/http_get.ts";
import { startBackends } from "../../backends/httpd.ts";
import { freePort, spawnQuiet, waitUntil } from "../_helpers.ts";

const HTTPD = new URL("../../backends/httpd.ts", import.meta.url).pathname;

Deno.test("startBackends answers each port with its own message, on port 0 too", async () => {
  await using backends = startBackends([0, 0], (port) => `hello from server on port ${port}`);
  assertEquals(backends.ports.length, 2);
  for (const port of backends.ports) {
    assertEquals(await httpGet(port), `hello from server on port ${port}`);
  }
});

/** Runs backends/httpd.ts as a program on `port` with only `env` (plus HOME, PATH, DENO_DIR). */
async function answerOf(port: number, env: Record<string, string>): Promise<string> {
  for (const name of ["HOME", "PATH", "DENO_DIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env = { [name]: value, ...env };
  }
  const child = spawnQuiet(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", HTTPD, String(port)],
    env,
    clearEnv: true,
  });
  try {
    let answer = "";
    await waitUntil(
      () => httpGet(port).then((body) => (answer = body, true), () => false),
      `httpd.ts on port ${port}`,
    );
    return answer;
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

Deno.test("httpd.ts answers MSG from the environment, {port} filled in", async () => {
  const port = freePort();
  assertEquals(await answerOf(port, { MSG: "msg {port}" }), `msg ${port}`);
});

Deno.test("httpd.ts answers Hello, World! without MSG, like the seed's Flask app", async () => {
  assertEquals(await answerOf(freePort(), {}), "Hello, World!");
});

Deno.test("httpd.ts without ports prints usage and exits 2", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", HTTPD],
    stdin: "null",
  }).output();
  assertEquals(code, 2);
  assertEquals(new TextDecoder().decode(stderr).startsWith("usage: httpd.ts"), true);
});

Deno.test("httpd.ts on a taken port says so in one line and exits 1", async () => {
  using taken = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", HTTPD, String((taken.addr as Deno.NetAddr).port)],
    stdin: "null",
    stdout: "null",
  }).output();
  const text = new TextDecoder().decode(stderr);
  assertEquals(code, 1, text);
  assertEquals(text.trim().split("\n").length, 1, text);
});

Deno.test("httpd.ts prints one line on stderr with every port it listens on, port 0 resolved", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", HTTPD, "0", "0"],
    env: { MSG: "msg {port}" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) break;
      text += value;
    }
    const first = text.split("\n")[0]!;
    const match = /^httpd\.ts: listening on 0\.0\.0\.0:(\d+), 0\.0\.0\.0:(\d+)$/.exec(first);
    assertEquals(match !== null, true, text);
    // Announced once listening: each port answers at once, no waiting.
    for (const port of [Number(match![1]), Number(match![2])]) {
      assertEquals(await httpGet(port), `msg ${port}`);
    }
  } finally {
    child.kill("SIGTERM");
    for (let r = await lines.read(); !r.done; r = await lines.read()) text += r.value;
    await child.status;
  }
  assertEquals(text.trim().split("\n").length, 1, text);
});
