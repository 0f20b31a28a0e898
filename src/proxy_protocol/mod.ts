/**
 * The PROXY protocol, versions 1 and 2 (HAProxy's `doc/proxy-protocol.txt`):
 * types, an incremental parser, encoders, a bounded socket reader and the IP
 * text helpers they use.
 *
 * @example
 * ```ts
 * import { encodeProxyV2, parseProxyHeader } from "./mod.ts";
 *
 * const bytes = encodeProxyV2({ hostname: "10.0.0.5", port: 5123 }, { hostname: "10.0.0.1", port: 80 });
 * parseProxyHeader(bytes); // { status: "ok", header: { version: 2, command: "PROXY", ... }, length: 28 }
 * ```
 *
 * @module
 */
export * from "./header.ts";
export * from "./parse.ts";
export * from "./encode.ts";
export * from "./read.ts";
export * from "./ip.ts";
