/**
 * What the main thread and the workers of `--workers` say to each other
 * (`supervisor.ts` on the main thread's side, `worker.ts` in each worker),
 * and the config a worker runs.
 * @module
 */
import type { Backend } from "../balancing/backend.ts";
import type { Config } from "../config/config.ts";
import type { Lb } from "../lb/lb.ts";
import type { SourceVerdict } from "../connection/admission.ts";
import type { Tally } from "../observability/metrics.ts";

/**
 * The config a worker runs: `config` with each frontend that asks for port 0
 * on the port the main thread got for it (by frontend name).
 */
export function workerConfig(config: Config, bound: ReadonlyMap<string, number>): Config {
  const copy = structuredClone(config);
  for (const frontend of copy.frontends) {
    if (frontend.listen.port === 0) frontend.listen.port = bound.get(frontend.name) ?? 0;
  }
  return copy;
}

/** Each frontend's bound port, by name. */
export function boundPorts(lb: Lb): Map<string, number> {
  return new Map(lb.frontends.map((f) => [f.name, f.listener.addr.port]));
}

/** What the main thread sends a worker first. */
export interface StartMessage {
  index: number;
  /** 0 for the first start of this index, then one more per restart. */
  generation: number;
  args: string[];
  config: Config;
  /** The counters every thread shares (`SharedCounters.buffer`). */
  shared: SharedArrayBuffer;
}

/** What the main thread sends a worker after the start. */
export type ControlMessage =
  /** A backend's health changed (checked once, in the main thread). */
  | { type: "health"; id: string; frontends: readonly string[]; up: boolean }
  /** An operator drained or enabled a backend (admin); answer `applied` when `request` is set. */
  | {
    type: "backend";
    id: string;
    action: "drain" | "enable";
    frontends: readonly string[];
    request?: number;
  }
  /** Send your counters (`Tally`) for the admin's one view. */
  | { type: "tally"; request: number }
  /** Plan this config (reload, first phase); answer `prepared`. */
  | { type: "prepare"; reload: number; config: Config }
  /** Apply (true) or drop the plan of reload `reload` (second phase). */
  | { type: "decide"; reload: number; apply: boolean }
  /** The main thread's per-source table let a connection in, or not. */
  | { type: "admitted"; request: number; verdict: SourceVerdict }
  /** Names changed addresses: the pools of this config (names expanded) apply. */
  | { type: "pools"; config: Config }
  /**
   * A backend of `frontends` started (true) or ended a run of failed connects
   * or checks: while failing, report each successful connect to it once.
   */
  | { type: "failing"; id: string; frontends: readonly string[]; failing: boolean }
  /** The main thread received this stop signal: stop accepting and drain, as it does. */
  | { type: "stop"; signal: Deno.Signal }
  /** A second stop signal: end every connection now (`killed`), send their lines, answer `killed`. */
  | { type: "kill"; request: number };

/** What a worker sends back. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "failed"; message: string }
  | { type: "log"; lines: string }
  | { type: "connect-failed"; id: string; frontends: readonly string[]; why: string | undefined }
  /** A connect succeeded to a backend the main thread said was failing. */
  | { type: "connect-ok"; id: string; frontends: readonly string[] }
  | { type: "tally"; request: number; tally: Tally }
  | { type: "prepared"; reload: number; error?: string }
  | { type: "applied"; request: number }
  /** Every connection here ended `killed`, and their access-log lines were sent. */
  | { type: "killed"; request: number }
  /** May a connection from `host` come in (per-source limits, the main thread's table)? */
  | { type: "admit"; request: number; host: string }
  /** A connection `admitted` let in has ended. */
  | { type: "release"; key: string }
  /** The pools changed here (reload, DNS): send every backend's health and drain state. */
  | { type: "sync" }
  | { type: "stopped" };

/** Every backend with `id` in `lb`'s frontends (only those named in `frontends`, when given). */
export function backendsWithId(lb: Lb, id: string, frontends?: readonly string[]): Backend[] {
  return lb.frontends
    .filter((f) => !frontends || frontends.includes(f.name))
    .flatMap((f) => f.pool.backends.filter((b) => b.id === id));
}

/**
 * The frontends of `lb` whose pool holds `backend` itself. Two frontends
 * that list the same address have a backend each, with health of its own
 * (one may reach it over TLS, the other in the clear).
 */
export function frontendsOf(lb: Lb, backend: Backend): string[] {
  return lb.frontends.filter((f) => f.pool.backends.includes(backend)).map((f) => f.name);
}

/** The message that tells a worker `backend`'s health now (the backend of `frontends`). */
export function healthMessage(backend: Backend, frontends: readonly string[]): ControlMessage {
  return { type: "health", id: backend.id, frontends, up: backend.healthy };
}
