/**
 * The admin HTTP endpoint (`--admin`): `/metrics`, `/stats`, the stats page,
 * and operator actions (drain or enable a backend, reload).
 * @module
 */
import { formatAddr, type HostPort } from "../common/address.ts";
import type { Backend } from "../balancing/backend.ts";
import type { Logger } from "./log.ts";
import type { Metrics, MetricsSource } from "./metrics.ts";
import { describe } from "../common/errors.ts";
import { STATS_PAGE } from "./stats_page.ts";

/** Reloads the configuration: whether it applied, and one line for the operator. */
export type ReloadHook = () => Promise<{ ok: boolean; message: string }>;

/** Options for {@link Admin.start}. */
export interface AdminOptions {
  /** The running lb whose frontends and backends are shown and acted on. */
  lb: MetricsSource;
  metrics: Metrics;
  logger: Logger;
  /** Called by `POST /reload`; without it that route answers 501. */
  reload?: ReloadHook | undefined;
}

/** A running admin endpoint. Dispose (or `shutdown`) to close it. */
export class Admin implements AsyncDisposable {
  /** Where it listens, `host:port`. */
  readonly addr: string;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #logger: Logger;
  #closing: Promise<void> | undefined;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, logger: Logger) {
    this.#server = server;
    this.#logger = logger;
    this.addr = formatAddr(server.addr);
  }

  /**
   * Starts listening on `listen`; {@link Admin.announce} logs it.
   *
   * @throws What `Deno.serve` throws (address in use, permission denied).
   */
  static start(listen: HostPort, options: AdminOptions): Admin {
    const server = Deno.serve(
      { hostname: listen.hostname, port: listen.port, onListen: () => {} },
      (request) => handle(request, options),
    );
    return new Admin(server, options.logger);
  }

  /** Logs `admin: listening on HOST:PORT` (once every listener of lb is open). */
  announce(): void {
    this.#logger.log("admin", `listening on ${this.addr}`);
  }

  /** Stops listening and closes open admin connections. Idempotent. */
  async shutdown(): Promise<void> {
    this.#closing ??= this.#server.shutdown();
    await this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}

const ACTION = /^\/backends\/([^/]+)\/(drain|enable)$/;

/**
 * Answers one admin request.
 *
 * @returns The response; never throws.
 */
export async function handle(request: Request, options: AdminOptions): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  const method = request.method;
  try {
    if (path === "/" || path === "/metrics" || path === "/stats") {
      if (method !== "GET" && method !== "HEAD") return notAllowed("GET, HEAD");
      if (path === "/") {
        return new Response(STATS_PAGE, {
          headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
        });
      }
      if (path === "/metrics") {
        return new Response(options.metrics.prometheus(options.lb), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      }
      return json(200, options.metrics.snapshot(options.lb));
    }
    const action = ACTION.exec(path);
    if (action || path === "/reload") {
      if (method !== "POST") return notAllowed("POST");
      if (crossSite(request)) return json(403, { error: "cross-site request refused" });
      if (path === "/reload") return await reload(options);
      return backendAction(
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

function backendAction(
  id: string,
  action: "drain" | "enable",
  url: URL,
  options: AdminOptions,
): Response {
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
  const where = hits.map((h) => h.frontend).join(", ");
  options.logger.log(
    "admin",
    `backend ${id} ${action === "drain" ? "drained" : "enabled"} (${where})`,
  );
  return json(200, {
    id,
    drained: action === "drain",
    frontends: hits.map((h) => h.frontend),
  });
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

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body) + "\n", {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}
