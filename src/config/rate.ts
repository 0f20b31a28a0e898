import { parseRate } from "../admission/source_table.ts";
import { ConfigError, describe } from "../common/errors.ts";
import type { RateConfig } from "./config.ts";

/**
 * Reads a rate `N/DUR` (`20/1s`: 20 new connections per second).
 *
 * @throws {ConfigError} Naming `name` when the text is not a rate in range.
 */
export function readRate(text: string, name: string): RateConfig {
  try {
    return parseRate(text, name);
  } catch (error) {
    throw new ConfigError(describe(error), { cause: error });
  }
}
