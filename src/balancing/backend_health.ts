/**
 * One backend's health: up or down, with the streaks rise/fall count. Only
 * `Health` (results) and `HealthChecker` (check timing), in health.ts, change it.
 */
export class BackendHealth {
  #up = true;
  #okStreak = 0;
  #failStreak = 0;
  #lastCheckMs = -1;
  #lastError: string | undefined;
  #joining = false;

  /** Whether the backend takes connections. */
  get up(): boolean {
    return this.#up;
  }

  /** Successes in a row. */
  get okStreak(): number {
    return this.#okStreak;
  }

  /** Failures (checks or connects) in a row. */
  get failStreak(): number {
    return this.#failStreak;
  }

  /** Duration of the last health check, ms; -1 before the first. */
  get lastCheckMs(): number {
    return this.#lastCheckMs;
  }

  /** Why the last failed check or connect failed; undefined after a success. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Whether it is down until its first successful check ({@link BackendHealth.join}). */
  get joining(): boolean {
    return this.#joining;
  }

  /**
   * Down until one check succeeds, whatever `rise` says: a backend that
   * appeared while lb serves (a new address from DNS) gets connections once
   * it has answered, and at once after that (HAProxy's `init-state down`).
   */
  join(): void {
    this.#up = false;
    this.#joining = true;
  }

  /** Counts a success; true when it brings the backend up (`rise` in a row, or one when joining). */
  succeeded(rise: number): boolean {
    this.#failStreak = 0;
    this.#okStreak++;
    this.#lastError = undefined;
    if (this.#up || (this.#okStreak < rise && !this.#joining)) return false;
    this.#up = true;
    this.#joining = false;
    return true;
  }

  /** Counts a failure; true when it takes the backend down (`fall` in a row, if `canFall`). */
  failed(fall: number, canFall: boolean, why: string | undefined): boolean {
    this.#okStreak = 0;
    this.#failStreak++;
    this.#lastError = why;
    if (!this.#up || !canFall || this.#failStreak < fall) return false;
    this.#up = false;
    return true;
  }

  /** Takes the state another thread decided (a Worker follows the main thread's checks). */
  follow(up: boolean): void {
    this.#up = up;
    this.#okStreak = 0;
    this.#failStreak = 0;
  }

  /** Records how long a check took. */
  checked(ms: number): void {
    this.#lastCheckMs = ms;
  }

  /** Up with clean streaks (checks turned off); true when it was down. */
  reset(): boolean {
    const wasDown = !this.#up;
    this.#up = true;
    this.#joining = false;
    this.#failStreak = 0;
    this.#okStreak = 0;
    return wasDown;
  }
}
