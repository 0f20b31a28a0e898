/**
 * The systemd units the Vagrant VM installs (deploy/): lb's command line in
 * lb.service is one lb accepts, and the backend template is a valid unit.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";

const DEPLOY = new URL("../../deploy/", import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function execStart(unit: string): string[] {
  const line = Deno.readTextFileSync(DEPLOY + unit).split("\n").find((l) =>
    l.startsWith("ExecStart=")
  );
  ok(line, `${unit} has no ExecStart=`);
  return line.slice("ExecStart=".length).trim().split(/\s+/);
}

Deno.test("lb.service runs dist/lb with flags lb accepts (lb --check)", async () => {
  const [binary, ...args] = execStart("lb.service");
  assertEquals(binary, "/vagrant/dist/lb");
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", MAIN, "--check", ...args],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assertEquals(code, 0, text);
  ok(/is valid \(1 frontend\(s\), 3 backend\(s\)\)/.test(text), text);
});

function hasSystemdAnalyze(): boolean {
  try {
    return Deno.statSync("/usr/bin/systemd-analyze").isFile;
  } catch {
    return false;
  }
}

const SYSTEMD = hasSystemdAnalyze();

Deno.test({
  name: "lb-backend@.service is a unit systemd accepts, with MSG per port" +
    (SYSTEMD ? "" : " (ignored: no /usr/bin/systemd-analyze here)"),
  ignore: !SYSTEMD,
  async fn() {
    const dir = Deno.makeTempDirSync();
    try {
      const template = Deno.readTextFileSync(DEPLOY + "lb-backend@.service");
      ok(template.includes('Environment="MSG=hello from server on port %i"'), template);
      Deno.writeTextFileSync(`${dir}/lb-backend@.service`, template);
      Deno.writeTextFileSync(`${dir}/lb-backend@8101.service`, template);
      const { code, stderr } = await new Deno.Command("/usr/bin/systemd-analyze", {
        args: ["verify", "--man=no", `${dir}/lb-backend@8101.service`],
        stdin: "null",
        stdout: "null",
      }).output();
      const text = new TextDecoder().decode(stderr);
      assertEquals(code, 0, text);
      ok(!/warning|invalid|ignoring/i.test(text), text);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
