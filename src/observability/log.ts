/** Where log lines go; stderr by default. */
export type LogSink = (line: string) => void;

const encoder = new TextEncoder();

/** Writes a line to stderr, synchronously so lines never interleave. */
export const stderrSink: LogSink = (line) => {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // stderr closed: nothing left to tell.
  }
};

/**
 * Operational log: `<time> <component>: <message>` on stderr. `limited` drops
 * repeats of one key within a second (accept errors, dead backends under load)
 * and says how many it dropped.
 */
export class Logger {
  #sink: LogSink;
  #limits = new Map<string, { until: number; dropped: number }>();

  constructor(sink: LogSink = stderrSink) {
    this.#sink = sink;
  }

  /** Logs one line from `component`. */
  log(component: string, message: string): void {
    this.#sink(`${new Date().toISOString()} ${component}: ${message}`);
  }

  /** Logs at most one line per `key` per `intervalMs`, counting the rest. */
  limited(key: string, component: string, message: string, intervalMs = 1000): void {
    const now = Date.now();
    const state = this.#limits.get(key);
    if (state && now < state.until) {
      state.dropped++;
      return;
    }
    const dropped = state?.dropped ?? 0;
    this.#limits.set(key, { until: now + intervalMs, dropped: 0 });
    this.log(component, dropped > 0 ? `${message} (${dropped} similar suppressed)` : message);
  }
}
