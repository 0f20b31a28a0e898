/**
 * The seed's "Trying it out", on one machine: three backends answering
 * `hello from server on port N`, lb in front of them, and a loop of requests
 * (a new connection each, like curl) with a per-backend count.
 *
 * Usage: deno task demo [--once] [--requests N] [--frontend PORT] [--backends P1,P2,P3]
 * (`deno task demo --help` lists them.)
 * @module
 */
import { parseArgs } from "node:util";
import { httpGet } from "./backends/http_get.ts";
import { startBackends } from "./backends/httpd.ts";
import { startLb } from "./support/lb_process.ts";

const DEFAULT_FRONTEND = "8080";
const DEFAULT_BACKENDS = "8101,8102,8103";

/** What `deno task demo --help` prints. */
const USAGE = `Usage: deno task demo [options]

Starts three backends answering "hello from server on port N", lb in front of
them, sends requests through lb (a new connection each, like curl) and counts
the answers per backend; then lb keeps serving until Ctrl-C.

Options:
      --frontend [HOST:]PORT   where lb listens (default: ${DEFAULT_FRONTEND} on all interfaces;
                               0 picks a free port)
      --backends P1,P2,P3      backend ports on 127.0.0.1 (default: ${DEFAULT_BACKENDS};
                               0 picks a free port)
      --requests N             requests to send (default: 10)
      --once                   exit after the requests instead of serving until Ctrl-C
  -h, --help                   print this help`;

const SHORT_USAGE =
  "usage: deno task demo [--once] [--requests N] [--frontend PORT] [--backends 8101,8102,8103] [--help]";

async function demo(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        once: { type: "boolean", default: false },
        requests: { type: "string", default: "10" },
        frontend: { type: "string", default: DEFAULT_FRONTEND },
        backends: { type: "string", default: DEFAULT_BACKENDS },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    console.error(`demo: ${message(error)}\n${SHORT_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const requests = Number(values.requests);
  const ports = values.backends.split(",").map(Number);
  if (!Number.isInteger(requests) || requests < 1) {
    console.error(`demo: --requests must be a whole number above 0: got "${values.requests}"`);
    return 2;
  }
  if (ports.some((p) => !Number.isInteger(p) || p < 0 || p > 65535)) {
    console.error(
      `demo: --backends must be ports 0-65535 separated by commas: got "${values.backends}"`,
    );
    return 2;
  }

  let servers;
  try {
    servers = startBackends(ports, (port) => `hello from server on port ${port}`);
  } catch (error) {
    console.error(
      `demo: cannot start backends on ${ports.join(", ")}: ${message(error)}` +
        (error instanceof Deno.errors.AddrInUse
          ? ` (pick free ports with --backends P1,P2,P3, or 0,0,0 for any)`
          : ""),
    );
    return 1;
  }
  await using backends = servers;
  console.log(`backends: ${backends.ports.map((p) => `127.0.0.1:${p}`).join(", ")}`);
  const lbArgs = ["-f", values.frontend, ...backends.ports.flatMap((p) => ["-p", String(p)])];
  console.log(`lb ${lbArgs.join(" ")}`);
  // lb's own one-line reason (port in use, ...) is echoed above: no stack trace here.
  const started = await startLb(lbArgs, { echo: true }).catch(() => undefined);
  if (!started) {
    console.error(
      portTaken(values.frontend)
        ? `demo: lb did not start: ${values.frontend} is in use; ` +
          `pick another with --frontend PORT (e.g. deno task demo --frontend 9080, or 0 for any)`
        : "demo: lb did not start",
    );
    return 1;
  }
  await using lb = started;

  const counts = new Map<string, number>();
  for (let i = 1; i <= requests; i++) {
    const body = await httpGet(lb.port).catch((e) =>
      `error: ${e instanceof Error ? e.message : e}`
    );
    console.log(`${String(i).padStart(3)}: ${body}`);
    counts.set(body, (counts.get(body) ?? 0) + 1);
  }
  console.log("\nper backend:");
  for (const [body, n] of [...counts].sort()) console.log(`  ${String(n).padStart(4)}  ${body}`);

  if (!values.once) {
    console.log(
      `\nlb is serving on port ${lb.port}; try: curl http://127.0.0.1:${lb.port}  (Ctrl-C stops)`,
    );
    await new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", resolve));
  }
  return 0;
}

/**
 * Whether lb failed because the port of `frontend` (`PORT` or `HOST:PORT`) is
 * taken: binding it ourselves fails the same way.
 */
function portTaken(frontend: string): boolean {
  const parts = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(frontend);
  const port = Number(parts?.[2]);
  if (!parts || !(port > 0 && port <= 65535)) return false;
  try {
    Deno.listen({ hostname: parts[1] || "0.0.0.0", port }).close();
    return false;
  } catch (error) {
    return error instanceof Deno.errors.AddrInUse;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

if (import.meta.main) Deno.exit(await demo(Deno.args));
