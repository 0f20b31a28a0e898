/**
 * Balancing strategies by name, for `--balance`.
 * @module
 */
import { LeastConn } from "./leastconn.ts";
import { PowerOfTwo } from "./p2c.ts";
import { RoundRobin } from "./round_robin.ts";
import { SourceHash } from "./source.ts";
import type { Strategy } from "./strategy.ts";

export type { Strategy } from "./strategy.ts";
export { LeastConn, PowerOfTwo, RoundRobin, SourceHash };

const REGISTRY: Record<string, () => Strategy> = {
  roundrobin: () => new RoundRobin(),
  leastconn: () => new LeastConn(),
  random: () => new PowerOfTwo(),
  p2c: () => new PowerOfTwo(),
  source: () => new SourceHash(),
};

/** Names `--balance` accepts. */
export const STRATEGY_NAMES: readonly string[] = Object.keys(REGISTRY);

/**
 * Makes a fresh strategy by name.
 *
 * @throws {RangeError} When the name is not registered (configs are validated before this).
 */
export function createStrategy(name: string): Strategy {
  const make = REGISTRY[name];
  if (!make) throw new RangeError(`Cannot create strategy: unknown name ${JSON.stringify(name)}`);
  return make();
}
