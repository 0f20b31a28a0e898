/**
 * SNI routing with passthrough, end to end with openssl: each name lands on
 * its own TLS server, whose own certificate the client sees (lb never
 * decrypts); a wildcard, no SNI, plain text and a ClientHello one byte per
 * write.
 * @module
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { startLb } from "../../support/lb_process.ts";
import {
  adminPort,
  LOOPBACK,
  metricValue,
  readAll,
  startEchoServer,
  startRecordingServer,
  waitUntil,
  writeAll,
} from "../_helpers.ts";
import {
  captureClientHello,
  makeCerts,
  opensslAvailable,
  startTlsServer,
  tlsClient,
} from "../_tls.ts";

const encoder = new TextEncoder();

Deno.test({
  name:
    "sni= routes each server name to its own TLS backend, untouched (the backend's certificate)",
  ignore: !opensslAvailable(),
  async fn() {
    await using certs = await makeCerts();
    await using api = await startTlsServer(await certs.leaf("api", ["api.example.com"]));
    await using wild = await startTlsServer(await certs.leaf("wild", ["*.example.com"]));
    await using other = await startTlsServer(await certs.leaf("other", ["other.test"]));
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      `${api.port},sni=api.example.com`,
      "-p",
      `${wild.port},sni=*.example.com`,
      "-p",
      String(other.port),
      "--admin",
      "127.0.0.1:0",
      "--log",
      "json",
    ]);
    const admin = await adminPort(lb);
    const seen = async (name: string | null) => (await tlsClient(lb.port, name, certs.ca)).subject;
    assertEquals(await seen("api.example.com"), "CN=api.example.com", "exact name");
    assertEquals(await seen("API.Example.COM"), "CN=api.example.com", "any case");
    assertEquals(await seen("www.example.com"), "CN=*.example.com", "one-label wildcard");
    assertEquals(await seen("a.b.example.com"), "CN=other.test", "two labels: no match, default");
    assertEquals(await seen(null), "CN=other.test", "no SNI: default");
    const verified = await tlsClient(lb.port, "api.example.com", certs.ca);
    ok(verified.verified, verified.output);
    await waitUntil(
      async () => await metricValue(admin, "lb_frontend_sni_routes_total", `route="default"`) === 2,
      "routes counted",
    );
    assertEquals(
      await metricValue(admin, "lb_frontend_sni_routes_total", `route="api.example.com"`),
      3,
    );
    assertEquals(
      await metricValue(admin, "lb_frontend_sni_routes_total", `route="*.example.com"`),
      1,
    );
    const logged = () => lb.stdout.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    await waitUntil(
      () => logged().some((e) => e.sni === "www.example.com"),
      "the access log names the server",
    );
  },
});

Deno.test({
  name: "sni=: a plain-text client or a name nothing serves is closed before any dial",
  ignore: !opensslAvailable(),
  async fn() {
    await using certs = await makeCerts();
    await using backend = startEchoServer();
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      `${backend.port},sni=api.example.com`,
      "--admin",
      "127.0.0.1:0",
      "--health-interval",
      "0",
    ]);
    const admin = await adminPort(lb);
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    await writeAll(conn, encoder.encode("GET / HTTP/1.0\r\n\r\n"));
    assertEquals(await readAll(conn), new Uint8Array(0));
    conn.close();
    const other = await tlsClient(lb.port, "www.example.com", certs.ca);
    assertEquals(other.subject, undefined, "no certificate: closed");
    await waitUntil(
      async () => await metricValue(admin, "lb_frontend_refused_total", `reason="no-route"`) === 1,
      "no-route counted",
    );
    assertEquals(await metricValue(admin, "lb_frontend_refused_total", `reason="tls-not-tls"`), 1);
    assertEquals(backend.accepted, 0, "no byte reached a backend");
  },
});

Deno.test({
  name: "sni=: a ClientHello sent one byte per write is read whole and replayed exactly",
  ignore: !opensslAvailable(),
  async fn() {
    const hello = await captureClientHello("api.example.com");
    await using backend = startRecordingServer();
    const received = backend.results as Uint8Array[];
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      `${backend.port},sni=api.example.com`,
      "--health-interval",
      "0",
    ]);
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    for (let i = 0; i < hello.length; i++) await writeAll(conn, hello.subarray(i, i + 1));
    await writeAll(conn, encoder.encode("after"));
    await conn.closeWrite();
    await readAll(conn);
    conn.close();
    await waitUntil(() => received.length === 1, "the backend to read to EOF");
    assertEquals(received[0], new Uint8Array([...hello, ...encoder.encode("after")]));
  },
});

/** Whether curl runs here. */
function curlAvailable(): boolean {
  try {
    return new Deno.Command("curl", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "sni=: curl --resolve through lb reaches each name's own HTTPS server, verified",
  ignore: !opensslAvailable() || !curlAvailable(),
  async fn() {
    await using certs = await makeCerts();
    await using api = await startTlsServer(await certs.leaf("api", ["api.example.com"]), ["-www"]);
    await using www = await startTlsServer(await certs.leaf("www", ["www.example.com"]), ["-www"]);
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      `${api.port},sni=api.example.com`,
      "-p",
      `${www.port},sni=www.example.com`,
    ]);
    for (const name of ["api.example.com", "www.example.com"]) {
      const { success, stderr } = await new Deno.Command("curl", {
        args: [
          "-sv",
          "-o",
          "/dev/null",
          "--resolve",
          `${name}:${lb.port}:127.0.0.1`,
          "--cacert",
          certs.ca,
          `https://${name}:${lb.port}/`,
        ],
        stdin: "null",
      }).output();
      const log = new TextDecoder().decode(stderr);
      ok(success, log);
      ok(new RegExp(`subject: CN=${name.replaceAll(".", "\\.")}`).test(log), log);
    }
  },
});

Deno.test({
  name: "sni= behind --accept-proxy: a PROXY header and the ClientHello in one segment are routed",
  ignore: !opensslAvailable(),
  async fn() {
    const hello = await captureClientHello("api.example.com");
    await using api = startRecordingServer();
    const received = api.results as Uint8Array[];
    await using other = startEchoServer();
    await using lb = await startLb([
      "-f",
      "127.0.0.1:0",
      "-p",
      `${api.port},sni=api.example.com`,
      "-p",
      String(other.port),
      "--accept-proxy",
      "--health-interval",
      "0",
    ]);
    const header = encoder.encode("PROXY TCP4 203.0.113.7 10.0.0.1 5123 443\r\n");
    const conn = await Deno.connect({ hostname: LOOPBACK, port: lb.port });
    await writeAll(conn, new Uint8Array([...header, ...hello])); // one write
    await conn.closeWrite();
    await readAll(conn);
    conn.close();
    await waitUntil(() => received.length === 1, "the api backend to read to EOF");
    assertEquals(received[0], hello, "the ClientHello, without our PROXY header, unchanged");
    assertEquals(other.accepted, 0);
  },
});
