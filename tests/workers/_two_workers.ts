// lb with two threads, started as a process, for the end-to-end tests in tests/workers/.
import { type LbProcess, startLb } from "../../support/lb_process.ts";
import { LOOPBACK } from "../_helpers.ts";

/** No health checks, no access log: what most of these tests start with. */
export const QUIET = ["--health-interval", "0", "--log", "off"];

/** lb with `--workers 2` on a free port in front of `backends` (`-p` values), then `flags`. */
export function twoWorkers(backends: string[], ...flags: string[]): Promise<LbProcess> {
  return startLb([
    "-f",
    `${LOOPBACK}:0`,
    ...backends.flatMap((backend) => ["-p", backend]),
    "--workers",
    "2",
    ...flags,
  ]);
}
