/**
 * TLS test peers made at test time with Debian's openssl: certificates (a
 * CA and leaves), `openssl s_server` and `openssl s_client`.
 * @module
 */
import { LOOPBACK, waitConnectable } from "./_helpers.ts";

const decoder = new TextDecoder();

/** Whether openssl runs here. */
export function opensslAvailable(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const { success, stderr } = await new Deno.Command("openssl", { args, cwd, stdin: "null" })
    .output();
  if (!success) throw new Error(`openssl ${args[0]}: ${decoder.decode(stderr)}`);
}

/** A directory of certificates: a CA, and leaves it signed. Dispose to delete. */
export interface Certs extends AsyncDisposable {
  readonly dir: string;
  /** The CA certificate's path. */
  readonly ca: string;
  /** Makes a leaf for `names` (the first is the CN), signed by the CA: its cert and key paths. */
  leaf(file: string, names: string[]): Promise<{ cert: string; key: string }>;
}

/** A fresh CA in a temporary directory. */
export async function makeCerts(): Promise<Certs> {
  const dir = await Deno.makeTempDir({ prefix: "lb-tls-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=lb test CA",
    ],
    dir,
  );
  return {
    dir,
    ca: `${dir}/ca.pem`,
    async leaf(file, names) {
      await openssl(
        ["req", ...ec, "-keyout", `${file}.key`, "-out", `${file}.csr`, "-subj", `/CN=${names[0]}`],
        dir,
      );
      await Deno.writeTextFile(
        `${dir}/${file}.ext`,
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}\n`,
      );
      await openssl(
        [
          "x509",
          "-req",
          "-in",
          `${file}.csr`,
          "-CA",
          "ca.pem",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-out",
          `${file}.pem`,
          "-days",
          "2",
          "-extfile",
          `${file}.ext`,
        ],
        dir,
      );
      return { cert: `${dir}/${file}.pem`, key: `${dir}/${file}.key` };
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A free loopback port (racy by nature; for a peer that needs a number up front). */
export function freeLoopbackPort(): number {
  using listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  return listener.addr.port;
}

/** `openssl s_server` on a loopback port with `cert`/`key`; dispose to stop it. */
export async function startTlsServer(
  cert: { cert: string; key: string },
  extra: string[] = [],
): Promise<{ port: number } & AsyncDisposable> {
  const port = freeLoopbackPort();
  const child = new Deno.Command("openssl", {
    args: [
      "s_server",
      "-accept",
      `127.0.0.1:${port}`,
      "-cert",
      cert.cert,
      "-key",
      cert.key,
      "-quiet",
      ...extra,
    ],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitConnectable(port, `openssl s_server on ${port}`);
  return {
    port,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.stdin.close().catch(() => {});
      await child.status;
    },
  };
}

/**
 * Runs `openssl s_client` against `port` (with `servername`, or none) and
 * returns what it printed: the subject of the certificate it was shown, and
 * whether the handshake verified against `ca`.
 */
export async function tlsClient(
  port: number,
  servername: string | null,
  ca?: string,
): Promise<{ subject: string | undefined; verified: boolean; output: string }> {
  const { stdout, stderr } = await new Deno.Command("openssl", {
    args: [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      ...(servername === null ? ["-noservername"] : ["-servername", servername]),
      ...(ca ? ["-CAfile", ca] : []),
    ],
    stdin: "null",
  }).output();
  const output = decoder.decode(stdout) + decoder.decode(stderr);
  const subject = /^subject=\s*(.*)$/m.exec(output)?.[1]?.replace(/\s/g, "");
  return { subject, verified: /Verify return code: 0 \(ok\)/.test(output), output };
}

/** A real ClientHello for `servername`: the first bytes openssl s_client sends to a raw listener. */
export async function captureClientHello(servername: string): Promise<Uint8Array> {
  const captured: Uint8Array[] = [];
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const accepting = (async () => {
    const conn = await listener.accept();
    try {
      const buf = new Uint8Array(16384);
      const n = await conn.read(buf);
      if (n !== null) captured.push(buf.slice(0, n));
    } finally {
      conn.close();
    }
  })();
  await new Deno.Command("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${listener.addr.port}`, "-servername", servername],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  await accepting;
  listener.close();
  return captured[0]!;
}
