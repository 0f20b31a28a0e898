import type { Backend } from "../backend.ts";
import type { Cell } from "../../common/shared_counters.ts";

/**
 * A balancing strategy: picks one of the candidates for a new connection.
 * Candidates are already filtered to backends that may take it (up, not drained,
 * below maxconn, not yet tried for this connection); the list is never empty.
 */
export interface Strategy {
  /**
   * @param candidates Backends that may take the connection, in pool order.
   * @param clientHost The client's address, for strategies that hash it.
   * @returns The chosen backend.
   */
  pick(candidates: readonly Backend[], clientHost: string): Backend;
  /**
   * Takes its turns from a counter shared with the other threads' strategy
   * for the same pool (`--workers`), for strategies that take turns.
   */
  share?(turn: Cell): void;
}
