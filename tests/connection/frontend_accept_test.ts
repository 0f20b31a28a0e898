/**
 * The accept loop under a storm of clients that reset before they are
 * accepted. Deno cannot set `SO_LINGER 0`, so a small python3 client makes
 * the resets; ignored, with the reason printed, without python3.
 * @module
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { Gate } from "../../src/connection/gate.ts";
import { Frontend } from "../../src/connection/frontend.ts";
import { Logger } from "../../src/observability/log.ts";
import { LOOPBACK, readExactly, startEchoServer, withTimeout, writeAll } from "../_helpers.ts";

const PYTHON = Deno.env.get("PYTHON") ?? "python3";

function pythonMissing(): string | undefined {
  try {
    const { success } = new Deno.Command(PYTHON, { args: ["-c", "pass"], stdout: "null" })
      .outputSync();
    return success ? undefined : `${PYTHON} -c pass failed`;
  } catch {
    return `${PYTHON} not found (set PYTHON)`;
  }
}

const missing = pythonMissing();
if (missing) console.log(`frontend_accept_test: reset-storm test ignored: ${missing}`);

/**
 * Connects and resets (`SO_LINGER 0`, close) `burst` times as fast as it can
 * and prints `burst`; then goes on resetting every 5 ms, `storm` more times,
 * unless a line on stdin stops it first. Its last line says which.
 */
const RESETTER = `
import select, socket, struct, sys, time
port, burst, storm = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def reset():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.connect(("127.0.0.1", port))
    s.close()
for _ in range(burst):
    reset()
print("burst", flush=True)
for i in range(storm):
    if select.select([sys.stdin], [], [], 0)[0]:
        print("stopped", i, flush=True)
        sys.exit(0)
    reset()
    time.sleep(0.005)
print("storm ended", storm, flush=True)
`;

Deno.test({
  name: "Frontend serves a real client while a storm of resets makes accept fail",
  ignore: missing !== undefined,
  async fn() {
    await using echo = startEchoServer();
    const lines: string[] = [];
    const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
    const port = listener.addr.port;
    const frontend = new Frontend(
      {
        name: "main",
        listen: { hostname: LOOPBACK, port: 0 },
        balance: "roundrobin",
        backends: [{ hostname: LOOPBACK, port: echo.port, weight: 1, backup: false, maxConn: 0 }],
      },
      listener,
      {
        gate: new Gate(0),
        logger: new Logger((line) => void lines.push(line)),
        onEnd: () => {},
        connectTimeout: 5000,
        sniTimeout: 5000,
        caCerts: [],
        retries: null,
        onConnect: () => {},
      },
    );
    frontend.start();
    const resetter = new Deno.Command(PYTHON, {
      args: ["-c", RESETTER, String(port), "300", "200"],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const output = resetter.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let said = "";
    const nextLine = async () => {
      while (!said.includes("\n")) {
        const { value, done } = await output.read();
        if (done) break;
        said += value;
      }
      const [line = "", ...rest] = said.split("\n");
      said = rest.join("\n");
      return line;
    };
    const stdin = resetter.stdin.getWriter();
    try {
      assertEquals(await withTimeout(nextLine(), 30_000, "the burst of resets"), "burst");
      // 300 resets sit in the backlog ahead of this client; the storm goes on behind it.
      using client = await Deno.connect({ hostname: LOOPBACK, port });
      await writeAll(client, new Uint8Array([1, 2, 3]));
      assertEquals(
        await withTimeout(readExactly(client, 3), 30_000, "the real client's echo"),
        new Uint8Array([1, 2, 3]),
      );
      // The resetter may have ended already (the failure below): its stdin is then closed.
      await stdin.write(new TextEncoder().encode("stop\n")).catch(() => {});
      const last = await withTimeout(nextLine(), 30_000, "the resetter's last line");
      assertMatch(last, /^stopped \d+$/, "the storm of resets ended before the client was served");
      assertMatch(lines.join("\n"), /accept: 127\.0\.0\.1:\d+: .*not connected/i);
    } finally {
      await stdin.close().catch(() => {});
      await output.cancel().catch(() => {});
      await resetter.status;
      await frontend.stop();
    }
  },
});
