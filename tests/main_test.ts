/**
 * End to end: `deno run main.ts` as a child process (startLb) in front of real
 * loopback backends, driven over raw TCP.
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { httpGet } from "../backends/http_get.ts";
import { startBackends } from "../backends/httpd.ts";
import { VERSION } from "../src/common/version.ts";
import { startLb } from "../support/lb_process.ts";
import {
  adminPort,
  backendStats,
  closeQuietly,
  countFds,
  delay,
  digestAll,
  fetchStats,
  freePort,
  freePorts,
  hangingPort,
  LOOPBACK,
  pseudoRandomBytes,
  readAll,
  readExactly,
  sha256,
  startDuplexServer,
  startEchoServer,
  startSinkServer,
  startTcpServer,
  waitForStats,
  waitUntil,
  withTimeout,
  writeAll,
} from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** Listen on a free loopback port; no active checks unless a test wants them. */
const FRONT = ["-f", `${LOOPBACK}:0`, "--health-interval", "0", "--log", "off"];
/** The admin endpoint on a free port, for tests that wait on `/stats`. */
const ADMIN = ["--admin", `${LOOPBACK}:0`];

function backendArgs(...ports: number[]): string[] {
  return ports.flatMap((port) => ["-p", String(port)]);
}

function connect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: LOOPBACK, port });
}

/** Runs main.ts to completion (for flags that never start listening). */
async function runMain(args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", MAIN, ...args],
    stdin: "null",
  }).output();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

function assertNoStack(stderr: string) {
  ok(!/^\s+at /m.test(stderr), `stack trace in stderr:\n${stderr}`);
}

Deno.test("lb balances round robin like the seed's curl loop", async () => {
  await using backends = startBackends([0, 0, 0], (port) => `hello from server on port ${port}`);
  await using lb = await startLb([...FRONT, ...backendArgs(...backends.ports)]);
  const answers: string[] = [];
  for (let i = 0; i < 9; i++) answers.push(await httpGet(lb.port));
  const expected = backends.ports.map((port) => `hello from server on port ${port}`);
  assertEquals(new Set(answers.slice(0, 3)), new Set(expected), "first round hits each once");
  for (let i = 3; i < 9; i++) assertEquals(answers[i], answers[i % 3], `request ${i + 1}`);
});

/** Whether a program runs here (`curl --version` and the like). */
function available(program: string): boolean {
  try {
    return new Deno.Command(program, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

const hasCurl = available("curl");

Deno.test({
  name: `lb balances the seed's literal curl loop${hasCurl ? "" : " (ignored: no curl here)"}`,
  ignore: !hasCurl,
  async fn() {
    await using backends = startBackends([0, 0, 0], (port) => `hello from server on port ${port}`);
    await using lb = await startLb([...FRONT, ...backendArgs(...backends.ports)]);
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { success, stdout } = await new Deno.Command("curl", {
        args: ["-s", "--max-time", "10", `http://127.0.0.1:${lb.port}`],
        stdin: "null",
      }).output();
      ok(success, `curl #${i + 1} failed`);
      answers.push(decoder.decode(stdout));
    }
    assertEquals(
      new Set(answers.slice(0, 3)),
      new Set(backends.ports.map((port) => `hello from server on port ${port}`)),
    );
    assertEquals(answers.slice(3), answers.slice(0, 3));
  },
});

Deno.test("lb half-close: a client that shuts its write side still gets the reply", async () => {
  await using backend = startTcpServer(async (conn) => {
    const request = await readAll(conn); // until the client's FIN
    await writeAll(conn, encoder.encode(`got ${request.length} bytes: ${decoder.decode(request)}`));
  });
  await using lb = await startLb([...FRONT, ...backendArgs(backend.port)]);
  using client = await connect(lb.port);
  await writeAll(client, encoder.encode("hello"));
  await client.closeWrite();
  assertEquals(
    decoder.decode(await withTimeout(readAll(client), 10_000, "reply")),
    "got 5 bytes: hello",
  );
});

Deno.test("lb half-close: a backend that shuts its write side first still receives", async () => {
  await using backend = startTcpServer(async (conn, server) => {
    await writeAll(conn, encoder.encode("banner"));
    await conn.closeWrite();
    server.record(decoder.decode(await readAll(conn)));
  });
  await using lb = await startLb([...FRONT, ...backendArgs(backend.port)]);
  using client = await connect(lb.port);
  assertEquals(decoder.decode(await withTimeout(readAll(client), 10_000, "banner")), "banner");
  await delay(50); // the upload starts well after the backend's FIN went through
  await writeAll(client, encoder.encode("upload after the backend's EOF"));
  await client.closeWrite();
  await waitUntil(() => backend.results.length === 1, "the backend to read to EOF");
  assertEquals(backend.results, ["upload after the backend's EOF"]);
});

Deno.test("lb copies tens of MiB both ways at once, byte for byte", async () => {
  const size = 32 * 1024 * 1024;
  const down = pseudoRandomBytes(size, 21);
  const up = pseudoRandomBytes(size, 22);
  await using backend = startDuplexServer(down);
  await using lb = await startLb([...FRONT, ...backendArgs(backend.port)]);
  using client = await connect(lb.port);
  const [, received] = await withTimeout(
    Promise.all([
      writeAll(client, up).then(() => client.closeWrite()),
      digestAll(client),
    ]),
    90_000,
    "the transfer",
  );
  assertEquals(received, { bytes: size, sha256: sha256(down) });
  await waitUntil(() => backend.results.length === 1, "the backend to finish");
  assertEquals(backend.results[0], { bytes: size, sha256: sha256(up) });
});

Deno.test("lb delivers bytes written just before the client closes", async () => {
  const data = pseudoRandomBytes(2 * 1024 * 1024, 9);
  await using backend = startSinkServer();
  await using lb = await startLb([...FRONT, ...backendArgs(backend.port)]);
  const client = await connect(lb.port);
  await writeAll(client, data);
  client.close(); // no closeWrite, no waiting for the proxy
  await waitUntil(() => backend.results.length === 1, "the backend to see EOF");
  assertEquals(backend.results[0], { bytes: data.length, sha256: sha256(data) });
});

Deno.test("lb tries the next backend when one refuses, each at most once", async () => {
  const refused1 = freePort();
  const refused2 = freePort();
  await using good = startEchoServer();
  await using lb = await startLb([
    ...FRONT,
    ...ADMIN,
    ...backendArgs(refused1, refused2, good.port),
  ]);
  const admin = await adminPort(lb);
  for (let i = 0; i < 3; i++) {
    using client = await connect(lb.port);
    await writeAll(client, encoder.encode(`ping ${i}`));
    await client.closeWrite();
    assertEquals(decoder.decode(await withTimeout(readAll(client), 10_000, "echo")), `ping ${i}`);
  }
  assertEquals(good.accepted, 3);
  const stats = await waitForStats(admin, "the three connections to end", (s) => {
    const fe = s.frontends[0]!;
    return fe.total === 3 && fe.active === 0;
  });
  const dialErrors = (port: number) => backendStats(stats, `127.0.0.1:${port}`).connectFailures;
  ok(dialErrors(refused1) >= 1 && dialErrors(refused2) >= 1, JSON.stringify(stats));
  assertEquals(stats.frontends[0]!.ended["no-backend"], 0, JSON.stringify(stats));
});

Deno.test("lb closes the client promptly with one log line when every backend is down", async () => {
  const ports = freePorts(3);
  await using lb = await startLb([...FRONT, ...backendArgs(...ports)]);
  using client = await connect(lb.port);
  const started = Date.now();
  await writeAll(client, encoder.encode("anyone?")).catch(() => {});
  const got = await withTimeout(readAll(client).catch(() => new Uint8Array()), 5000, "close");
  assertEquals(got.length, 0);
  ok(Date.now() - started < 5000);
  await lb.waitFor(/no backend available/);
  const lines = lb.stderr.filter((l) => l.includes("no backend available"));
  assertEquals(lines.length, 1, lb.stderr.join("\n"));
  ok(lines[0]!.includes("3 tried"), lines[0]);
  assertNoStack(lb.stderr.join("\n"));
});

Deno.test("lb bounds a connect that hangs by --connect-timeout, then tries the next", async () => {
  using hanging = await hangingPort();
  if (!hanging) {
    console.log("ignored in effect: could not fill a listen backlog on this machine");
    return;
  }
  await using good = startEchoServer();
  await using lb = await startLb([
    ...FRONT,
    ...ADMIN,
    "--connect-timeout",
    "500ms",
    ...backendArgs(hanging.port, good.port),
  ]);
  const admin = await adminPort(lb);
  const started = Date.now();
  using client = await connect(lb.port);
  await writeAll(client, encoder.encode("patience"));
  await client.closeWrite();
  assertEquals(decoder.decode(await withTimeout(readAll(client), 10_000, "echo")), "patience");
  const elapsed = Date.now() - started;
  ok(elapsed >= 400 && elapsed < 8000, `took ${elapsed}ms`);
  // The hanging backend was dialled, and that connect failed by timing out.
  const hung = backendStats(await fetchStats(admin), `127.0.0.1:${hanging.port}`);
  ok(hung.connectFailures >= 1 && /timed out/.test(hung.lastError ?? ""), JSON.stringify(hung));
});

Deno.test("lb leaves no backend connection behind when a client vanishes mid-stream", async (t) => {
  await t.step("the client closes while the backend still sends", async () => {
    const chunk = pseudoRandomBytes(64 * 1024, 4);
    await using backend = startTcpServer(async (conn) => {
      for (let i = 0; i < 16 * 1024; i++) await writeAll(conn, chunk); // ≤ 1 GiB, bounded
    });
    await using lb = await startLb([...FRONT, ...backendArgs(backend.port)]);
    const client = await connect(lb.port);
    await readExactly(client, 256 * 1024);
    client.close(); // unread data: the kernel sends a RST
    await waitUntil(() => backend.open === 0 && backend.accepted === 1, "backend conn closed");
  });

  await t.step("the client process is killed", async () => {
    await using backend = startEchoServer();
    await using lb = await startLb([...FRONT, ...backendArgs(backend.port)]);
    // A child that sends 1 MiB, reads nothing, and waits to be killed.
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const c = await Deno.connect({ hostname: "127.0.0.1", port: ${lb.port} });
         const b = new Uint8Array(1024 * 1024);
         for (let n = 0; n < b.length;) n += await c.write(b.subarray(n));
         console.log("sent");
         await new Promise(() => setInterval(() => {}, 1000));`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    try {
      const first = await withTimeout(reader.read(), 15_000, "the child to send");
      ok(decoder.decode(first.value).includes("sent"));
      await waitUntil(() => backend.accepted === 1, "the backend connection");
    } finally {
      child.kill("SIGKILL");
      reader.releaseLock();
      await child.stdout.cancel();
      await child.status;
    }
    await waitUntil(() => backend.open === 0, "backend conn closed after the kill");
  });
});

Deno.test("lb serves 200 concurrent connections, each byte-exact", async () => {
  await using a = startEchoServer();
  await using b = startEchoServer();
  await using c = startEchoServer();
  await using lb = await startLb([...FRONT, ...backendArgs(a.port, b.port, c.port)]);
  const one = async (i: number) => {
    const data = pseudoRandomBytes(16 * 1024 + i, i + 1);
    using client = await connect(lb.port);
    const [, echoed] = await Promise.all([
      writeAll(client, data).then(() => client.closeWrite()),
      readAll(client),
    ]);
    return echoed.length === data.length && sha256(echoed) === sha256(data);
  };
  const results = await withTimeout(
    Promise.all(Array.from({ length: 200 }, (_, i) => one(i))),
    60_000,
    "200 connections",
  );
  assertEquals(results.filter((r) => !r).length, 0);
  assertEquals(a.accepted + b.accepted + c.accepted, 200);
  for (const server of [a, b, c]) ok(Math.abs(server.accepted - 200 / 3) <= 2, "even spread");
});

Deno.test("lb returns to its baseline of file descriptors after a burst", async (t) => {
  await using echo = startEchoServer();
  const refused = freePort();
  // The JSON access log says when each connection has ended (stdout is open already).
  await using lb = await startLb([...FRONT, "--log", "json", ...backendArgs(echo.port, refused)]);
  const pid = lb.child.pid;
  if (countFds(Deno.pid) === undefined) {
    t.step({ name: "ignored: /proc/<pid>/fd is not readable here", ignore: true, fn() {} });
    return;
  }
  const roundTrip = async () => {
    using client = await connect(lb.port);
    await writeAll(client, encoder.encode("x"));
    await client.closeWrite();
    await readAll(client).catch(() => {});
  };
  for (let i = 0; i < 4; i++) await roundTrip(); // warm up lazily opened descriptors
  await waitUntil(() => lb.stdout.length >= 4, "the warm-up connections' access log lines");
  const baseline = countFds(pid);
  ok(baseline !== undefined, `lb (pid ${pid}) is gone:\n${lb.stderr.join("\n")}`);
  const clients: Deno.TcpConn[] = [];
  // Complete round trips, clients that vanish without a word, and ones reset mid-stream.
  await Promise.all(Array.from({ length: 60 }, roundTrip));
  const acceptedBefore = echo.accepted;
  for (let i = 0; i < 30; i++) clients.push(await connect(lb.port));
  await waitUntil(() => echo.accepted >= acceptedBefore + 30, "30 open connections through lb");
  ok(countFds(pid)! > baseline, "open connections show up as descriptors");
  for (const client of clients) client.close();
  // Clients that leave before the backend connect completes.
  for (let i = 0; i < 30; i++) (await connect(lb.port)).close();
  for (let i = 0; i < 30; i++) {
    const client = await connect(lb.port);
    await writeAll(client, new Uint8Array(32 * 1024));
    await delay(5);
    client.close();
  }
  await waitUntil(() => countFds(pid)! <= baseline, `fds back to ${baseline}`, 15_000)
    .catch((error) => {
      throw new Error(`${error.message}: now ${countFds(pid)}`);
    });
  await waitUntil(() => echo.open === 0, "the echo backend to see every connection end");
});

Deno.test("lb rejects bad flags with one line on stderr and no stack trace", async () => {
  using taken = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const takenPort = (taken.addr as Deno.NetAddr).port;
  const cases: [string[], number, RegExp][] = [
    [["--bogus", "-p", "8101"], 2, /^lb: .*--bogus/],
    [["-f", "70000", "-p", "8101"], 2, /^lb: .*70000/],
    [["-p", "eighty"], 2, /^lb: .*eighty/],
    [["-f", "8080"], 2, /^lb: .*-p/],
    [["-f", `${LOOPBACK}:${takenPort}`, "-p", "8101"], 1, new RegExp(`^lb: .*${takenPort}`)],
  ];
  const results = await Promise.all(cases.map(([args]) => runMain(args)));
  cases.forEach(([args, code, first], i) => {
    const { code: got, stderr, stdout } = results[i]!;
    const what = `${args.join(" ")}:\n${stderr}`;
    assertEquals(got, code, what);
    ok(first.test(stderr.split("\n")[0]!), what);
    assertNoStack(stderr);
    assertEquals(stdout, "", what);
  });
  ok(results[3]!.stderr.includes("Usage: lb"), "no backends prints the usage");
  for (const i of [0, 1, 2]) {
    assertEquals(
      results[i]!.stderr.trim().split("\n").length,
      1,
      `one line:\n${results[i]!.stderr}`,
    );
  }
  const inUse = results[4]!.stderr.trim().split("\n");
  assertEquals(inUse.length, 1, `port in use: ${inUse.join("\n")}`);
});

Deno.test("lb --help prints usage with examples and --version the version", async () => {
  const [help, version] = await Promise.all([runMain(["--help"]), runMain(["--version"])]);
  assertEquals(help.code, 0);
  ok(help.stdout.includes("Usage: lb") && help.stdout.includes("lb -f 8080 -p 8101"));
  assertEquals(version.code, 0);
  assertEquals(version.stdout.trim(), `lb ${VERSION}`);
});

Deno.test("lb on SIGTERM stops accepting, lets an open connection finish, exits 0", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([...FRONT, ...backendArgs(echo.port)]);
  using client = await connect(lb.port);
  await writeAll(client, encoder.encode("before"));
  assertEquals(decoder.decode(await readExactly(client, 6)), "before");
  lb.child.kill("SIGTERM");
  // Poll until connects are refused (one accepted before the signal landed is closed at once).
  await waitUntil(async () => {
    try {
      closeQuietly(await connect(lb.port));
      return false;
    } catch (error) {
      return error instanceof Deno.errors.ConnectionRefused;
    }
  }, "new connections to be refused after SIGTERM");
  await delay(200); // still open well after the signal
  await writeAll(client, encoder.encode("after"));
  assertEquals(decoder.decode(await readExactly(client, 5)), "after");
  await client.closeWrite();
  assertEquals((await readAll(client)).length, 0);
  const status = await withTimeout(lb.status, 10_000, "lb to exit");
  assertEquals(status.code, 0);
});

Deno.test("lb on SIGTERM exits after --drain-timeout even while --max-conns is reached", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([
    ...FRONT,
    "--max-conns",
    "1",
    "--drain-timeout",
    "500ms",
    ...backendArgs(echo.port),
  ]);
  using client = await connect(lb.port);
  await writeAll(client, encoder.encode("hold"));
  assertEquals(decoder.decode(await readExactly(client, 4)), "hold");
  lb.child.kill("SIGTERM");
  const status = await withTimeout(lb.status, 10_000, "lb to exit while full");
  assertEquals(status.code, 0);
  assertEquals((await readAll(client).catch(() => new Uint8Array())).length, 0);
});

Deno.test("lb keeps accepting after running out of file descriptors", async () => {
  await using echo = startEchoServer();
  const denoArgs = ["run", "--allow-net", "--allow-read", MAIN];
  const lbArgs = [...FRONT, ...ADMIN, ...backendArgs(echo.port)];
  const quoted = [Deno.execPath(), ...denoArgs, ...lbArgs].map((a) => `'${a}'`).join(" ");
  // A low descriptor limit: a burst of clients exhausts it (accept fails with EMFILE).
  await using lb = await startLb(["-c", `ulimit -n 64 && exec ${quoted}`], { binary: "/bin/sh" });
  const clients: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 80; i++) clients.push(await connect(lb.port));
    await lb.waitFor(/accept: .*os error 24.*raise the soft limit, ulimit -n/i, 10_000);
  } finally {
    for (const client of clients) closeQuietly(client);
  }
  await waitUntil(() => echo.open === 0, "the burst to end");
  // Every thread has closed its side too (its descriptors are free again).
  await waitForStats(
    await adminPort(lb),
    "lb to close the burst",
    (s) => s.frontends[0]!.active === 0,
  );
  for (let i = 0; i < 3; i++) {
    using client = await connect(lb.port);
    await writeAll(client, encoder.encode(`still here ${i}`));
    await client.closeWrite();
    assertEquals(
      decoder.decode(await withTimeout(readAll(client), 10_000, "echo after EMFILE")),
      `still here ${i}`,
    );
  }
});

Deno.test("lb listens on and dials IPv6 loopback", async (t) => {
  let v6: Deno.TcpListener;
  try {
    v6 = Deno.listen({ hostname: "::1", port: 0 });
  } catch (error) {
    t.step({ name: `ignored: no ::1 here (${error})`, ignore: true, fn() {} });
    return;
  }
  v6.close();
  await using echo = startTcpServer(async (conn) => {
    await writeAll(conn, encoder.encode((conn.localAddr as Deno.NetAddr).hostname));
  }, "::1");
  await using lb = await startLb([
    "-f",
    "[::1]:0",
    "--health-interval",
    "0",
    "-p",
    `[::1]:${echo.port}`,
  ]);
  ok(lb.stderr.some((l) => l.includes(`listening on [::1]:${lb.port}`)), lb.stderr.join("\n"));
  using client = await Deno.connect({ hostname: "::1", port: lb.port });
  assertEquals(decoder.decode(await withTimeout(readAll(client), 10_000, "answer")), "::1");
});

Deno.test("lb dials a backend given by host name (-p localhost:PORT)", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([...FRONT, "-p", `localhost:${echo.port}`]);
  using client = await connect(lb.port);
  await writeAll(client, encoder.encode("by name"));
  await client.closeWrite();
  assertEquals(decoder.decode(await withTimeout(readAll(client), 10_000, "echo")), "by name");
});

Deno.test("lb on SIGINT (Ctrl-C) stops the same way and exits 0", async () => {
  await using echo = startEchoServer();
  await using lb = await startLb([...FRONT, ...backendArgs(echo.port)]);
  lb.child.kill("SIGINT");
  const status = await withTimeout(lb.status, 10_000, "lb to exit");
  assertEquals(status.code, 0);
  ok(lb.stderr.some((l) => /SIGINT: stopped accepting/.test(l)), lb.stderr.join("\n"));
});

Deno.test("lb on SIGTERM does not wait out a backend connect that hangs", async () => {
  using hanging = await hangingPort();
  if (!hanging) {
    console.log("ignored in effect: could not fill a listen backlog on this machine");
    return;
  }
  await using lb = await startLb([
    ...FRONT,
    ...ADMIN,
    "--connect-timeout",
    "20s",
    "--drain-timeout",
    "300ms",
    ...backendArgs(hanging.port),
  ]);
  const admin = await adminPort(lb);
  using _client = await connect(lb.port);
  await waitForStats(
    admin,
    "lb dialling the backend",
    (s) => s.frontends[0]!.backends[0]!.active === 1,
  );
  const started = Date.now();
  lb.child.kill("SIGTERM");
  const status = await withTimeout(lb.status, 15_000, "lb to exit");
  const elapsed = Date.now() - started;
  assertEquals(status.code, 0);
  ok(elapsed < 5000, `exit took ${elapsed}ms, as if waiting for the 20s connect`);
});

Deno.test("lb closes the client when its backend resets mid-stream", async () => {
  await using backend = startTcpServer(async (conn) => {
    await readExactly(conn, 64 * 1024);
    await delay(50);
    conn.close(); // unread data: the kernel sends a RST
  });
  await using lb = await startLb([...FRONT, ...backendArgs(backend.port)]);
  using client = await connect(lb.port);
  const chunk = new Uint8Array(64 * 1024);
  const sending = (async () => {
    try {
      for (let i = 0; i < 4096; i++) await writeAll(client, chunk); // bounded: 256 MiB
      return "wrote everything";
    } catch {
      return "write failed";
    }
  })();
  const reading = client.read(new Uint8Array(1)).then((n) => `read ${n}`, () => "read failed");
  const [read, sent] = await withTimeout(Promise.all([reading, sending]), 20_000, "client end");
  ok(read === "read null" || read === "read failed", read);
  assertEquals(sent, "write failed");
});

Deno.test("lb applies backpressure: a client that stops reading stalls the backend", async () => {
  let written = 0;
  const chunk = new Uint8Array(64 * 1024);
  await using backend = startTcpServer(async (conn) => {
    for (let i = 0; i < 2048; i++) { // at most 128 MiB
      await writeAll(conn, chunk);
      written += chunk.length;
    }
  });
  await using lb = await startLb([...FRONT, ...backendArgs(backend.port)]);
  const client = await connect(lb.port);
  await readExactly(client, 1024); // the stream is flowing
  await delay(1500); // and now nobody reads
  const stalledAt = written;
  console.log(`stalled after ${(stalledAt / 2 ** 20).toFixed(1)} MiB in flight`);
  await delay(500);
  client.close();
  // Only socket buffers (a few MiB per hop) may be in flight; lb holds no queue.
  ok(
    stalledAt < 48 * 1024 * 1024,
    `backend wrote ${stalledAt} bytes to a client that reads nothing`,
  );
  ok(
    written - stalledAt <= 4 * 1024 * 1024,
    `the backend kept going: ${written - stalledAt} bytes`,
  );
  await waitUntil(() => backend.open === 0, "the backend connection to end");
});

Deno.test("lb restarts on the same port at once, with its closed connections in TIME-WAIT", async () => {
  await using echo = startEchoServer();
  const port = freePort();
  const args = ["-f", `${LOOPBACK}:${port}`, "--health-interval", "0", "--log", "off"];
  {
    // No backend answers: lb closes each client first, so TIME-WAIT is on lb's port.
    await using lb = await startLb([...args, ...backendArgs(freePort())]);
    for (let i = 0; i < 5; i++) {
      using client = await connect(lb.port);
      await readAll(client).catch(() => {});
    }
  }
  await using again = await startLb([...args, ...backendArgs(echo.port)]);
  using client = await connect(again.port);
  await writeAll(client, encoder.encode("back"));
  await client.closeWrite();
  assertEquals(decoder.decode(await readAll(client)), "back");
});

Deno.test("lb on SIGTERM ends a connection stuck writing to a client that stopped reading", async () => {
  const chunk = new Uint8Array(64 * 1024);
  await using backend = startTcpServer(async (conn) => {
    for (let i = 0; i < 2048; i++) await writeAll(conn, chunk); // at most 128 MiB
  });
  await using lb = await startLb([
    ...FRONT,
    "--drain-timeout",
    "300ms",
    ...backendArgs(backend.port),
  ]);
  using client = await connect(lb.port);
  await readExactly(client, 1024);
  await delay(500); // buffers fill; lb's write to the client is pending now
  lb.child.kill("SIGTERM");
  const status = await withTimeout(lb.status, 10_000, "lb to exit");
  assertEquals(status.code, 0);
  await waitUntil(() => backend.open === 0, "the backend connection to end");
});

Deno.test("lb on a bare -f PORT listens on all interfaces, IPv4 and IPv6, like the seed", async () => {
  await using backends = startBackends([0], (port) => `hello from server on port ${port}`);
  await using lb = await startLb([
    "-f",
    "0",
    "--health-interval",
    "0",
    "-p",
    `${backends.ports[0]}`,
  ]);
  const want = `hello from server on port ${backends.ports[0]}`;
  assertEquals(await httpGet(lb.port, "127.0.0.1"), want);
  let v6 = true;
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
  } catch {
    v6 = false; // No IPv6 on this host: lb fell back to 0.0.0.0.
  }
  if (v6) assertEquals(await httpGet(lb.port, "::1"), want);
});

Deno.test("main exits 70 with one line, no stack trace, when lb itself fails (an internal error)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lb-main-" });
  try {
    const script = `${dir}/fails.ts`;
    await Deno.writeTextFile(
      script,
      `import { main } from ${JSON.stringify(MAIN)};\n` +
        `await main([], () => Promise.reject(new Error("boom")));\n`,
    );
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", script],
      stdin: "null",
    }).output();
    assertEquals(decoder.decode(stderr), "lb: internal error: boom\n");
    assertEquals(code, 70);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
