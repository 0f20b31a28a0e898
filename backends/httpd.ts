/**
 * The seed's Flask backend in Deno: answers every request with `MSG` from the
 * environment (default `Hello, World!`); `{port}` in it becomes the port. Once
 * every port is open it prints one line on stderr:
 * `httpd.ts: listening on 0.0.0.0:8101, 0.0.0.0:8102, 0.0.0.0:8103` (port 0
 * picks a free port, shown there).
 *
 * @example
 * ```sh
 * MSG="hello from server on port {port}" deno run --allow-net --allow-env backends/httpd.ts 8101 8102 8103
 * ```
 * @module
 */

/** A running set of backends; dispose to stop them. */
export interface Backends extends AsyncDisposable {
  ports: number[];
}

/**
 * Starts one HTTP server per port on `hostname`, each answering `message(port)`.
 * Port 0 picks a free port; the chosen ports are in `ports`.
 */
export function startBackends(
  ports: number[],
  message: (port: number) => string,
  hostname = "127.0.0.1",
): Backends {
  const servers = ports.map((requested) => {
    let port = requested;
    const server = Deno.serve(
      { port: requested, hostname, onListen: (addr) => port = addr.port },
      () => new Response(message(port)),
    );
    return { server, port: () => (server.addr as Deno.NetAddr).port };
  });
  return {
    ports: servers.map((s) => s.port()),
    async [Symbol.asyncDispose]() {
      await Promise.all(servers.map((s) => s.server.shutdown()));
    },
  };
}

if (import.meta.main) {
  const template = Deno.env.get("MSG") ?? "Hello, World!";
  const ports = Deno.args.map(Number);
  if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p < 0 || p > 65535)) {
    console.error("usage: httpd.ts PORT [PORT ...]");
    Deno.exit(2);
  }
  try {
    const { ports: bound } = startBackends(
      ports,
      (port) => template.replaceAll("{port}", String(port)),
      "0.0.0.0",
    );
    // On stderr, like lb's own "listening on" line; once every port is open.
    console.error(`httpd.ts: listening on ${bound.map((port) => `0.0.0.0:${port}`).join(", ")}`);
  } catch (error) {
    console.error(`httpd.ts: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
