/**
 * What lb writes to a backend before the client's stream: the PROXY header
 * the backend asked for (`proxy=v1|v2`) and bytes read from the client before
 * the pumps started. One buffer, so it costs one write.
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import { encodeProxyV1, encodeProxyV2 } from "../proxy_protocol/mod.ts";
import type { Session } from "./session.ts";

/** The bytes to write to `backend` first, or undefined when there are none. */
export function helloFor(session: Session, backend: Backend): Uint8Array | undefined {
  const header = _header(session, backend);
  const prefetch = session.prefetch;
  if (!header) return prefetch;
  if (!prefetch) return header;
  const out = new Uint8Array(header.length + prefetch.length);
  out.set(header);
  out.set(prefetch, header.length);
  return out;
}

function _header(session: Session, backend: Backend): Uint8Array | undefined {
  if (!backend.proxy) return undefined;
  const source = { hostname: session.clientHost, port: session.clientPort };
  const destination = { hostname: session.localAddr.hostname, port: session.localAddr.port };
  if (backend.proxy === "v1") return encodeProxyV1(source, destination);
  return encodeProxyV2(source, destination, {
    ...(session.authority === undefined ? {} : { authority: session.authority }),
    ...(session.uniqueId === undefined ? {} : { uniqueId: session.uniqueId }),
  });
}

/** Writes all of `data`, finishing partial writes. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let written = 0; written < data.length;) {
    written += await conn.write(data.subarray(written));
  }
}
