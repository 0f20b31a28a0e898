/**
 * The proxies under test and their backends: config generation (pure) and
 * start-up on free loopback ports in a temporary directory.
 * @module
 */
import { startLb } from "../support/lb_process.ts";
import { processTree } from "./proc.ts";
import { freePort, sleep, waitListening } from "./net.ts";

/** The paths under test. `direct` is the client talking to the backend itself: the physical limit. */
export type PeerName = "direct" | "haproxy" | "nginx" | "lb";

/** Every peer, in table order. */
export const PEERS: readonly PeerName[] = ["direct", "haproxy", "nginx", "lb"];

/** A running proxy (or the direct path). Dispose to stop it. */
export interface Peer extends AsyncDisposable {
  readonly name: PeerName;
  /** Where clients connect. */
  readonly port: number;
  /** The proxy's processes now (empty for `direct`). */
  pids(): number[];
}

/**
 * What a proxy does per connection beyond forwarding bytes: off by default,
 * turned on for a variant row of the table (see `VARIANTS` in bench.ts). A new
 * feature is a field here, its line in each config generator and in
 * {@link lbPeerArgs}.
 */
export interface ProxyFeatures {
  /**
   * Send a PROXY protocol header to every backend: HAProxy `send-proxy` /
   * `send-proxy-v2`, lb `proxy=v1|v2`, nginx `proxy_protocol on` (always v1:
   * nginx has no v2 sender). The backends must expect it.
   */
  sendProxy?: "v1" | "v2";
}

/** Options shared by the config generators. */
export interface ProxyConfigOptions extends ProxyFeatures {
  /** Where the proxy listens on 127.0.0.1. */
  port: number;
  /** Backend ports on 127.0.0.1, balanced round robin. */
  backends: number[];
  /** Threads (HAProxy) or worker processes (nginx). */
  threads: number;
  /** Most connections at once. @default 9000 */
  maxConns?: number;
}

/** An HAProxy config: `mode tcp`, `nbthread` = threads, no logging, long idle timeouts. */
export function haproxyConfig(options: ProxyConfigOptions): string {
  const send = options.sendProxy
    ? { v1: " send-proxy", v2: " send-proxy-v2" }[options.sendProxy]
    : "";
  const servers = options.backends.map((port, i) => `  server b${i} 127.0.0.1:${port}${send}`);
  return [
    "global",
    `  nbthread ${options.threads}`,
    `  maxconn ${options.maxConns ?? 9000}`,
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 120s",
    "  timeout server 120s",
    "listen bench",
    `  bind 127.0.0.1:${options.port}`,
    "  balance roundrobin",
    ...servers,
    "",
  ].join("\n");
}

/** Options of the nginx configs: where its pid, logs and temp files go. */
export interface NginxOptions {
  /** A writable directory (nginx's prefix) for pid, error log and temp files. */
  dir: string;
  /** `worker_processes`. */
  workers: number;
  /** Most connections per worker. @default 9000 */
  maxConns?: number;
}

function nginxHead(options: NginxOptions, modules: string[]): string[] {
  return [
    ...modules.map((path) => `load_module ${path};`),
    "daemon off;",
    "master_process on;",
    `worker_processes ${options.workers};`,
    `worker_rlimit_nofile ${2 * (options.maxConns ?? 9000) + 100};`,
    `pid ${options.dir}/nginx.pid;`,
    `error_log ${options.dir}/error.log warn;`,
    `events { worker_connections ${options.maxConns ?? 9000}; }`,
  ];
}

/**
 * An nginx `stream` (TCP) proxy config; `modulePath` is ngx_stream_module.so.
 * `sendProxy` (either version) turns on `proxy_protocol`, which sends v1.
 */
export function nginxStreamConfig(
  options: ProxyConfigOptions & NginxOptions & { modulePath: string },
): string {
  return [
    ...nginxHead(options, [options.modulePath]),
    "stream {",
    "  upstream backends {",
    ...options.backends.map((port) => `    server 127.0.0.1:${port};`),
    "  }",
    "  server {",
    `    listen 127.0.0.1:${options.port};`,
    "    proxy_pass backends;",
    "    proxy_timeout 120s;",
    ...(options.sendProxy ? ["    proxy_protocol on;"] : []),
    "  }",
    "}",
    "",
  ].join("\n");
}

/**
 * The HTTP backends: nginx answering `200 ok` on each port, keep-alive without
 * a request cap; `proxyPorts` require a PROXY protocol header (v1 or v2) first.
 */
export function nginxHttpConfig(
  options: NginxOptions & { ports: number[]; proxyPorts?: number[] },
): string {
  return [
    ...nginxHead(options, []),
    "http {",
    "  access_log off;",
    "  keepalive_requests 10000000;",
    "  keepalive_timeout 120s;",
    "  client_header_timeout 120s;",
    `  client_body_temp_path ${options.dir}/body;`,
    `  proxy_temp_path ${options.dir}/proxy;`,
    `  fastcgi_temp_path ${options.dir}/fastcgi;`,
    `  uwsgi_temp_path ${options.dir}/uwsgi;`,
    `  scgi_temp_path ${options.dir}/scgi;`,
    "  server {",
    ...options.ports.map((port) => `    listen 127.0.0.1:${port};`),
    ...(options.proxyPorts ?? []).map((port) => `    listen 127.0.0.1:${port} proxy_protocol;`),
    '    location / { return 200 "ok"; }',
    "  }",
    "}",
    "",
  ].join("\n");
}

/** A started child process with a config file of its own. */
async function spawnDaemon(
  name: string,
  command: string,
  args: string[],
  port: number,
): Promise<{ child: Deno.ChildProcess; stop(): Promise<void> }> {
  const child = new Deno.Command(command, { args, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  const errors = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* exited */ }
      }, 5000);
      await status;
      clearTimeout(timer);
    }
    await errors;
  };
  try {
    await Promise.race([
      waitListening(port),
      status.then(async () => {
        throw new Error(`${name} exited at start: ${await errors}`);
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }
  return { child, stop };
}

/**
 * Starts nginx as the HTTP backend on `ports`, and on `proxyPorts` expecting a
 * PROXY protocol header (one process tree).
 */
export async function startHttpBackends(
  nginx: string,
  dir: string,
  ports: number[],
  workers: number,
  proxyPorts: number[] = [],
): Promise<AsyncDisposable & { pids(): number[] }> {
  const conf = `${dir}/backend.conf`;
  Deno.mkdirSync(`${dir}/backend`, { recursive: true });
  Deno.writeTextFileSync(
    conf,
    nginxHttpConfig({ dir: `${dir}/backend`, workers, ports, proxyPorts }),
  );
  const daemon = await spawnDaemon(
    "nginx (backend)",
    nginx,
    ["-p", `${dir}/backend`, "-c", conf],
    ports[0]!,
  );
  await Promise.all([...ports, ...proxyPorts].map((port) => waitListening(port)));
  return { pids: () => processTree(daemon.child.pid), [Symbol.asyncDispose]: daemon.stop };
}

/** Starts an iperf3 server (it serves one test at a time, then waits for the next). */
export async function startIperfServer(
  iperf3: string,
  port: number,
): Promise<AsyncDisposable> {
  const daemon = await spawnDaemon(
    "iperf3 -s",
    iperf3,
    ["-s", "-B", "127.0.0.1", "-p", `${port}`],
    port,
  );
  // The readiness probe above was a bare connect; give the server a moment to reset.
  await sleep(100);
  return { [Symbol.asyncDispose]: daemon.stop };
}

/** lb's arguments in front of `backends`, with `features` on every backend. */
export function lbPeerArgs(
  backends: readonly number[],
  features: ProxyFeatures = {},
  extra: readonly string[] = [],
): string[] {
  const options = features.sendProxy ? `,proxy=${features.sendProxy}` : "";
  return [
    "-f",
    "127.0.0.1:0",
    ...backends.flatMap((port) => ["-p", `127.0.0.1:${port}${options}`]),
    "--log",
    "off",
    // HAProxy and nginx run without health checks here; so does lb.
    "--health-interval",
    "0",
    ...extra,
  ];
}

/** What `startPeer` needs; features apply to the proxies, not to `direct`. */
export interface PeerOptions extends ProxyFeatures {
  /** Backend ports on 127.0.0.1 (the direct path uses the first). */
  backends: number[];
  /** A writable temporary directory for configs. */
  dir: string;
  /** Threads / workers for HAProxy and nginx. */
  threads: number;
  /** Tool paths (from `findTools`). */
  haproxy?: string;
  nginx?: string;
  nginxStream?: string;
  /** A compiled lb binary to run instead of `deno run main.ts`. */
  lbBinary?: string;
  /** Extra lb flags (e.g. `--workers 2`). */
  lbArgs?: string[];
  /** Extra `deno run` flags for lb. */
  lbDenoFlags?: string[];
}

/**
 * Starts `name` in front of `options.backends` on a free loopback port.
 *
 * @throws {Error} When the proxy exits or does not listen within 10 s, or
 *   for `direct` with a proxy feature on (there is no proxy to turn it on in).
 */
export async function startPeer(name: PeerName, options: PeerOptions): Promise<Peer> {
  const features: ProxyFeatures = options.sendProxy ? { sendProxy: options.sendProxy } : {};
  switch (name) {
    case "direct":
      if (Object.keys(features).length > 0) {
        throw new Error(`Cannot start the direct path with ${Object.keys(features).join(", ")}`);
      }
      return {
        name,
        port: options.backends[0]!,
        pids: () => [],
        [Symbol.asyncDispose]: async () => {},
      };
    case "haproxy": {
      const port = freePort();
      const conf = `${options.dir}/haproxy-${port}.cfg`;
      Deno.writeTextFileSync(
        conf,
        haproxyConfig({ port, backends: options.backends, threads: options.threads, ...features }),
      );
      const d = await spawnDaemon(
        "haproxy",
        options.haproxy ?? "haproxy",
        ["-db", "-f", conf],
        port,
      );
      return { name, port, pids: () => processTree(d.child.pid), [Symbol.asyncDispose]: d.stop };
    }
    case "nginx": {
      const port = freePort();
      const dir = `${options.dir}/stream-${port}`;
      Deno.mkdirSync(dir, { recursive: true });
      const conf = `${dir}/nginx.conf`;
      Deno.writeTextFileSync(
        conf,
        nginxStreamConfig({
          port,
          backends: options.backends,
          threads: options.threads,
          dir,
          workers: options.threads,
          modulePath: options.nginxStream ?? "/usr/lib/nginx/modules/ngx_stream_module.so",
          ...features,
        }),
      );
      const d = await spawnDaemon("nginx (stream)", options.nginx ?? "nginx", [
        "-p",
        dir,
        "-c",
        conf,
      ], port);
      return { name, port, pids: () => processTree(d.child.pid), [Symbol.asyncDispose]: d.stop };
    }
    case "lb": {
      const args = lbPeerArgs(options.backends, features, options.lbArgs);
      const lb = await startLb(args, {
        ...(options.lbBinary ? { binary: options.lbBinary } : {}),
        denoFlags: options.lbDenoFlags ?? ["--allow-net", "--allow-read"],
      });
      await waitListening(lb.port);
      return {
        name,
        port: lb.port,
        pids: () => processTree(lb.child.pid),
        [Symbol.asyncDispose]: () => lb[Symbol.asyncDispose](),
      };
    }
  }
}
