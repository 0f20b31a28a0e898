/**
 * lb in front of the seed's real Flask backends (Debian's python3-flask).
 * Ignored, with the reason printed, where /usr/bin/python3 cannot import flask.
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { httpGet } from "../backends/http_get.ts";
import { startLb } from "../support/lb_process.ts";
import { freePort, freePorts, LOOPBACK, spawnQuiet, waitUntil } from "./_helpers.ts";

const PYTHON = "/usr/bin/python3";
const BACKENDS_DIR = new URL("../backends/", import.meta.url).pathname;

function flaskMissing(): string | undefined {
  try {
    const { code, stderr } = new Deno.Command(PYTHON, {
      args: ["-c", "import flask"],
      stdout: "null",
    }).outputSync();
    if (code === 0) return undefined;
    return `${PYTHON} cannot import flask: ${
      new TextDecoder().decode(stderr).trim().split("\n").pop()
    }`;
  } catch (error) {
    return `${PYTHON} cannot run: ${error instanceof Error ? error.message : error}`;
  }
}

/** Waits (up to 20 s: Flask starts slowly) until `port` answers an HTTP GET. */
function waitForFlask(port: number): Promise<void> {
  return waitUntil(
    () => httpGet(port).then(() => true, () => false),
    `flask on port ${port}`,
    20_000,
  );
}

const missing = flaskMissing();
if (missing) console.log(`flask_test ignored: ${missing} (apt-get install python3-flask)`);

Deno.test({
  name: `lb balances real Flask backends round robin${missing ? ` (ignored: ${missing})` : ""}`,
  ignore: missing !== undefined,
  async fn() {
    const ports = freePorts(3);
    const flasks = ports.map((port) =>
      spawnQuiet(PYTHON, {
        args: ["-m", "flask", "run", "--host", LOOPBACK, "--port", String(port)],
        cwd: BACKENDS_DIR,
        env: {
          FLASK_APP: "httpd.py",
          MSG: `hello from server on port ${port}`,
          PYTHONDONTWRITEBYTECODE: "1",
        },
      })
    );
    try {
      for (const port of ports) {
        await waitForFlask(port);
      }
      await using lb = await startLb([
        "-f",
        `${LOOPBACK}:0`,
        "--health-interval",
        "0",
        ...ports.flatMap((p) => ["-p", String(p)]),
      ]);
      const answers: string[] = [];
      for (let i = 0; i < 6; i++) answers.push(await httpGet(lb.port));
      assertEquals(
        new Set(answers.slice(0, 3)),
        new Set(ports.map((p) => `hello from server on port ${p}`)),
      );
      assertEquals(answers.slice(3), answers.slice(0, 3));
    } finally {
      for (const flask of flasks) {
        try {
          flask.kill("SIGTERM");
        } catch { /* exited */ }
      }
      await Promise.all(flasks.map((f) => f.status));
    }
  },
});

Deno.test({
  name: `backends/run_flask.sh starts one Flask backend per port and stops them on SIGTERM${
    missing ? ` (ignored: ${missing})` : ""
  }`,
  ignore: missing !== undefined,
  async fn() {
    const ports = freePorts(2);
    const launcher = spawnQuiet("bash", {
      args: [`${BACKENDS_DIR}run_flask.sh`, ...ports.map(String)],
      env: { PYTHONDONTWRITEBYTECODE: "1" },
    });
    try {
      for (const port of ports) {
        await waitForFlask(port);
        assertEquals(await httpGet(port), `hello from server on port ${port}`);
      }
    } finally {
      launcher.kill("SIGTERM");
      await launcher.status;
    }
    // The launcher takes its Flask processes with it.
    for (const port of ports) {
      await waitUntil(
        () => httpGet(port).then(() => false, () => true),
        `flask on port ${port} to stop`,
        10_000,
      );
    }
  },
});

Deno.test({
  name: `backends/httpd.py answers Hello, World! without MSG${
    missing ? ` (ignored: ${missing})` : ""
  }`,
  ignore: missing !== undefined,
  async fn() {
    const port = freePort();
    const env: Record<string, string> = { FLASK_APP: "httpd.py", PYTHONDONTWRITEBYTECODE: "1" };
    for (const name of ["PATH", "HOME", "LANG"]) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
    const flask = spawnQuiet(PYTHON, {
      args: ["-m", "flask", "run", "--host", LOOPBACK, "--port", String(port)],
      cwd: BACKENDS_DIR,
      env,
      clearEnv: true,
    });
    try {
      await waitForFlask(port);
      assertEquals(await httpGet(port), "Hello, World!");
    } finally {
      flask.kill("SIGTERM");
      await flask.status;
    }
  },
});
