/**
 * Counters every thread of one lb shares (`--workers`): a `SharedArrayBuffer`
 * read and written only through `Atomics`, so that the `--max-conns` gate,
 * each backend's open connections (`maxconn`, `leastconn`, `p2c`) and the
 * round-robin turn are one count across threads, not one per thread.
 *
 * A counter is found by name ({@link SharedCounters.cell}): any thread
 * claims the slot for a name on first use, and every thread asking for the
 * same name gets the same slot, with no message to the main thread. Besides
 * the total, each slot has one row per thread with that thread's part, so
 * that the parts of a thread that died can be taken back
 * ({@link SharedCounters.reclaim}) and a limit is not held by connections
 * nobody has any more.
 * @module
 */

/** Slots in a table: distinct names (frontend and backend pairs) over lb's life. */
export const DEFAULT_SLOTS = 16_384;

const EMPTY = 0;
const READY = 1;
/**
 * A slot whose claimer ended before writing the name: skipped for good
 * (made free again, two threads could give one name two slots).
 */
const DEAD = 2;
/** A slot being claimed by thread T holds `CLAIMING + T` until its name is written. */
const CLAIMING = 3;
/**
 * How long a thread waits for another to finish writing a name (a few
 * instructions, unless the writer was descheduled) before it gives up on that
 * slot: a writer terminated mid-claim must not hang everyone who probes it.
 */
const CLAIM_WAIT_MS = 1000;

/**
 * One counter: its total over every thread, and this thread's part.
 *
 * @example
 * ```ts
 * const open = counters.cell("gate");
 * if (open.tryAdd(10)) {
 *   // ... serve, then:
 *   open.sub();
 * }
 * ```
 */
export class Cell {
  readonly #total: Int32Array;
  readonly #part: Int32Array;
  readonly #index: number;
  readonly #shared: boolean;

  /** @internal Use {@link SharedCounters.cell} or {@link Cell.local}. */
  constructor(total: Int32Array, part: Int32Array, index: number, shared: boolean) {
    this.#total = total;
    this.#part = part;
    this.#index = index;
    this.#shared = shared;
  }

  /** A counter only this thread sees (no workers, or the table is full). */
  static local(): Cell {
    return new Cell(new Int32Array(1), new Int32Array(1), 0, false);
  }

  /** The total over every thread. */
  get value(): number {
    return Atomics.load(this.#total, this.#index);
  }

  /** This thread's part of the total. */
  get part(): number {
    return Atomics.load(this.#part, this.#index);
  }

  /**
   * Adds one unless the total has reached `limit` (0: no limit), in one
   * atomic step against every other thread.
   *
   * @returns Whether it added.
   */
  tryAdd(limit: number): boolean {
    const total = this.#total;
    const i = this.#index;
    for (;;) {
      const now = Atomics.load(total, i);
      if (limit > 0 && now >= limit) return false;
      if (Atomics.compareExchange(total, i, now, now + 1) === now) break;
    }
    Atomics.add(this.#part, i, 1);
    return true;
  }

  /** Adds one, whatever the total. */
  add(): void {
    Atomics.add(this.#total, this.#index, 1);
    Atomics.add(this.#part, this.#index, 1);
  }

  /** Takes one off and wakes the threads waiting for the total to change. */
  sub(): void {
    Atomics.sub(this.#part, this.#index, 1);
    Atomics.sub(this.#total, this.#index, 1);
    if (this.#shared) Atomics.notify(this.#total, this.#index);
  }

  /** Adds one and returns the total before: a turn counter shared by every thread. */
  next(): number {
    return Atomics.add(this.#total, this.#index, 1);
  }

  /**
   * Resolves when the total is no longer `seen` (another thread changed it),
   * or after `timeoutMs` at the latest. Undefined for a local counter: only
   * this thread changes it, and sees it do so.
   */
  changed(seen: number, timeoutMs: number): Promise<unknown> | undefined {
    if (!this.#shared) return undefined;
    const result = Atomics.waitAsync(this.#total, this.#index, seen, timeoutMs);
    return result.async ? result.value : Promise.resolve();
  }
}

/**
 * The table of shared counters, one per lb process: the main thread creates
 * it and sends {@link SharedCounters.buffer} to each worker, which attaches
 * with its own thread number.
 *
 * Layout, in 32-bit words: per slot a state (empty, being claimed, ready)
 * and two hash words of the name; then the totals; then one row of parts
 * per thread.
 */
export class SharedCounters {
  readonly buffer: SharedArrayBuffer;
  /** This thread: 0 for the main thread, then 1, 2, ... for the workers. */
  readonly thread: number;
  readonly threads: number;
  readonly slots: number;
  readonly #words: Int32Array;
  readonly #totals: Int32Array;
  readonly #cells = new Map<string, Cell>();
  #full = false;
  #toldFull = false;

  private constructor(buffer: SharedArrayBuffer, thread: number) {
    this.buffer = buffer;
    this.thread = thread;
    const header = new Int32Array(buffer, 0, 2);
    this.threads = header[0]!;
    this.slots = header[1]!;
    this.#words = new Int32Array(buffer, 8, this.slots * 3);
    this.#totals = new Int32Array(buffer, 8 + this.slots * 12, this.slots);
    if (thread < 0 || thread >= this.threads) {
      throw new RangeError(`thread ${thread} is not in 0..${this.threads - 1}`);
    }
  }

  /** A new table for `threads` threads; this thread is thread 0. */
  static create(threads: number, slots: number = DEFAULT_SLOTS): SharedCounters {
    const buffer = new SharedArrayBuffer(8 + slots * 4 * (3 + 1 + threads));
    const header = new Int32Array(buffer, 0, 2);
    header[0] = threads;
    header[1] = slots;
    return new SharedCounters(buffer, 0);
  }

  /** The table `buffer` holds, seen from thread `thread`. */
  static attach(buffer: SharedArrayBuffer, thread: number): SharedCounters {
    return new SharedCounters(buffer, thread);
  }

  /** Whether a name found no free slot (its counter is then this thread's alone). */
  get full(): boolean {
    return this.#full;
  }

  /** True once, the first time it is asked after the table became full: warn then. */
  fullNews(): boolean {
    if (!this.#full || this.#toldFull) return false;
    this.#toldFull = true;
    return true;
  }

  /**
   * The counter for `name`, the same slot in every thread. When the table is
   * full the counter is local to this thread ({@link SharedCounters.full}).
   */
  cell(name: string): Cell {
    let cell = this.#cells.get(name);
    if (!cell) {
      const slot = this.#claim(name);
      if (slot === undefined) this.#full = true;
      cell = slot === undefined ? Cell.local() : new Cell(
        this.#totals,
        this.#row(this.thread),
        slot,
        true,
      );
      this.#cells.set(name, cell);
    }
    return cell;
  }

  /**
   * Takes thread `thread`'s parts off every total and zeroes its row: called
   * by the main thread once that worker has died, before it restarts.
   */
  reclaim(thread: number): void {
    // A slot it was claiming when it ended: skipped from now on.
    for (let slot = 0; slot < this.slots; slot++) {
      Atomics.compareExchange(this.#words, slot * 3, CLAIMING + thread, DEAD);
    }
    const row = this.#row(thread);
    for (let slot = 0; slot < this.slots; slot++) {
      const part = Atomics.exchange(row, slot, 0);
      if (part !== 0) {
        Atomics.sub(this.#totals, slot, part);
        Atomics.notify(this.#totals, slot);
      }
    }
  }

  #row(thread: number): Int32Array {
    return new Int32Array(this.buffer, 8 + this.slots * 16 + thread * this.slots * 4, this.slots);
  }

  /** Finds or claims the slot for `name` by open addressing; undefined when full. */
  #claim(name: string): number | undefined {
    const [h1, h2] = _hashes(name);
    const words = this.#words;
    for (let probe = 0; probe < this.slots; probe++) {
      const slot = (h1 + probe) % this.slots;
      const at = slot * 3;
      let state = Atomics.load(words, at);
      if (state === EMPTY) {
        state = Atomics.compareExchange(words, at, EMPTY, CLAIMING + this.thread);
        if (state === EMPTY) {
          Atomics.store(words, at + 1, h1);
          Atomics.store(words, at + 2, h2);
          Atomics.store(words, at, READY);
          return slot;
        }
      }
      // Another thread is writing the name's two words: a few instructions.
      if (state >= CLAIMING) state = _awaitClaim(words, at);
      if (state !== READY) continue; // its writer ended mid-claim: not this name's slot
      if (Atomics.load(words, at + 1) === h1 && Atomics.load(words, at + 2) === h2) return slot;
    }
    return undefined;
  }
}

/** The state of the slot at `at` once its claim is over, or still claiming after {@link CLAIM_WAIT_MS}. */
function _awaitClaim(words: Int32Array, at: number): number {
  const deadline = Date.now() + CLAIM_WAIT_MS;
  let state = Atomics.load(words, at);
  for (let spins = 1; state >= CLAIMING; spins++) {
    if (spins % 1024 === 0 && Date.now() > deadline) break;
    state = Atomics.load(words, at);
  }
  return state;
}

/** Two independent 31-bit FNV-1a hashes of `name` (62 bits: a collision is not a concern). */
function _hashes(name: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [(a >>> 1) & 0x7fffffff, (b >>> 1) & 0x7fffffff];
}
