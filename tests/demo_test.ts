import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { freePort } from "./_helpers.ts";

const DEMO = new URL("../demo.ts", import.meta.url).pathname;

Deno.test("demo --once prints 10 answers spread evenly over three backends", async () => {
  const backends = [freePort(), freePort(), freePort()];
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-run",
      "--allow-read",
      "--allow-env",
      DEMO,
      "--once",
      "--frontend",
      String(freePort()),
      "--backends",
      backends.join(","),
    ],
    stdin: "null",
  }).output();
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
