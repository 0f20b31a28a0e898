/**
 * What lb writes to a backend before the client's stream: the PROXY header
 * the backend asked for (`proxy=v1|v2`) and bytes read from the client before
 * the pumps started. One buffer, so it costs one write.
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import { concatBytes } from "../common/bytes.ts";
import { encodeProxyV1, encodeProxyV2 } from "../proxy_protocol/mod.ts";
import type { Session } from "./session.ts";

/**
 * The bytes to write to `backend` first (its PROXY header, bytes read from
 * the client before the pumps, then `extra`), or undefined when there are none.
 */
export function helloFor(
  session: Session,
  backend: Backend,
  extra?: Uint8Array,
): Uint8Array | undefined {
  const parts = [_header(session, backend), session.prefetch, extra].filter((p) => p !== undefined);
  return parts.length <= 1 ? parts[0] : concatBytes(...parts);
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
