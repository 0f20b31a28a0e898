import type { Backend } from "../backend.ts";

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
}
