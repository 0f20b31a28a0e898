/**
 * The Worker entry of `--workers`: a worker serves like the main thread
 * (`serve`), without admin or workers of its own, and applies what the main
 * thread decides (`ControlMessage`s: health, drain and enable, reloads in
 * two phases, the names' addresses, per-source admissions). The main
 * thread's side is `supervisor.ts`. The compile task includes this module
 * (`WORKER_MODULE` in `support/compile.ts`).
 * @module
 */
import { describe } from "../common/errors.ts";
import { parseFlags } from "../config/flags.ts";
import type { Lb } from "../lb/lb.ts";
import type { Backend } from "../balancing/backend.ts";
import { serve } from "../lb/serve.ts";
import { Logger, stderrSink } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { AccessLog } from "../observability/access_log.ts";
import { SharedCounters } from "../common/shared_counters.ts";
import { followPools, reload, type ReloadPeers } from "../lb/reload.ts";
import type { RemoteSources, SourceVerdict } from "../connection/admission.ts";
import {
  backendsWithId,
  type ControlMessage,
  frontendsOf,
  type StartMessage,
  type WorkerReply,
} from "./messages.ts";

/** The worker's own lb, metrics and access log, once open: the main thread's messages apply to them. */
let _lb: Lb | undefined;
let _metrics: Metrics | undefined;
let _accessLog: AccessLog | undefined;
/** The reload the main thread asked for, planned here and waiting for its decision. */
let _deciding: { reload: number; decide: (apply: boolean) => void } | undefined;
/** A plan no decision reaches in this long is dropped (the main thread gave up on it). */
const DECIDE_TIMEOUT_MS = 30_000;
/** Backends the main thread counts a run of failures for: a successful connect is reported once. */
const _failing = new WeakSet<Backend>();
/** The main thread's word to stop: it may come before this worker's lb is open. */
let _stop!: (signal: Deno.Signal) => void;
const _stopped = new Promise<Deno.Signal>((resolve) => _stop = resolve);

/** A worker: serves like the main thread (see `serve`), without admin or workers of its own. */
async function _work(start: StartMessage): Promise<void> {
  const post = (reply: WorkerReply) => _scope.postMessage(reply);
  const logger = new Logger((line) => stderrSink(line.replace(" ", ` worker${start.index} `)));
  await serve(start.config, {
    flags: parseFlags(start.args),
    logger,
    main: false,
    counters: SharedCounters.attach(start.shared, start.index),
    remoteSources: _remoteSources,
    stop: _stopped,
    onReady: () => post({ type: "ready" }),
    forwardAccessLog: (lines) => post({ type: "log", lines }),
    followHealth: (backend, ok, why) => {
      // A success matters only while the main thread counts a run of failures.
      if (ok && !_failing.delete(backend)) return;
      const frontends = _lb ? frontendsOf(_lb, backend) : [];
      post(
        ok ? { type: "connect-ok", id: backend.id, frontends } : {
          type: "connect-failed",
          id: backend.id,
          frontends,
          why,
        },
      );
    },
    onLb: (lb, metrics, accessLog) => {
      _lb = lb;
      _metrics = metrics;
      _accessLog = accessLog;
    },
    onFailure: (message) => post({ type: "failed", message: `worker ${start.index}: ${message}` }),
  });
  post({ type: "stopped" });
  _scope.close();
}

/** Applies one of the main thread's messages to this worker's lb. */
function _control(lb: Lb, message: ControlMessage): void {
  const post = (reply: WorkerReply) => _scope.postMessage(reply);
  switch (message.type) {
    case "failing":
      for (const backend of backendsWithId(lb, message.id, message.frontends)) {
        if (message.failing) _failing.add(backend);
        else _failing.delete(backend);
      }
      break;
    case "health":
      for (const backend of backendsWithId(lb, message.id, message.frontends)) {
        backend.health.follow(message.up);
      }
      break;
    case "backend":
      for (const backend of backendsWithId(lb, message.id, message.frontends)) {
        if (message.action === "drain") backend.drain();
        else backend.enable();
      }
      if (message.request !== undefined) post({ type: "applied", request: message.request });
      break;
    case "tally":
      post({ type: "tally", request: message.request, tally: _metrics!.tally(lb) });
      break;
    case "prepare": {
      const reloadId = message.reload;
      // Plans here, says so, and applies or drops the plan as the main thread decides.
      const peers: ReloadPeers = {
        prepare: async () => {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const apply = await new Promise<boolean>((decide) => {
            _deciding = { reload: reloadId, decide };
            timer = setTimeout(() => decide(false), DECIDE_TIMEOUT_MS);
            post({ type: "prepared", reload: reloadId });
          });
          clearTimeout(timer);
          if (!apply) throw new Error("refused by another thread");
        },
        decide: () => {},
      };
      reload(lb, message.config, peers).then(() => post({ type: "sync" }), (error) => {
        // Planning failed before `prepare`: say why; after it, the main thread already knows.
        if (_deciding?.reload !== reloadId) {
          post({ type: "prepared", reload: reloadId, error: describe(error) });
        }
      }).finally(() => {
        if (_deciding?.reload === reloadId) _deciding = undefined;
      });
      break;
    }
    case "kill":
      void _kill(lb, message.request);
      break;
    case "pools":
      void followPools(lb, message.config).then(() => post({ type: "sync" }));
      break;
    case "decide":
      if (_deciding?.reload === message.reload) _deciding.decide(message.apply);
      break;
    case "admitted":
      _admissions.get(message.request)?.(message.verdict);
      _admissions.delete(message.request);
      break;
  }
}

/** Longest wait for this thread's connections to end after a `kill` (each records its line as it ends). */
const KILL_WAIT_MS = 500;

/**
 * A second stop signal, in the main thread: ends every connection here at
 * once (`killed`), sends their access-log lines, and says so.
 */
async function _kill(lb: Lb, request: number): Promise<void> {
  await lb.kill(KILL_WAIT_MS);
  await _accessLog?.flush();
  _scope.postMessage({ type: "killed", request });
}

/** Admissions asked of the main thread's per-source table, by request. */
const _admissions = new Map<number, (verdict: SourceVerdict) => void>();
let _admissionId = 0;

/** The per-source table, the main thread's (one table over every thread). */
const _remoteSources: RemoteSources = {
  admit(host) {
    const request = ++_admissionId;
    return new Promise((resolve) => {
      _admissions.set(request, resolve);
      _scope.postMessage({ type: "admit", request, host });
    });
  },
  release(key) {
    _scope.postMessage({ type: "release", key });
  },
};

/** The worker side of `self` (the main thread's types know only Window). */
const _scope = globalThis as unknown as {
  postMessage(message: WorkerReply): void;
  onmessage: ((event: MessageEvent<StartMessage | ControlMessage>) => void) | null;
  close(): void;
};

if ("WorkerGlobalScope" in globalThis) {
  // As in main.ts: a stray rejection belongs to one connection, not to the worker.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    stderrSink(`lb: internal error: ${describe(event.reason)}`);
  });
  _scope.onmessage = (event: MessageEvent<StartMessage | ControlMessage>) => {
    const message = event.data;
    if (!("type" in message)) return void _work(message);
    if (message.type === "stop") return _stop(message.signal);
    if (_lb) _control(_lb, message);
  };
}
