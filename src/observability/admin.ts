/**
 * The admin HTTP endpoint (`--admin`): `/metrics`, `/stats`, the stats page,
 * operator actions (drain or enable a backend, reload), and the probes
 * `/healthz` and `/ready`. With a token (`--admin-token-file`) every route
 * but the probes and the page at `/` (which holds no data and asks for the
 * token) needs `Authorization: Bearer TOKEN`; every route, probes
 * included, needs a `Host` that names the admin itself (see admin_guard.ts).
 * @module
 */
import { formatAddr, type HostPort } from "../common/address.ts";
import type { Backend } from "../balancing/backend.ts";
import type { Logger } from "./log.ts";
import type { Metrics, MetricsSource, Tally } from "./metrics.ts";
import { describe } from "../common/errors.ts";
import { STATS_PAGE } from "./stats_page.ts";
import { AdminHttp, type HttpLimits } from "./admin_http.ts";
import { allowedHosts, bearerMatches, isLoopback } from "./admin_guard.ts";

/** Reloads the configuration: whether it applied, and one line for the operator. */
export type ReloadHook = () => Promise<{ ok: boolean; message: string }>;

/**
 * Passes on a drain or enable of backend `id` applied in `frontends` (to the
 * other threads); the answer waits for a promise it returns.
 */
export type BackendActionHook = (
  id: string,
  action: "drain" | "enable",
  frontends: readonly string[],
) => void | Promise<void>;

/** Options for {@link Admin.start}. */
export interface AdminOptions {
  /** The running lb whose frontends and backends are shown and acted on. */
  lb: MetricsSource;
  metrics: Metrics;
  logger: Logger;
  /** Called by `POST /reload`; without it that route answers 501. */
  reload?: ReloadHook | undefined;
  /**
   * The token every request but `/healthz` and `/ready` must carry as
   * `Authorization: Bearer TOKEN` (see `readAdminToken`). @default none needed
   */
  token?: string | undefined;
  /** Bounds on each admin connection. @default HTTP_LIMITS */
  limits?: Partial<HttpLimits> | undefined;
  /**
   * The other threads' counters (`--workers`), fetched for each `/metrics`
   * and `/stats` and added to this thread's; when it throws, those answer
   * with this thread's alone. @default none: this thread counts alone
   */
  others?: (() => Promise<readonly Tally[]>) | undefined;
  /**
   * Called after a drain or enable applied here, with the backend's id and
   * the frontends it applied in, so that the other threads follow. The
   * answer waits for a promise it returns (a rejection answers 500).
   * @default none
   */
  onBackendAction?: BackendActionHook | undefined;
}

/** What {@link handle} knows of the connection a request came on. */
export interface RequestContext {
  /** The `Host` values to answer (lower case); others get 421. @default any */
  hosts?: readonly string[] | undefined;
  /** The client, for log lines. */
  remote?: string | undefined;
  /** Why `/ready` answers 503 whatever the backends (starting, draining). @default none */
  notReady?: string | undefined;
}

/** A running admin endpoint. Dispose (or `shutdown`) to close it. */
export class Admin implements AsyncDisposable {
  /** Where it listens, `host:port`. */
  readonly addr: string;
  #server: AdminHttp;
  #listen: HostPort;
  #options: AdminOptions;
  #notReady: string | undefined = "starting";

  private constructor(listen: HostPort, options: AdminOptions) {
    this.#listen = listen;
    this.#options = options;
    this.#server = AdminHttp.listen(
      listen,
      (request, info) =>
        handle(request, options, {
          hosts: allowedHosts(listen, info.localAddr),
          remote: formatAddr(info.remoteAddr),
          notReady: this.#notReady,
        }),
      options.limits,
    );
    this.addr = formatAddr(this.#server.addr);
  }

  /**
   * Starts listening on `listen`; {@link Admin.announce} logs it.
   *
   * @throws What `Deno.listen` throws (address in use, permission denied).
   */
  static start(listen: HostPort, options: AdminOptions): Admin {
    return new Admin(listen, options);
  }

  /**
   * Logs `admin: listening on HOST:PORT` (once every listener of lb is open),
   * with a warning line when anyone who can reach it may use it (not loopback,
   * no token: `--admin-insecure`). `/ready` may answer 200 from now on.
   */
  announce(): void {
    const { logger, token } = this.#options;
    logger.log("admin", `listening on ${this.addr}`);
    if (token === undefined && !isLoopback(this.#listen.hostname)) {
      logger.log(
        "admin",
        `warning: ${this.addr} is not loopback and has no --admin-token-file ` +
          `(--admin-insecure): anyone who can reach it can drain backends and reload lb`,
      );
    }
    this.#notReady = undefined;
  }

  /** From now on `/ready` answers 503 with `draining: REASON` (lb got its stop signal). */
  draining(reason: string): void {
    this.#notReady = `draining: ${reason}`;
  }

  /** Admin connections open now. */
  get connections(): number {
    return this.#server.connections;
  }

  /** Stops listening and closes open admin connections. Idempotent. */
  async shutdown(): Promise<void> {
    await this.#server.shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}

const ACTION = /^\/backends\/([^/]+)\/(drain|enable)$/;

/**
 * Answers one admin request: refuses a `Host` not in `context.hosts` (421),
 * answers the probes, refuses a request without the token (401; the stats
 * page itself, which holds no data, excepted), then routes.
 *
 * @param request The request.
 * @param options The admin's options: what it shows, its token.
 * @param context What is known of the connection.
 * @returns The response; never throws.
 */
export async function handle(
  request: Request,
  options: AdminOptions,
  context: RequestContext = {},
): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  const method = request.method;
  try {
    const host = request.headers.get("host");
    if (context.hosts && !context.hosts.includes(host?.toLowerCase() ?? "")) {
      const who = context.remote ?? "a client";
      options.logger.limited(
        "admin:host",
        "admin",
        `refused ${who}: Host ${JSON.stringify(host)} does not name this admin endpoint`,
      );
      return json(421, { error: "the Host header does not name this admin endpoint" });
    }
    if (path === "/healthz" || path === "/ready") {
      if (method !== "GET" && method !== "HEAD") return notAllowed("GET, HEAD");
      if (path === "/healthz") return text(200, "ok");
      const why = context.notReady ?? _notReady(options.lb);
      return why === undefined ? text(200, "ready") : text(503, why);
    }
    // The page itself holds no data: it asks for the token when /stats answers 401.
    if (
      options.token !== undefined && path !== "/" &&
      !await bearerMatches(request.headers.get("authorization"), options.token)
    ) {
      options.logger.limited(
        "admin:token",
        "admin",
        `refused ${context.remote ?? "a client"}: ${method} ${path} without the admin token`,
      );
      return json(401, { error: "this admin endpoint needs Authorization: Bearer TOKEN" }, {
        "www-authenticate": 'Bearer realm="lb admin"',
      });
    }
    if (path === "/" || path === "/metrics" || path === "/stats") {
      if (method !== "GET" && method !== "HEAD") return notAllowed("GET, HEAD");
      if (path === "/") {
        return new Response(STATS_PAGE, {
          headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
        });
      }
      const others = await _others(options);
      if (path === "/metrics") {
        return new Response(options.metrics.prometheus(options.lb, undefined, others), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      }
      return json(200, options.metrics.snapshot(options.lb, undefined, others));
    }
    const action = ACTION.exec(path);
    if (action || path === "/reload") {
      if (method !== "POST") return notAllowed("POST");
      if (crossSite(request)) return json(403, { error: "cross-site request refused" });
      if (path === "/reload") return await reload(options);
      return await backendAction(
        _decode(action![1]!),
        action![2] as "drain" | "enable",
        url,
        options,
      );
    }
    return json(404, { error: `no such resource: ${path}` });
  } catch (error) {
    options.logger.limited("admin:error", "admin", `${method} ${path}: ${describe(error)}`);
    return json(500, { error: describe(error) });
  }
}

async function backendAction(
  id: string,
  action: "drain" | "enable",
  url: URL,
  options: AdminOptions,
): Promise<Response> {
  const only = url.searchParams.get("frontend");
  const hits: { frontend: string; backend: Backend }[] = [];
  for (const frontend of options.lb.frontends) {
    if (only !== null && frontend.name !== only) continue;
    for (const backend of frontend.pool.backends) {
      if (backend.id === id) hits.push({ frontend: frontend.name, backend });
    }
  }
  if (hits.length === 0) return json(404, { error: `no such backend: ${id}` });
  for (const { backend } of hits) {
    if (action === "drain") backend.drain();
    else backend.enable();
  }
  const frontends = hits.map((h) => h.frontend);
  options.logger.log(
    "admin",
    `backend ${id} ${action === "drain" ? "drained" : "enabled"} (${frontends.join(", ")})`,
  );
  await options.onBackendAction?.(id, action, frontends);
  return json(200, { id, drained: action === "drain", frontends });
}

/** The other threads' tallies; none (this thread alone, logged) when they cannot be had. */
async function _others(options: AdminOptions): Promise<readonly Tally[]> {
  if (!options.others) return [];
  try {
    return await options.others();
  } catch (error) {
    options.logger.limited(
      "admin:others",
      "admin",
      `showing this thread's counters alone: cannot collect the other threads': ${describe(error)}`,
    );
    return [];
  }
}

async function reload(options: AdminOptions): Promise<Response> {
  if (!options.reload) {
    return json(501, { error: "reload is not available in this build" });
  }
  const result = await options.reload();
  return result.ok
    ? json(200, { reloaded: true, message: result.message })
    : json(400, { reloaded: false, error: result.message });
}

/**
 * Whether a browser sent this request from another site: an `Origin` whose
 * host is not the one addressed. A page elsewhere must not drain backends
 * through an operator's browser.
 */
function crossSite(request: Request): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) return false;
  try {
    return new URL(origin).host !== request.headers.get("host");
  } catch {
    return true;
  }
}

/** Why lb is not ready: a frontend with no backend up (all down or drained). */
function _notReady(lb: MetricsSource): string | undefined {
  if (lb.frontends.length === 0) return "no frontends";
  for (const frontend of lb.frontends) {
    if (!frontend.pool.backends.some((b) => b.healthy && !b.drained)) {
      return `frontend ${frontend.name} has no backend up`;
    }
  }
  return undefined;
}

/** Decodes a path segment; a malformed one becomes a name no backend has. */
function _decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function notAllowed(allow: string): Response {
  return json(405, { error: "method not allowed" }, { allow });
}

function text(status: number, line: string): Response {
  return new Response(line + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}
