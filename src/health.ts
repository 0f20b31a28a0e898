import type { Backend } from "./backend.ts";
import type { HealthConfig } from "./config.ts";
import type { Logger } from "./log.ts";

/**
 * Backend health with rise/fall. Passive: every connect attempt reports here.
 * A backend goes down after `fall` failures in a row and up after `rise`
 * successes in a row; each change is logged once.
 */
export class Health {
  #config: HealthConfig;
  #logger: Logger;

  constructor(config: HealthConfig, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
  }

  /** Records one connect or check result for `backend`. */
  report(backend: Backend, ok: boolean): void {
    if (ok) {
      backend.failStreak = 0;
      backend.okStreak++;
      if (!backend.healthy && backend.okStreak >= this.#config.rise) {
        backend.healthy = true;
        this.#logger.log("health", `backend ${backend.id} is up`);
      }
    } else {
      backend.okStreak = 0;
      backend.failStreak++;
      if (backend.healthy && backend.failStreak >= this.#config.fall) {
        backend.healthy = false;
        this.#logger.log("health", `backend ${backend.id} is down`);
      }
    }
  }
}
