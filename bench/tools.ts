/**
 * Which external tools the bench needs, and the Debian packages that hold them.
 * The bench installs nothing: it names what is missing and skips.
 * @module
 */

/** Each tool the bench runs, with the Debian package that provides it. */
export const TOOLS = {
  haproxy: { path: "haproxy", package: "haproxy" },
  nginx: { path: "nginx", package: "nginx-light" },
  nginxStream: {
    path: "/usr/lib/nginx/modules/ngx_stream_module.so",
    package: "libnginx-mod-stream",
  },
  wrk: { path: "wrk", package: "wrk" },
  iperf3: { path: "iperf3", package: "iperf3" },
  openssl: { path: "openssl", package: "openssl" },
} as const;

/** A tool's short name. */
export type Tool = keyof typeof TOOLS;

const SEARCH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** The full path of `name` (a command on PATH or in the sbin dirs, or an absolute path), if present. */
export function locate(name: string): string | undefined {
  const dirs = name.startsWith("/")
    ? [""]
    : [...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean), ...SEARCH];
  for (const dir of dirs) {
    const path = dir ? `${dir}/${name}` : name;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** Every tool found, by name, and a list of those missing. */
export function findTools(): { found: Partial<Record<Tool, string>>; missing: Tool[] } {
  const found: Partial<Record<Tool, string>> = {};
  const missing: Tool[] = [];
  for (const tool of Object.keys(TOOLS) as Tool[]) {
    const path = locate(TOOLS[tool].path);
    if (path) found[tool] = path;
    else missing.push(tool);
  }
  return { found, missing };
}

/** The `apt-get install` line for `missing`, or undefined when nothing is missing. */
export function installHint(missing: Tool[]): string | undefined {
  if (missing.length === 0) return undefined;
  const packages = [...new Set(missing.map((tool) => TOOLS[tool].package))];
  return `bench: missing ${missing.join(", ")}; install with: apt-get install ${
    packages.join(" ")
  }`;
}
