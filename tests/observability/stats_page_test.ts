/**
 * The stats page in real headless Chromium, driven over the DevTools protocol
 * (a WebSocket from Deno; no npm). Ignored, with the reason printed, when
 * Chromium is not installed.
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { STATS_PAGE } from "../../src/observability/stats_page.ts";
import { startLb } from "../../support/lb_process.ts";
import {
  adminPort,
  delay,
  LOOPBACK,
  readExactly,
  startEchoServer,
  withTimeout,
  writeAll,
} from "../_helpers.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

function chromiumMissing(): string | undefined {
  try {
    return Deno.statSync(CHROMIUM).isFile ? undefined : `${CHROMIUM} is not a file`;
  } catch {
    return `${CHROMIUM} not found (apt-get install chromium, or set CHROMIUM)`;
  }
}

const missing = chromiumMissing();
if (missing) console.log(`stats_page_test: Chromium tests ignored: ${missing}`);

/** A headless Chromium and one page in it, over the DevTools protocol. */
class Browser implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #ws: WebSocket;
  #closed: Promise<void>;
  #stderr: Promise<void>;
  #profile: string;
  #nextId = 1;
  #calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  #session = "";

  private constructor(
    child: Deno.ChildProcess,
    ws: WebSocket,
    closed: Promise<void>,
    stderr: Promise<void>,
    profile: string,
  ) {
    this.#child = child;
    this.#ws = ws;
    this.#closed = closed;
    this.#stderr = stderr;
    this.#profile = profile;
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data as string);
      const call = this.#calls.get(message.id);
      if (!call) return; // an event: not needed here
      this.#calls.delete(message.id);
      if (message.error) call.reject(new Error(`CDP: ${JSON.stringify(message.error)}`));
      else call.resolve(message.result);
    };
  }

  static async launch(): Promise<Browser> {
    const profile = await Deno.makeTempDir({ prefix: "lb-chromium-" });
    const child = new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        `--user-data-dir=${profile}`,
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Chromium prints its DevTools URL on stderr; keep draining stderr after that.
    const lines: string[] = [];
    const { promise: url, resolve: found } = Promise.withResolvers<string>();
    const stderr = (async () => {
      let rest = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop() ?? "";
        for (const line of parts) {
          lines.push(line);
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
          if (m) found(m[1]!);
        }
      }
    })();
    let ws: WebSocket;
    try {
      const wsUrl = await withTimeout(
        Promise.race([url, child.status.then(() => Promise.reject(new Error("chromium exited")))]),
        60_000,
        "chromium's DevTools URL",
      ).catch((error: Error) => {
        throw new Error(`${error.message}:\n${lines.slice(-20).join("\n")}`);
      });
      ws = new WebSocket(wsUrl);
      await new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error("cannot connect to chromium's DevTools"));
      });
    } catch (error) {
      child.kill("SIGKILL");
      await child.status;
      await stderr;
      await Deno.remove(profile, { recursive: true }).catch(() => {});
      throw error;
    }
    const closed = new Promise<void>((resolve) => ws.onclose = () => resolve());
    ws.onerror = () => {};
    const browser = new Browser(child, ws, closed, stderr, profile);
    const { targetId } = await browser.send("Target.createTarget", { url: "about:blank" }) as {
      targetId: string;
    };
    const { sessionId } = await browser.send("Target.attachToTarget", {
      targetId,
      flatten: true,
    }) as { sessionId: string };
    browser.#session = sessionId;
    return browser;
  }

  /** Sends one DevTools command (to the page once attached) and waits for its result. */
  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#nextId++;
    const message = { id, method, params, ...(this.#session ? { sessionId: this.#session } : {}) };
    return withTimeout(
      new Promise((resolve, reject) => {
        this.#calls.set(id, { resolve, reject });
        this.#ws.send(JSON.stringify(message));
      }),
      30_000,
      `CDP ${method}`,
    );
  }

  /** Evaluates `expression` in the page and returns its (JSON) value. */
  async evaluate<T>(expression: string): Promise<T> {
    const result = await this.send("Runtime.evaluate", {
      expression,
      returnByValue: true,
      awaitPromise: true,
    }) as { result: { value: T }; exceptionDetails?: unknown };
    if (result.exceptionDetails) {
      throw new Error(`page threw: ${JSON.stringify(result.exceptionDetails)}`);
    }
    return result.result.value;
  }

  async navigate(url: string): Promise<void> {
    await this.send("Page.navigate", { url });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#session = "";
    await this.send("Browser.close").catch(() => {});
    this.#ws.close();
    await this.#closed;
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#stderr;
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}

/** What the page shows for one table row. */
interface Row {
  id: string;
  state: string;
  weight: string;
  active: string;
  total: string;
  bytesIn: string;
  bytesOut: string;
  errors: string;
}

const READ_ROWS = `(() => {
  const text = (tr, cls) => tr.querySelector("td." + cls)?.textContent ?? "";
  const title = (tr, cls) => tr.querySelector("td." + cls)?.title ?? "";
  const row = (tr, id) => ({
    id, state: text(tr, "state"), weight: text(tr, "weight"), active: text(tr, "active"),
    total: text(tr, "total"), bytesIn: title(tr, "bytes-in"), bytesOut: title(tr, "bytes-out"),
    errors: text(tr, "errors"),
  });
  return {
    status: document.getElementById("status")?.textContent ?? "",
    threads: document.getElementById("threads")?.textContent ?? "",
    frontends: [...document.querySelectorAll("tr.frontend")].map((tr) => row(tr, tr.dataset.frontend)),
    backends: [...document.querySelectorAll("tr.backend")].map((tr) => row(tr, tr.dataset.backend)),
  };
})()`;

interface Page {
  status: string;
  /** Each thread: `N: A open, T accepted`, joined by "; ". */
  threads: string;
  frontends: Row[];
  backends: Row[];
}

/** Polls the page until `ok` holds; throws with the last page seen. */
async function waitForPage(
  browser: Browser,
  what: string,
  ok: (page: Page) => boolean,
  timeoutMs = 30_000,
): Promise<Page> {
  const deadline = Date.now() + timeoutMs;
  let page: Page | undefined;
  while (Date.now() < deadline) {
    page = await browser.evaluate<Page>(READ_ROWS);
    if (ok(page)) return page;
    await delay(100);
  }
  throw new Error(`timed out waiting for the page to show ${what}; last:\n${JSON.stringify(page)}`);
}

async function echoThrough(port: number, size: number): Promise<void> {
  using conn = await Deno.connect({ hostname: LOOPBACK, port });
  const reading = readExactly(conn, size);
  await writeAll(conn, new Uint8Array(size).fill(7));
  await withTimeout(reading, 10_000, "echo");
}

Deno.test("STATS_PAGE is one self-contained document that fetches /stats every second", () => {
  assert(STATS_PAGE.startsWith("<!doctype html>"));
  assert(!/<script[^>]+src=/.test(STATS_PAGE), "no external scripts");
  assert(!/https?:\/\//.test(STATS_PAGE), "no external resources");
  assert(STATS_PAGE.includes('fetch("/stats"'));
  assert(STATS_PAGE.includes("setInterval(refresh, 1000)"));
  assert(!STATS_PAGE.includes("innerHTML"), "data goes in as text, never as HTML");
});

Deno.test({
  name: "STATS_PAGE in Chromium renders live numbers and shows a killed backend DOWN",
  ignore: missing !== undefined,
  async fn() {
    const a = startEchoServer();
    await using b = startEchoServer();
    try {
      await using lb = await startLb([
        "-f",
        "127.0.0.1:0",
        "-p",
        String(a.port),
        "-p",
        `${b.port},weight=2`,
        "--admin",
        "127.0.0.1:0",
        "--health-interval",
        "300ms",
        "--fall",
        "2",
        "--log",
        "off",
      ]);
      const admin = await adminPort(lb);
      const idA = `127.0.0.1:${a.port}`;
      const idB = `127.0.0.1:${b.port}`;
      for (let i = 0; i < 3; i++) await echoThrough(lb.port, 1000);

      await using browser = await Browser.launch();
      await browser.navigate(`http://${LOOPBACK}:${admin}/`);
      let page = await waitForPage(browser, "3 connections", (p) => p.frontends[0]?.total === "3");
      assertEquals(page.frontends[0]?.bytesIn, "3000 bytes");
      assertEquals(page.frontends[0]?.bytesOut, "3000 bytes");
      assertEquals(page.backends.map((r) => [r.id, r.state]), [[idA, "UP"], [idB, "UP"]]);
      assertEquals(page.backends.map((r) => r.weight), ["1", "2"]);
      assertEquals(page.backends.reduce((n, r) => n + Number(r.total), 0), 3);
      assert(page.status.startsWith("updated"), page.status);
      // One entry per thread (lb's default: one per core), their accepted connections the 3.
      const threads = [...page.threads.matchAll(/(\d+): (\d+) open, (\d+) accepted/g)];
      assertEquals(threads.length, navigator.hardwareConcurrency, page.threads);
      assertEquals(threads.reduce((n, m) => n + Number(m[3]), 0), 3);

      // New traffic shows up without reloading the page, including an open connection.
      using open = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
      await writeAll(open, new Uint8Array(500));
      await readExactly(open, 500);
      page = await waitForPage(
        browser,
        "the open connection",
        (p) => p.frontends[0]?.active === "1" && p.frontends[0]?.total === "4",
      );
      assertEquals(page.frontends[0]?.bytesIn, "3500 bytes");

      // Kill backend a: the active checks take it down and the page follows.
      await a[Symbol.asyncDispose]();
      page = await waitForPage(browser, `${idA} DOWN`, (p) => p.backends[0]?.state === "DOWN");
      assertEquals(page.backends[1]?.state, "UP");
      assertEquals(
        await browser.evaluate<string>(
          `document.querySelector('tr[data-backend="${idA}"]').className`,
        ),
        "backend DOWN",
      );

      // The drain button works from the page (same-origin POST).
      await browser.evaluate(
        `document.querySelector('tr[data-backend="${idB}"] td.actions button').click()`,
      );
      await waitForPage(browser, `${idB} DRAIN`, (p) => p.backends[1]?.state === "DRAIN");
      const stats = await (await fetch(`http://${LOOPBACK}:${admin}/stats`)).json();
      assertEquals(stats.frontends[0].backends[1].drained, true);
    } finally {
      await a[Symbol.asyncDispose]();
    }
  },
});

/** Polls `expression` in the page until it is true. */
async function waitForTrue(browser: Browser, expression: string, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!await browser.evaluate<boolean>(expression)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the page: ${what}`);
    await delay(100);
  }
}

Deno.test({
  name: "STATS_PAGE in Chromium asks for the admin token once and sends it on every fetch and POST",
  ignore: missing !== undefined,
  async fn() {
    await using a = startEchoServer();
    const dir = await Deno.makeTempDir({ prefix: "lb-page-" });
    try {
      await Deno.writeTextFile(`${dir}/token`, "page-token-123\n");
      await using lb = await startLb([
        "-f",
        "127.0.0.1:0",
        "-p",
        String(a.port),
        "--admin",
        "127.0.0.1:0",
        "--admin-token-file",
        `${dir}/token`,
        "--log",
        "off",
      ]);
      const admin = await adminPort(lb);
      const idA = `127.0.0.1:${a.port}`;
      await echoThrough(lb.port, 10);

      await using browser = await Browser.launch();
      await browser.navigate(`http://${LOOPBACK}:${admin}/`);
      const formShown = `document.getElementById("login")?.hidden === false`;
      await waitForTrue(browser, formShown, "the token form");
      assertEquals(await browser.evaluate<number>(`document.querySelectorAll("tr").length`), 0);

      // A wrong token: the form comes back saying so.
      const submit = (token: string) =>
        browser.evaluate(`(() => {
          document.getElementById("token").value = ${JSON.stringify(token)};
          document.getElementById("login").requestSubmit();
        })()`);
      await submit("wrong-token");
      await waitForTrue(
        browser,
        `${formShown} && document.getElementById("login-error").textContent.includes("refused")`,
        "the token refused",
      );

      await submit("page-token-123");
      let page = await waitForPage(browser, "the stats", (p) => p.frontends[0]?.total === "1");
      assertEquals(page.backends.map((r) => [r.id, r.state]), [[idA, "UP"]]);
      assert(page.status.startsWith("updated"), page.status);
      assertEquals(await browser.evaluate<boolean>(formShown), false);

      // Kept in the tab: a reload shows the stats without asking again.
      await browser.evaluate(`window.before = true`);
      await browser.navigate(`http://${LOOPBACK}:${admin}/`);
      await waitForTrue(
        browser,
        `!window.before && document.readyState === "complete"`,
        "the reloaded page",
      );
      page = await waitForPage(browser, "the stats after reload", (p) => p.backends.length === 1);
      assertEquals(await browser.evaluate<boolean>(formShown), false);

      // The drain button sends the token too.
      await browser.evaluate(
        `document.querySelector('tr[data-backend="${idA}"] td.actions button').click()`,
      );
      await waitForPage(browser, `${idA} DRAIN`, (p) => p.backends[0]?.state === "DRAIN");
      const stats = await fetch(`http://${LOOPBACK}:${admin}/stats`, {
        headers: { authorization: "Bearer page-token-123" },
      });
      assertEquals((await stats.json()).frontends[0].backends[0].drained, true);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
