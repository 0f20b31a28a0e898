/**
 * Routes by TLS server name: exact names and one-label wildcards.
 *
 * @module
 */
import { checkHostName } from "./_host_name.ts";

/**
 * A server name given to {@linkcode SniRoutes} that is neither a host name
 * nor a `*.` wildcard over one. Thrown at construction, so a config loader
 * catches it by class and reports the message, which names the bad name.
 */
export class SniNameError extends SyntaxError {
  override name = "SniNameError";
  /** The name as given. */
  readonly serverName: string;

  /**
   * @param serverName The name as given.
   * @param message Why it is refused, one line.
   */
  constructor(serverName: string, message: string) {
    super(message);
    this.serverName = serverName;
  }
}

/** Names that route to one value, for {@linkcode SniRoutes}. */
export interface SniRoute<T> {
  /**
   * Exact host names (`api.example.com`) and wildcards (`*.example.com`),
   * any case, one trailing dot allowed.
   */
  names: readonly string[];
  /** What a match returns: a backend, for lb. */
  value: T;
}

/**
 * A table from TLS server names to values. A wildcard `*.example.com`
 * stands for exactly one label: it matches `a.example.com`, but neither
 * `a.b.example.com` nor `example.com`. So a name can match one wildcard at
 * most, the one over its parent domain, which makes "the longest matching
 * wildcard" the only one. Names compare case-insensitively.
 *
 * @example
 * ```ts
 * const routes = new SniRoutes([
 *   { names: ["api.example.com"], value: "10.0.0.5:443" },
 *   { names: ["*.example.com"], value: "10.0.0.6:443" },
 * ]);
 * routes.match("api.example.com"); // ["10.0.0.5:443"]
 * routes.match("www.example.com"); // ["10.0.0.6:443"]
 * routes.match("example.com"); // []
 * routes.match(null); // []
 * ```
 */
export class SniRoutes<T> {
  /** Exact name → values, in entry order. */
  #exact = new Map<string, T[]>();
  /** Parent domain of a wildcard (`example.com` for `*.example.com`) → values. */
  #wildcard = new Map<string, T[]>();

  /**
   * @param routes Values and their names. A value listed under a name twice
   * counts once; values sharing a name all come back, in the given order.
   * @throws {SniNameError} When a name is neither a host name nor `*.` and a
   * host name, or is an IP address (SNI never carries one, RFC 6066 §3).
   */
  constructor(routes: Iterable<SniRoute<T>>) {
    for (const { names, value } of routes) {
      const keys = new Set<string>();
      for (const name of names) {
        const wildcard = name.startsWith("*.");
        const key = `${wildcard ? "*" : ""}${_normalize(wildcard ? name.slice(2) : name, name)}`;
        if (keys.has(key)) continue;
        keys.add(key);
        const table = wildcard ? this.#wildcard : this.#exact;
        const bare = wildcard ? key.slice(1) : key;
        const values = table.get(bare);
        if (values) values.push(value);
        else table.set(bare, [value]);
      }
    }
  }

  /**
   * The values for `serverName`: those of the exact name if any, else those
   * of the wildcard over its parent domain, else none (the caller then uses
   * what serves connections without a name).
   *
   * @param serverName A ClientHello's server name, or null when it had none.
   * @returns The matching values in the given order; a new array each call.
   */
  match(serverName: string | null): T[] {
    if (serverName === null || _NON_ASCII.test(serverName)) return [];
    const name = (serverName.endsWith(".") ? serverName.slice(0, -1) : serverName).toLowerCase();
    const exact = this.#exact.get(name);
    if (exact) return exact.slice();
    const dot = name.indexOf(".");
    if (dot <= 0) return [];
    return this.#wildcard.get(name.slice(dot + 1))?.slice() ?? [];
  }
}

// Before lower-casing: "\u212a".toLowerCase() is an ASCII "k".
const _NON_ASCII = /[\u0080-\uffff]/;

function _normalize(host: string, given: string): string {
  const check = checkHostName(host);
  if (check.kind === "name") return check.name;
  const why = check.kind === "ip"
    ? "is an IP address, which SNI never carries (RFC 6066)"
    : check.problem;
  throw new SniNameError(
    given,
    `Cannot route by server name as ${
      JSON.stringify(given)
    } must be a host name or *.host.name: the name ${why}`,
  );
}
