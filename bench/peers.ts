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
 * Who gets in, the same in every proxy: allow/deny lists and per-source
 * limits. HAProxy: `src` ACLs and a stick-table of `conn_cur`/`conn_rate`;
 * nginx stream: `allow`/`deny` and `limit_conn` (nginx stream has no
 * per-source connection-rate limit); lb: `--allow`, `--deny`,
 * `--max-conns-per-source`, `--conn-rate-per-source`.
 */
export interface SourceGate {
  /** CIDRs let in; with any, everyone else is refused. */
  allow: readonly string[];
  /** CIDRs refused; wins over `allow`. */
  deny: readonly string[];
  /** Most open connections from one client address. */
  maxConnsPerSource: number;
  /** Most new connections from one client address per second. */
  connRatePerSec: number;
}

/**
 * What a proxy does per connection beyond forwarding bytes: off by default,
 * turned on for a variant row of the table (see `VARIANTS` in bench.ts). A new
 * feature is a field here, its line in each config generator and in
 * {@link lbPeerArgs}, and its key in {@link FEATURE_KEYS}.
 */
export interface ProxyFeatures {
  /**
   * Send a PROXY protocol header to every backend: HAProxy `send-proxy` /
   * `send-proxy-v2`, lb `proxy=v1|v2`, nginx `proxy_protocol on` (always v1:
   * nginx has no v2 sender). The backends must expect it.
   */
  sendProxy?: "v1" | "v2";
  /** Check every client against allow/deny lists and per-source limits. */
  gate?: SourceGate;
  /**
   * Route by the server name of the TLS ClientHello, without decrypting, to
   * the backends (TLS servers) that serve this name: HAProxy `req.ssl_sni`,
   * nginx `ssl_preread` + `map`, lb `sni=NAME` on every backend.
   */
  sniRoute?: string;
  /**
   * Terminate TLS with the bench's test certificate ({@link TlsFiles}) and
   * proxy the plaintext: HAProxy `bind ... ssl crt`, nginx stream
   * `listen ... ssl`, lb `--tls-cert/--tls-key`.
   */
  terminateTls?: boolean;
}

/** Every field of {@link ProxyFeatures}. */
export const FEATURE_KEYS = [
  "sendProxy",
  "gate",
  "sniRoute",
  "terminateTls",
] as const satisfies readonly (keyof ProxyFeatures)[];

/** The features set in `options` (a feature left undefined or false is off). */
export function featuresOf(options: ProxyFeatures): ProxyFeatures {
  const out: Record<string, unknown> = {};
  for (const key of FEATURE_KEYS) {
    if (options[key] !== undefined && options[key] !== false) out[key] = options[key];
  }
  return out as ProxyFeatures;
}

/**
 * The bench's test certificate, made with openssl at bench time (bench/tls.ts):
 * PEM files of the certificate, its key, and both in one (HAProxy's `crt`).
 */
export interface TlsFiles {
  cert: string;
  key: string;
  /** The certificate followed by the key. */
  pem: string;
}

/** The largest `limit_conn` nginx accepts. */
export const NGINX_MAX_LIMIT_CONN = 65535;

/** TLS as every TLS server of the bench speaks it: 1.2 and 1.3 (nginx 1.22 has no 1.3 by default). */
const NGINX_TLS_PROTOCOLS = "ssl_protocols TLSv1.2 TLSv1.3;";

function needTls(options: { terminateTls?: boolean; tls?: TlsFiles }): TlsFiles {
  if (!options.tls) throw new Error("Cannot speak TLS as no certificate (tls) was given");
  return options.tls;
}

/** Options shared by the config generators. */
export interface ProxyConfigOptions extends ProxyFeatures {
  /** The certificate when `terminateTls` is on. */
  tls?: TlsFiles;
  /** Where the proxy listens on 127.0.0.1. */
  port: number;
  /** Backend ports on 127.0.0.1, balanced round robin. */
  backends: number[];
  /** Threads (HAProxy) or worker processes (nginx). */
  threads: number;
  /** Most connections at once. @default 9000 */
  maxConns?: number;
}

/** HAProxy's lines for `gate`: `src` ACLs, then a stick-table tracking each source. */
function haproxyGate(gate: SourceGate): string[] {
  return [
    "  stick-table type ip size 100k expire 30s store conn_cur,conn_rate(1s)",
    ...(gate.deny.length > 0
      ? [`  tcp-request connection reject if { src ${gate.deny.join(" ")} }`]
      : []),
    ...(gate.allow.length > 0
      ? [`  tcp-request connection reject if !{ src ${gate.allow.join(" ")} }`]
      : []),
    "  tcp-request connection track-sc0 src",
    `  tcp-request connection reject if { sc0_conn_cur gt ${gate.maxConnsPerSource} }`,
    `  tcp-request connection reject if { sc0_conn_rate gt ${gate.connRatePerSec} }`,
  ];
}

/**
 * An HAProxy config: `mode tcp`, `nbthread` = threads, no logging, long idle
 * timeouts. With `sniRoute`, the `listen` section waits for the ClientHello
 * and sends the name's connections to backend `sni` (the others are closed).
 */
export function haproxyConfig(options: ProxyConfigOptions): string {
  const send = options.sendProxy
    ? { v1: " send-proxy", v2: " send-proxy-v2" }[options.sendProxy]
    : "";
  const servers = options.backends.map((port, i) => `  server b${i} 127.0.0.1:${port}${send}`);
  const ssl = options.terminateTls ? ` ssl crt ${needTls(options).pem}` : "";
  const sni = options.sniRoute;
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
    `  bind 127.0.0.1:${options.port}${ssl}`,
    ...(options.gate ? haproxyGate(options.gate) : []),
    ...(sni === undefined ? ["  balance roundrobin", ...servers] : [
      "  tcp-request inspect-delay 5s",
      "  tcp-request content accept if { req_ssl_hello_type 1 }",
      `  use_backend sni if { req.ssl_sni -i ${sni} }`,
      "backend sni",
      "  balance roundrobin",
      ...servers,
    ]),
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
  const { gate, sniRoute } = options;
  const tls = options.terminateTls ? needTls(options) : undefined;
  return [
    ...nginxHead(options, [options.modulePath]),
    "stream {",
    "  upstream backends {",
    ...options.backends.map((port) => `    server 127.0.0.1:${port};`),
    "  }",
    ...(gate ? ["  limit_conn_zone $binary_remote_addr zone=per_source:10m;"] : []),
    // No default: a name nothing serves maps to "", which nginx refuses (closes).
    ...(sniRoute === undefined ? [] : [
      "  map $ssl_preread_server_name $sni_upstream {",
      `    ${sniRoute} backends;`,
      "  }",
    ]),
    "  server {",
    `    listen 127.0.0.1:${options.port}${tls ? " ssl" : ""};`,
    ...(tls
      ? [
        `    ssl_certificate ${tls.cert};`,
        `    ssl_certificate_key ${tls.key};`,
        `    ${NGINX_TLS_PROTOCOLS}`,
      ]
      : []),
    // First match wins: deny, then allow, then everyone else when an allow list is given.
    ...(gate
      ? [
        ...gate.deny.map((cidr) => `    deny ${cidr};`),
        ...gate.allow.map((cidr) => `    allow ${cidr};`),
        ...(gate.allow.length > 0 ? ["    deny all;"] : []),
        // nginx takes at most 65535 here ("connection limit must be less 65536").
        `    limit_conn per_source ${Math.min(gate.maxConnsPerSource, NGINX_MAX_LIMIT_CONN)};`,
      ]
      : []),
    ...(sniRoute === undefined
      ? ["    proxy_pass backends;"]
      : ["    ssl_preread on;", "    proxy_pass $sni_upstream;"]),
    "    proxy_timeout 120s;",
    ...(options.sendProxy ? ["    proxy_protocol on;"] : []),
    "  }",
    "}",
    "",
  ].join("\n");
}

/**
 * The HTTP backends: nginx answering `200 ok` on each port, keep-alive without
 * a request cap; `proxyPorts` require a PROXY protocol header (v1 or v2)
 * first; `tlsPorts` speak HTTPS with `tls` (TLS 1.2/1.3, no session cache nor
 * tickets: every new connection is a full handshake).
 */
export function nginxHttpConfig(
  options: NginxOptions & {
    ports: number[];
    proxyPorts?: number[];
    tlsPorts?: number[];
    tls?: TlsFiles;
  },
): string {
  const tlsPorts = options.tlsPorts ?? [];
  const tls = tlsPorts.length > 0 ? needTls(options) : undefined;
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
    ...tlsPorts.map((port) => `    listen 127.0.0.1:${port} ssl;`),
    ...(tls
      ? [
        `    ssl_certificate ${tls.cert};`,
        `    ssl_certificate_key ${tls.key};`,
        `    ${NGINX_TLS_PROTOCOLS}`,
        "    ssl_session_cache off;",
        "    ssl_session_tickets off;",
      ]
      : []),
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
 * Starts nginx as the HTTP backend on `ports`, on `proxyPorts` expecting a
 * PROXY protocol header, and on `tls.ports` speaking HTTPS (one process tree).
 */
export async function startHttpBackends(
  nginx: string,
  dir: string,
  ports: number[],
  workers: number,
  proxyPorts: number[] = [],
  tls?: { ports: number[]; files: TlsFiles },
): Promise<AsyncDisposable & { pids(): number[] }> {
  const conf = `${dir}/backend.conf`;
  Deno.mkdirSync(`${dir}/backend`, { recursive: true });
  Deno.writeTextFileSync(
    conf,
    nginxHttpConfig({
      dir: `${dir}/backend`,
      workers,
      ports,
      proxyPorts,
      ...(tls ? { tlsPorts: tls.ports, tls: tls.files } : {}),
    }),
  );
  const daemon = await spawnDaemon(
    "nginx (backend)",
    nginx,
    ["-p", `${dir}/backend`, "-c", conf],
    ports[0]!,
  );
  await Promise.all(
    [...ports, ...proxyPorts, ...(tls?.ports ?? [])].map((port) => waitListening(port)),
  );
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

/** lb's flags for `gate`. */
function lbGate(gate: SourceGate): string[] {
  return [
    ...gate.allow.flatMap((cidr) => ["--allow", cidr]),
    ...gate.deny.flatMap((cidr) => ["--deny", cidr]),
    "--max-conns-per-source",
    `${gate.maxConnsPerSource}`,
    "--conn-rate-per-source",
    `${gate.connRatePerSec}/1s`,
  ];
}

/**
 * lb's arguments in front of `backends`, with `features` on every backend
 * (and `tls`, the certificate, when `terminateTls` is on).
 */
export function lbPeerArgs(
  backends: readonly number[],
  features: ProxyFeatures & { tls?: TlsFiles } = {},
  extra: readonly string[] = [],
): string[] {
  const options = (features.sendProxy ? `,proxy=${features.sendProxy}` : "") +
    (features.sniRoute === undefined ? "" : `,sni=${features.sniRoute}`);
  const tls = features.terminateTls ? needTls(features) : undefined;
  return [
    "-f",
    "127.0.0.1:0",
    ...backends.flatMap((port) => ["-p", `127.0.0.1:${port}${options}`]),
    ...(tls ? ["--tls-cert", tls.cert, "--tls-key", tls.key] : []),
    ...(features.gate ? lbGate(features.gate) : []),
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
  /** The test certificate, for `terminateTls`. */
  tls?: TlsFiles;
}

/**
 * Starts `name` in front of `options.backends` on a free loopback port.
 *
 * @throws {Error} When the proxy exits or does not listen within 10 s, or
 *   for `direct` with a proxy feature on (there is no proxy to turn it on in).
 */
export async function startPeer(name: PeerName, options: PeerOptions): Promise<Peer> {
  const features = featuresOf(options);
  const tls = options.tls ? { tls: options.tls } : {};
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
        haproxyConfig({
          port,
          backends: options.backends,
          threads: options.threads,
          ...features,
          ...tls,
        }),
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
          ...tls,
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
      const args = lbPeerArgs(options.backends, { ...features, ...tls }, options.lbArgs);
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
