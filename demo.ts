/**
 * The seed's "Trying it out", on one machine: three backends answering
 * `hello from server on port N`, lb in front of them, and a loop of requests
 * (a new connection each, like curl) with a per-backend count.
 *
 * Usage: deno task demo [--once] [--requests N] [--frontend PORT] [--backends P1,P2,P3]
 * @module
 */
import { parseArgs } from "node:util";
import { httpGet } from "./backends/http_get.ts";
import { startBackends } from "./backends/httpd.ts";
import { startLb } from "./support/lb_process.ts";

const USAGE =
  "usage: deno task demo [--once] [--requests N] [--frontend PORT] [--backends 8101,8102,8103]";

async function demo(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        once: { type: "boolean", default: false },
        requests: { type: "string", default: "10" },
        frontend: { type: "string", default: "8080" },
        backends: { type: "string", default: "8101,8102,8103" },
      },
    }));
  } catch (error) {
    console.error(`demo: ${error instanceof Error ? error.message : error}\n${USAGE}`);
    return 2;
  }
  const requests = Number(values.requests);
  const ports = values.backends.split(",").map(Number);
  if (!(requests > 0) || ports.some((p) => !Number.isInteger(p) || p < 0 || p > 65535)) {
    console.error(`demo: bad --requests or --backends\n${USAGE}`);
    return 2;
  }

  let servers;
  try {
    servers = startBackends(ports, (port) => `hello from server on port ${port}`);
  } catch (error) {
    console.error(`demo: cannot start backends on ${ports.join(", ")}: ${message(error)}`);
    return 1;
  }
  await using backends = servers;
  console.log(`backends: ${backends.ports.map((p) => `127.0.0.1:${p}`).join(", ")}`);
  const lbArgs = ["-f", values.frontend, ...backends.ports.flatMap((p) => ["-p", String(p)])];
  console.log(`lb ${lbArgs.join(" ")}`);
  // lb's own one-line reason (port in use, ...) is echoed above: no stack trace here.
  const started = await startLb(lbArgs, { echo: true }).catch(() => undefined);
  if (!started) {
    console.error("demo: lb did not start");
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

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

if (import.meta.main) Deno.exit(await demo(Deno.args));
