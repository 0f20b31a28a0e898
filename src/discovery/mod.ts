/**
 * DNS discovery: backends from host names (A and AAAA) and SRV records,
 * re-resolved on an interval, each name keeping its last good set.
 *
 * @example
 * ```ts
 * import { Discovery } from "./mod.ts";
 *
 * await using discovery = new Discovery({
 *   entries: [{ id: "srv:_http._tcp.backends.example", kind: "srv", name: "_http._tcp.backends.example" }],
 *   interval: 10_000,
 *   onChange: (id, endpoints) => console.log(id, endpoints),
 * });
 * await discovery.start();
 * ```
 *
 * @module
 */
export * from "./resolve.ts";
export * from "./discovery.ts";
