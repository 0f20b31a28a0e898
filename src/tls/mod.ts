/**
 * TLS without decrypting: an incremental ClientHello parser over bytes, a
 * bounded reader that returns every byte it read for replay, and routes by
 * server name with one-label wildcards.
 *
 * @example
 * ```ts
 * import { readClientHello, SniRoutes } from "./mod.ts";
 *
 * const routes = new SniRoutes([{ names: ["*.example.com"], value: "10.0.0.6:443" }]);
 * const { hello, bytes } = await readClientHello(conn, { timeoutMs: 5000 });
 * routes.match(hello.serverName); // then write `bytes` to the chosen backend first
 * ```
 *
 * @module
 */
export * from "./client_hello.ts";
export * from "./read.ts";
export * from "./sni_match.ts";
