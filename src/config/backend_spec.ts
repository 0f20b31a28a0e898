import { ConfigError } from "../common/errors.ts";
import type { BackendConfig } from "./config.ts";
import { parseBackendAddress } from "./backend_entry.ts";
import { LIMITS, readInt } from "./limits.ts";

/**
 * Parses one `-p` value: `PORT`, `HOST:PORT`, `[IPv6]:PORT` or `srv:_SERVICE._PROTO.NAME`
 * (a HOST that is a name, or an SRV name, is followed through DNS), then comma-separated
 * options `weight=N`, `backup`, `maxconn=N` (0 is no limit), `proxy=v1|v2` (send a PROXY
 * protocol header); ranges in {@link LIMITS}.
 *
 * @param value The flag value.
 * @param field The flag, named in errors.
 * @returns The backend.
 * @throws {ConfigError} On a bad address or option.
 * @example
 * ```ts
 * parseBackendSpec("127.0.0.1:8101,weight=3", "-p");
 * ```
 */
export function parseBackendSpec(value: string, field: string): BackendConfig {
  const [address = "", ...options] = value.split(",");
  const backend: BackendConfig = {
    ...parseBackendAddress(address, field),
    weight: 1,
    backup: false,
    maxConn: 0,
  };
  for (const option of options) {
    const [key = "", raw] = option.trim().split("=", 2);
    if (key === "backup" && raw === undefined) backend.backup = true;
    else if (key === "weight" && raw !== undefined) {
      if (backend.srv) {
        throw new ConfigError(`${field} ${address}: weight comes from the SRV records`);
      }
      backend.weight = readInt(raw, `${field} ${address} weight`, LIMITS.weight);
    } else if (key === "maxconn" && raw !== undefined) {
      backend.maxConn = readInt(raw, `${field} ${address} maxconn`, LIMITS.maxConn);
    } else if (key === "proxy" && (raw === "v1" || raw === "v2")) {
      backend.proxy = raw;
    } else if (key === "tls" && raw === undefined) {
      backend.tls = true;
    } else if (key === "tls-name" && raw !== undefined && raw !== "") {
      backend.tls = true;
      backend.tlsName = raw;
    } else if (key === "tls-verify" && (raw === "on" || raw === "off")) {
      backend.tlsVerify = raw === "on";
    } else if (key === "sni" && raw !== undefined && raw !== "") {
      (backend.sni ??= []).push(raw);
    } else {
      throw new ConfigError(
        `${field} ${address}: unknown option ${
          JSON.stringify(option)
        } (expected weight=N, backup, maxconn=N, proxy=v1|v2, sni=NAME, tls, tls-name=NAME or tls-verify=off)`,
      );
    }
  }
  return backend;
}
