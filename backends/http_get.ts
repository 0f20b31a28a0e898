/**
 * One HTTP/1.0 GET on a new TCP connection, like one `curl` call: a new
 * connection each time, so a load balancer sees every request.
 *
 * @param port Where to connect on `hostname`.
 * @returns The response body.
 * @throws When the connection fails or the answer is not HTTP.
 */
export async function httpGet(port: number, hostname = "127.0.0.1"): Promise<string> {
  const conn = await Deno.connect({ hostname, port });
  try {
    await conn.write(new TextEncoder().encode(`GET / HTTP/1.0\r\nHost: ${hostname}\r\n\r\n`));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(concat(chunks));
    const split = text.indexOf("\r\n\r\n");
    if (!text.startsWith("HTTP/") || split < 0) {
      throw new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 40))}`);
    }
    return text.slice(split + 4);
  } finally {
    conn.close();
  }
}

/** Concatenates byte chunks into one new array. */
export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
