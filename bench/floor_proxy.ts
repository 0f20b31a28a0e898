/**
 * The floor for lb's per-connection cost: the smallest Deno TCP proxy (accept,
 * connect round robin, a 1 KiB copy loop each way with half-close, close),
 * without connect timeouts, cancellation, metrics or limits. Takes lb's
 * `-f HOST:PORT -p HOST:PORT...` (other flags are ignored); for `bench/ab.ts`.
 * Never for real traffic.
 * @module
 */
const args = Deno.args;
const [hostname, port] = args[args.indexOf("-f") + 1]!.split(":");
const backends = args.flatMap((arg, i) => arg === "-p" ? [args[i + 1]!.split(":")] : []);
const listener = Deno.listen({ hostname: hostname!, port: Number(port) });
let next = 0;

async function copy(src: Deno.Conn, dst: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(1024);
  for (let n; (n = await src.read(buf)) !== null;) {
    for (let written = 0; written < n;) written += await dst.write(buf.subarray(written, n));
  }
  await dst.closeWrite();
}

async function serve(client: Deno.TcpConn): Promise<void> {
  client.setNoDelay(true);
  const [host, backendPort] = backends[next++ % backends.length]!;
  let upstream: Deno.TcpConn | undefined;
  try {
    upstream = await Deno.connect({ hostname: host!, port: Number(backendPort) });
    upstream.setNoDelay(true);
    await Promise.all([copy(client, upstream), copy(upstream, client)]);
  } catch {
    // Reset or refused: close both.
  } finally {
    client.close();
    upstream?.close();
  }
}

for await (const client of listener) serve(client);
