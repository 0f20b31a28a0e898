/**
 * Who may use the admin endpoint: the bearer token (`--admin-token-file`),
 * compared in constant time; the `Host` names it answers to (against DNS
 * rebinding); and what counts as a loopback address, where it may listen
 * without a token.
 * @module
 */
import { formatAddr, formatHostPort, type HostPort } from "../common/address.ts";
import { ConfigError, describeFileError } from "../common/errors.ts";
import { parseIp } from "../admission/cidr.ts";

/**
 * Reads the admin token: the file's content without surrounding whitespace.
 *
 * @param path The token file (`--admin-token-file`, `adminTokenFile`).
 * @returns The token: one or more printable ASCII characters, no spaces.
 * @throws {ConfigError} When the file cannot be read, is empty, or holds
 * something an `Authorization: Bearer` header cannot carry.
 * @example
 * ```ts
 * const token = await readAdminToken("/etc/lb/admin.token");
 * ```
 */
export async function readAdminToken(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError(`${path}: cannot read admin token file: ${describeFileError(error)}`, {
      cause: error,
    });
  }
  const token = text.trim();
  if (token === "") throw new ConfigError(`${path}: admin token file is empty`);
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError(
      `${path}: admin token must be one word of printable ASCII (no spaces or line breaks inside)`,
    );
  }
  return token;
}

/**
 * Whether an `Authorization` header carries `Bearer TOKEN` with the right
 * token. Both tokens are hashed (SHA-256) and the digests compared byte by
 * byte without an early exit, so the time taken says nothing about how much
 * of the token was right, nor about its length.
 *
 * @param header The request's `Authorization` header, or null.
 * @param token The token lb was started with.
 * @returns Whether the request may go on.
 */
export async function bearerMatches(header: string | null, token: string): Promise<boolean> {
  const presented = /^Bearer +(\S+) *$/i.exec(header ?? "")?.[1] ?? "";
  const [given, wanted] = await Promise.all([_sha256(presented), _sha256(token)]);
  let difference = 0;
  for (let i = 0; i < wanted.length; i++) difference |= given[i]! ^ wanted[i]!;
  return difference === 0;
}

/**
 * Whether `hostname` is a loopback address (127.0.0.0/8, `::1`, an
 * IPv4-mapped 127.x, or `localhost`): only the machine itself can reach it.
 * Any other name, and the wildcards `0.0.0.0` and `::`, are not.
 */
export function isLoopback(hostname: string): boolean {
  if (hostname.toLowerCase() === "localhost") return true;
  const ip = parseIp(hostname);
  if (ip === undefined) return false;
  if ("v4" in ip) return ip.v4 >>> 24 === 127;
  const [a, b, c, d] = ip.v6;
  return a === 0 && b === 0 && c === 0 && d === 1;
}

/**
 * The `Host` header values the admin answers to on one connection, lower
 * case: the address the client reached (for a wildcard listener, the
 * interface it came in on), `localhost:PORT` when that is loopback, and the
 * host lb was told to listen on when it is a name. A page on another name
 * that resolves to lb (DNS rebinding) sends its own name, and is refused.
 *
 * @param listen Where the admin was told to listen (`--admin`).
 * @param local The connection's local address.
 */
export function allowedHosts(listen: HostPort, local: Deno.NetAddr): string[] {
  const port = local.port;
  const hosts = [formatAddr(local)];
  if (isLoopback(local.hostname)) hosts.push(`localhost:${port}`);
  if (parseIp(listen.hostname) === undefined) {
    hosts.push(formatHostPort({ hostname: listen.hostname, port }));
  }
  // Browsers leave out the default port.
  if (port === 80) hosts.push(...hosts.map((host) => host.slice(0, host.lastIndexOf(":"))));
  return hosts.map((host) => host.toLowerCase());
}

async function _sha256(text: string): Promise<Uint8Array> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return new Uint8Array(digest);
}
