/**
 * TLS termination and TLS to backends, end to end with certificates made by
 * openssl at test time: the client sees lb's certificate (chosen by SNI among
 * several), the backend sees plaintext; lb verifies a TLS backend against a
 * private CA and refuses one signed by another.
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { startLb } from "../../support/lb_process.ts";
import {
  adminPort,
  LOOPBACK,
  metricValue,
  readAll,
  startTcpServer,
  waitConnectable,
  waitUntil,
  writeAll,
} from "../_helpers.ts";
import { makeCerts, opensslAvailable, tlsClient } from "../_tls.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends `data` over TLS to lb (SNI and verification for `name`), half-closes, reads to EOF. */
async function overTls(port: number, name: string, ca: string, data: string): Promise<string> {
  const tcp = await Deno.connect({ hostname: LOOPBACK, port });
  const tls = await Deno.startTls(tcp, { hostname: name, caCerts: [await Deno.readTextFile(ca)] });
  try {
    await writeAll(tls, encoder.encode(data));
    await tls.closeWrite();
    return decoder.decode(await readAll(tls));
  } finally {
    tls.close();
  }
}

Deno.test({
  name: "--tls-cert terminates TLS: the client sees lb's certificate, the backend plaintext",
  ignore: !opensslAvailable(),
  async fn() {
    await using certs = await makeCerts();
    const lbCert = await certs.leaf("lb", ["lb.example.com"]);
    const received: string[] = [];
    await using backend = startTcpServer(async (conn) => {
      const text = decoder.decode(await readAll(conn));
      received.push(text);
      await writeAll(conn, encoder.encode(text.toUpperCase()));
    });
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      String(backend.port),
      "--tls-cert",
      lbCert.cert,
      "--tls-key",
      lbCert.key,
      "--health-interval",
      "0",
    ]);
    assertEquals(await overTls(lb.port, "lb.example.com", certs.ca, "hello"), "HELLO");
    assertEquals(received, ["hello"], "the backend read plaintext");
    assertEquals(
      (await tlsClient(lb.port, "lb.example.com", certs.ca)).subject,
      "CN=lb.example.com",
    );
    // curl verifies lb's certificate for the name (this backend answers only at EOF, which curl
    // never sends: the verification is what counts, so curl is stopped after a second).
    const curl = await new Deno.Command("curl", {
      args: [
        "-sv",
        "--http1.1",
        "--max-time",
        "1",
        "--resolve",
        `lb.example.com:${lb.port}:127.0.0.1`,
        "--cacert",
        certs.ca,
        `https://lb.example.com:${lb.port}/`,
      ],
      stdin: "null",
    }).output().catch(() => undefined);
    if (curl) {
      const log = decoder.decode(curl.stderr);
      ok(/subject: CN=lb\.example\.com/.test(log), log);
      ok(/SSL certificate verify ok/.test(log), log);
    }
  },
});

Deno.test({
  name: "--tls-cert twice: the certificate is chosen by the client's server name",
  ignore: !opensslAvailable(),
  async fn() {
    await using certs = await makeCerts();
    const a = await certs.leaf("a", ["a.example.com"]);
    const b = await certs.leaf("b", ["*.b.example.com"]);
    await using backend = startTcpServer(async () => {});
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      String(backend.port),
      "--tls-cert",
      a.cert,
      "--tls-key",
      a.key,
      "--tls-cert",
      b.cert,
      "--tls-key",
      b.key,
      "--health-interval",
      "0",
    ]);
    assertEquals((await tlsClient(lb.port, "a.example.com", certs.ca)).subject, "CN=a.example.com");
    assertEquals(
      (await tlsClient(lb.port, "x.b.example.com", certs.ca)).subject,
      "CN=*.b.example.com",
    );
    assertEquals((await tlsClient(lb.port, null, certs.ca)).subject, "CN=a.example.com", "default");
  },
});

Deno.test({
  name:
    "a failed handshake closes that client only, counted, before any dial; reload re-reads the certificate",
  ignore: !opensslAvailable(),
  async fn() {
    await using certs = await makeCerts();
    const one = await certs.leaf("one", ["lb.example.com"]);
    const two = await certs.leaf("two", ["two.example.com", "lb.example.com"]);
    const live = { cert: `${certs.dir}/live.pem`, key: `${certs.dir}/live.key` };
    await Deno.copyFile(one.cert, live.cert);
    await Deno.copyFile(one.key, live.key);
    const config = `${certs.dir}/lb.json`;
    await using backend = startTcpServer(async (conn) => {
      await writeAll(conn, await readAll(conn));
    });
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        frontends: [{
          listen: "127.0.0.1:0",
          backends: [{ port: backend.port }],
          tls: { certs: [live] },
        }],
        health: { interval: 0 },
      }),
    );
    await using lb = await startLb(["--config", config, "--admin", "127.0.0.1:0"]);
    const admin = await adminPort(lb);
    const plain = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    await writeAll(plain, encoder.encode("GET / HTTP/1.0\r\n\r\n"));
    await readAll(plain).catch(() => new Uint8Array(0));
    plain.close();
    await waitUntil(
      async () =>
        await metricValue(admin, "lb_frontend_refused_total", `reason="tls-handshake"`) === 1,
      "the failed handshake counted",
    );
    assertEquals(backend.accepted, 0, "no dial for a failed handshake");
    assertEquals(await overTls(lb.port, "lb.example.com", certs.ca, "ok"), "ok", "others served");

    // A bad file on reload is refused and the old certificate keeps serving.
    await Deno.writeTextFile(live.cert, "not a certificate");
    let reload = await fetch(`http://${LOOPBACK}:${admin}/reload`, { method: "POST" });
    assertEquals(reload.status, 400, await reload.text());
    assertEquals(
      (await tlsClient(lb.port, "two.example.com", certs.ca)).subject,
      "CN=lb.example.com",
    );
    // A good one is taken by the next handshakes.
    await Deno.copyFile(two.cert, live.cert);
    await Deno.copyFile(two.key, live.key);
    reload = await fetch(`http://${LOOPBACK}:${admin}/reload`, { method: "POST" });
    const said = await reload.text();
    assertEquals(reload.status, 200, said);
    ok(/certificates renewed/.test(said), `the reload says what changed: ${said}`);
    const after = await tlsClient(lb.port, "two.example.com", certs.ca);
    ok(after.verified, after.output);
    assertEquals(after.subject, "CN=two.example.com", "the new certificate, same name as before");
  },
});

Deno.test({
  name:
    "-p ...,tls reaches a TLS backend verified against --tls-ca, and refuses one signed by another CA",
  ignore: !opensslAvailable(),
  async fn() {
    await using certs = await makeCerts();
    await using other = await makeCerts();
    const server = await certs.leaf("backend", ["backend.example.com"]);
    const listener = Deno.listenTls({
      hostname: LOOPBACK,
      port: 0,
      cert: await Deno.readTextFile(server.cert),
      key: await Deno.readTextFile(server.key),
    });
    const served = (async () => {
      for await (const conn of listener) {
        (async () => {
          try {
            await writeAll(conn, await readAll(conn));
          } catch {
            /* a refused handshake */
          } finally {
            try {
              conn.close();
            } catch { /* closed */ }
          }
        })();
      }
    })();
    try {
      const backend = `${listener.addr.port},tls-name=backend.example.com`;
      {
        await using lb = await startLb([
          "-f",
          "127.0.0.1:0",
          "-p",
          backend,
          "--tls-ca",
          certs.ca,
          "--health-interval",
          "0",
        ]);
        const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
        await writeAll(conn, encoder.encode("secret"));
        await conn.closeWrite();
        assertEquals(decoder.decode(await readAll(conn)), "secret");
        conn.close();
      }
      {
        await using lb = await startLb([
          "-f",
          "127.0.0.1:0",
          "-p",
          backend,
          "--tls-ca",
          other.ca,
          "--health-interval",
          "0",
          "--admin",
          "127.0.0.1:0",
        ]);
        const admin = await adminPort(lb);
        const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
        await writeAll(conn, encoder.encode("secret"));
        await conn.closeWrite();
        assertEquals(await readAll(conn), new Uint8Array(0), "wrong CA: closed, nothing echoed");
        conn.close();
        await waitUntil(
          async () => await metricValue(admin, "lb_backend_connect_failures_total", "") >= 1,
          "the failed TLS connect counted",
        );
      }
    } finally {
      listener.close();
      await served;
    }
  },
});

/** Whether nginx runs here. */
function nginxAvailable(): boolean {
  try {
    return new Deno.Command("nginx", { args: ["-v"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "-p ...,tls to nginx ssl: verified against --tls-ca, refused against another CA",
  ignore: !opensslAvailable() || !nginxAvailable(),
  async fn() {
    await using certs = await makeCerts();
    await using other = await makeCerts();
    const server = await certs.leaf("nginx", ["backend.example.com"]);
    using probe = Deno.listen({ hostname: LOOPBACK, port: 0 });
    const port = probe.addr.port;
    probe.close();
    const dir = certs.dir;
    await Deno.writeTextFile(
      `${dir}/nginx.conf`,
      [
        "daemon off;",
        "master_process off;",
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log warn;`,
        "events { worker_connections 64; }",
        "http {",
        "  access_log off;",
        `  client_body_temp_path ${dir}/body;`,
        `  proxy_temp_path ${dir}/proxy;`,
        `  fastcgi_temp_path ${dir}/fastcgi;`,
        `  uwsgi_temp_path ${dir}/uwsgi;`,
        `  scgi_temp_path ${dir}/scgi;`,
        "  server {",
        `    listen 127.0.0.1:${port} ssl;`,
        `    ssl_certificate ${server.cert};`,
        `    ssl_certificate_key ${server.key};`,
        '    location / { return 200 "ok from nginx"; }',
        "  }",
        "}",
        "",
      ].join("\n"),
    );
    const nginx = new Deno.Command("nginx", {
      args: ["-c", `${dir}/nginx.conf`, "-p", dir],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitConnectable(port, "nginx listening");
      const get = async (ca: string) => {
        await using lb = await startLb([
          "-f",
          "127.0.0.1:0",
          "-p",
          `${port},tls-name=backend.example.com`,
          "--tls-ca",
          ca,
          "--health-interval",
          "0",
        ]);
        const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
        await writeAll(conn, encoder.encode("GET / HTTP/1.0\r\nHost: backend.example.com\r\n\r\n"));
        const answer = decoder.decode(await readAll(conn));
        conn.close();
        return answer;
      };
      ok((await get(certs.ca)).endsWith("ok from nginx"), "verified against the test CA");
      assertEquals(await get(other.ca), "", "refused against another CA");
    } finally {
      nginx.kill("SIGTERM");
      await nginx.status;
    }
  },
});

Deno.test({
  name:
    "lb --check reads --tls-cert/--tls-key and refuses a missing file or a key of another certificate",
  ignore: !opensslAvailable(),
  async fn() {
    await using certs = await makeCerts();
    const a = await certs.leaf("a", ["a.example.com"]);
    const b = await certs.leaf("b", ["b.example.com"]);
    const check = async (cert: string, key: string) => {
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-net",
          "--allow-read",
          MAIN,
          "--check",
          "-p",
          "8101",
          "--tls-cert",
          cert,
          "--tls-key",
          key,
        ],
        stdin: "null",
      }).output();
      return { code, stderr: decoder.decode(stderr) };
    };
    assertEquals((await check(a.cert, a.key)).code, 0);
    const missing = await check(`${certs.dir}/nope.pem`, a.key);
    assertEquals(missing.code, 2);
    ok(
      /^lb: --tls-cert .*nope\.pem: cannot read: no such file\n$/.test(missing.stderr),
      missing.stderr,
    );
    const mismatched = await check(a.cert, b.key);
    assertEquals(mismatched.code, 2);
    ok(/is not the key of --tls-cert/.test(mismatched.stderr), mismatched.stderr);
  },
});
