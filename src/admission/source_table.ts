/**
 * Per-source limits for the front door: how many connections a source may
 * hold open (`--max-conns-per-source`) and how many it may open per sliding
 * window (`--conn-rate-per-source`), kept in a table of bounded size
 * (`--source-table-size`).
 * @module
 */

/** A connection rate: at most `count` new connections per `windowMs`. */
export interface Rate {
  /** New connections allowed per window, 1-1000000. */
  readonly count: number;
  /** The window, 1 ms to 1 h. */
  readonly windowMs: number;
}

/** What {@link SourceTable.admit} decides; the refusals are metric labels. */
export type AdmitResult = "ok" | "too-many-open" | "too-fast";

/** The most sources a {@link SourceTable} tracks unless told otherwise. */
export const DEFAULT_SOURCE_TABLE_SIZE = 100_000;

/** Largest count and window a {@link Rate} may have. */
const MAX_RATE_COUNT = 1_000_000;
const MAX_RATE_WINDOW_MS = 3_600_000;
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * How many entries at the old end of the table one call looks at, to drop
 * idle ones: a couple on every admission, a few more when the table is full.
 */
const SWEEP_STEPS = 2;
const SWEEP_STEPS_WHEN_FULL = 8;

/**
 * Text that is not a connection rate. Callers catch it by class (it is also a
 * `SyntaxError`) and wrap it with where the text came from.
 */
export class RateError extends SyntaxError {
  override name = "RateError";
}

/**
 * Parses a connection rate `COUNT/WINDOW`: `20/1s`, `100/10s`, `5/500ms`,
 * `60/1m`. The window takes a unit (ms, s, m or h).
 *
 * @param text The text to parse; surrounding whitespace is ignored.
 * @param field The flag or config field, named in the error.
 * @returns The rate.
 * @throws {RateError} When the text is not a rate, the count is not 1-1000000
 *   or the window not 1ms-1h.
 * @example
 * ```ts
 * parseRate("5/500ms", "--conn-rate-per-source"); // { count: 5, windowMs: 500 }
 * ```
 */
export function parseRate(text: string, field: string): Rate {
  const match = /^(\d+)\/(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!match) {
    throw new RateError(
      `${field} must be a rate like 20/1s, 100/10s or 5/500ms: got ${JSON.stringify(text)}`,
    );
  }
  const count = Number(match[1]);
  const windowMs = Math.round(Number(match[2]) * (UNITS[match[3]!] ?? 1000));
  if (!(count >= 1 && count <= MAX_RATE_COUNT)) {
    throw new RateError(
      `${field} must allow 1-${MAX_RATE_COUNT} connections per window: got ${JSON.stringify(text)}`,
    );
  }
  if (!(windowMs >= 1 && windowMs <= MAX_RATE_WINDOW_MS)) {
    throw new RateError(`${field} must have a window of 1ms-1h: got ${JSON.stringify(text)}`);
  }
  return { count, windowMs };
}

/** How a {@link SourceTable} is limited. */
export interface SourceTableOptions {
  /**
   * Most connections one source may hold open; 0 is no limit.
   * @default {0}
   */
  maxOpen?: number;
  /**
   * Most new connections one source may open per sliding window; `null` is no limit.
   * @default {null}
   */
  rate?: Rate | null;
  /**
   * Most sources tracked at once.
   * @default {100_000}
   */
  capacity?: number;
  /**
   * Milliseconds from an arbitrary origin (only differences matter), for tests.
   * @default {() => performance.now()}
   */
  now?: () => number;
}

/** What the table knows of one source, linked in least-recently-admitted order. */
class Entry {
  /** Connections admitted and not yet released. */
  open = 0;
  /** Connections admitted in the fixed window before the current one. */
  previous = 0;
  /** Connections admitted in the current fixed window. */
  current = 0;
  /** The entry admitted before this one (the list's sentinel for the oldest). */
  older: Entry = this;
  /** The entry admitted after this one (the list's sentinel for the newest). */
  newer: Entry = this;

  constructor(
    readonly key: string,
    /** When the current fixed rate window began. */
    public windowStart: number,
  ) {}
}

/**
 * Per-source connection limits: open connections per source and new
 * connections per source over a sliding window, for sources named by a key
 * (see `sourceKey` in `cidr.ts`).
 *
 * The rate is a sliding-window counter, as HAProxy's `conn_rate` and
 * Cloudflare's rate limiter keep it: per source, the connections of the
 * current fixed window and of the one before, the latter weighted by the share
 * of it the sliding window still covers. It is O(1) in time and three numbers
 * per source, whatever the rate, where an exact log of timestamps would cost
 * up to `count` per source. It is exact for connections spread evenly and an
 * estimate otherwise: a source retrying non-stop gets `count` per window on
 * average but can get a few more into one window's length, and a burst at the
 * end of one fixed window followed by one at the end of the next can get up to
 * twice `count` in. Only admitted connections count toward the rate, so a
 * source refused for going too fast gets in again at the rate allowed,
 * however hard it retries.
 *
 * The table never holds more than `capacity` sources: a `Map` from key to
 * entry, the entries linked in least-recently-admitted order. A source with
 * nothing to remember (no open connections, and a rate window that has run
 * out) is dropped lazily: when its last connection is released, or when an
 * admission finds it at the old end of the list. When a new source finds the
 * table full, the oldest source without open connections is evicted if one is
 * near the old end (sources in use are moved to the new end on the way), else
 * the oldest one. So under a flood of more distinct sources than `capacity`,
 * the counts of evicted sources restart from zero, which lets them past their
 * limits; {@link evictions} counts how often that happened. Releasing a
 * connection of an evicted source is a no-op; if the source came back in the
 * meantime, it lowers the new entry's count (never below zero), so that source
 * may briefly hold more than `maxOpen`.
 *
 * @example
 * ```ts
 * const table = new SourceTable({ maxOpen: 10, rate: parseRate("20/1s", "--conn-rate-per-source") });
 * if (table.admit("10.0.0.5") === "ok") {
 *   // ... serve, and when the connection closes:
 *   table.release("10.0.0.5");
 * }
 * ```
 */
export class SourceTable {
  #maxOpen = 0;
  #count = 0;
  /** 0 when there is no rate limit. */
  #windowMs = 0;
  #capacity: number;
  #now: () => number;
  #entries = new Map<string, Entry>();
  /**
   * The sentinel of a circular list of the entries, least recently admitted
   * first (`#list.newer`). A list of our own rather than the `Map`'s insertion
   * order: finding a `Map`'s first entry skips the holes that deletes leave,
   * which costs O(capacity) under churn.
   */
  #list = new Entry("", 0);
  #evictions = 0;

  /**
   * @param options The limits.
   * @throws {RangeError} When a limit is out of range.
   */
  constructor(options: SourceTableOptions = {}) {
    const { capacity = DEFAULT_SOURCE_TABLE_SIZE } = options;
    _check("capacity", capacity, Number.isSafeInteger(capacity) && capacity >= 1, "1 or more");
    this.#capacity = capacity;
    this.#now = options.now ?? (() => performance.now());
    this.configure(options);
  }

  /**
   * Takes new limits (a reload) and keeps what the table knows of each
   * source. Open connections are counted only while `maxOpen` is set, so a
   * limit turned on counts from then on.
   *
   * @throws {RangeError} On a limit out of range.
   */
  configure(options: Pick<SourceTableOptions, "maxOpen" | "rate">): void {
    const { maxOpen = 0, rate = null } = options;
    _check("maxOpen", maxOpen, Number.isSafeInteger(maxOpen) && maxOpen >= 0, "0 or more");
    if (rate !== null) {
      const { count, windowMs } = rate;
      const countOk = Number.isInteger(count) && count >= 1 && count <= MAX_RATE_COUNT;
      _check("rate.count", count, countOk, `1-${MAX_RATE_COUNT}`);
      const windowOk = windowMs >= 1 && windowMs <= MAX_RATE_WINDOW_MS;
      _check("rate.windowMs", windowMs, windowOk, `1-${MAX_RATE_WINDOW_MS}`);
    }
    this.#maxOpen = maxOpen;
    this.#count = rate?.count ?? 0;
    this.#windowMs = rate?.windowMs ?? 0;
  }

  /** Sources tracked now, at most the capacity. */
  get size(): number {
    return this.#entries.size;
  }

  /** Sources dropped to make room while they still had counts to keep. */
  get evictions(): number {
    return this.#evictions;
  }

  /**
   * Decides whether a source may open one more connection, and counts it
   * when it may. Call {@link release} once for each `ok` when its connection
   * closes.
   *
   * @param key The source, e.g. from `sourceKey`.
   * @returns `ok`, or the reason for refusing: `too-many-open` or `too-fast`.
   */
  admit(key: string): AdmitResult {
    if (this.#maxOpen === 0 && this.#windowMs === 0) return "ok";
    const now = this.#now();
    this.#sweep(now, SWEEP_STEPS);
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      if (this.#entries.size >= this.#capacity) this.#makeRoom(now);
      entry = new Entry(key, now);
      this.#entries.set(key, entry);
    } else {
      _unlink(entry);
    }
    this.#append(entry);
    if (this.#maxOpen > 0 && entry.open >= this.#maxOpen) return "too-many-open";
    if (this.#windowMs > 0) {
      if (this.#rate(entry, now) >= this.#count) return "too-fast";
      entry.current++;
    }
    entry.open++; // counted even without a cap: a cap a reload turns on must see them
    return "ok";
  }

  /**
   * Counts out a connection that {@link admit} let in. A source the table no
   * longer tracks (evicted) is ignored.
   *
   * @param key The source, as given to `admit`.
   */
  release(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.open === 0) return;
    entry.open--;
    if (entry.open === 0 && (this.#windowMs === 0 || this.#idle(entry, this.#now()))) {
      this.#remove(entry);
    }
  }

  /**
   * New connections in the sliding window ending now, estimated: the current
   * fixed window's count plus the previous one's, weighted by the share of
   * the sliding window still over it. Moves the fixed windows on first.
   */
  #rate(entry: Entry, now: number): number {
    const windowMs = this.#windowMs;
    const elapsed = now - entry.windowStart;
    if (elapsed >= windowMs) {
      entry.previous = elapsed < 2 * windowMs ? entry.current : 0;
      entry.current = 0;
      entry.windowStart = now - (elapsed % windowMs);
    }
    const previousShare = (windowMs - (now - entry.windowStart)) / windowMs;
    return entry.current + entry.previous * previousShare;
  }

  /** Whether an entry has nothing to remember: no open connections, no rate left in its windows. */
  #idle(entry: Entry, now: number): boolean {
    return entry.open === 0 &&
      (this.#windowMs === 0 || now - entry.windowStart >= 2 * this.#windowMs);
  }

  /**
   * Looks at up to `steps` entries at the old end: drops idle ones, moves
   * ones with open connections to the new end (they are in use, and so that
   * idle ones behind them are reached), and stops at the first that has a
   * rate window still running.
   */
  #sweep(now: number, steps: number): void {
    for (let i = 0; i < steps; i++) {
      const oldest = this.#list.newer;
      if (oldest === this.#list) return;
      if (oldest.open > 0) {
        _unlink(oldest);
        this.#append(oldest);
      } else if (this.#idle(oldest, now)) {
        this.#remove(oldest);
      } else {
        return;
      }
    }
  }

  /** Frees one slot: an idle entry if the sweep finds one, else the oldest. */
  #makeRoom(now: number): void {
    this.#sweep(now, SWEEP_STEPS_WHEN_FULL);
    if (this.#entries.size < this.#capacity) return;
    this.#remove(this.#list.newer);
    this.#evictions++;
  }

  /** Links an entry in as the newest. */
  #append(entry: Entry): void {
    const list = this.#list;
    entry.older = list.older;
    entry.newer = list;
    list.older.newer = entry;
    list.older = entry;
  }

  #remove(entry: Entry): void {
    _unlink(entry);
    this.#entries.delete(entry.key);
  }
}

/** Takes an entry out of the list it is linked in. */
function _unlink(entry: Entry): void {
  entry.older.newer = entry.newer;
  entry.newer.older = entry.older;
  entry.older = entry;
  entry.newer = entry;
}

function _check(name: string, value: number, ok: boolean, range: string): void {
  if (!ok) {
    throw new RangeError(
      `Cannot create SourceTable as "${name}" must be ${range}: current value is ${value}`,
    );
  }
}
