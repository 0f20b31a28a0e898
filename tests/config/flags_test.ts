import { deepStrictEqual as assertEquals, ok, throws as assertThrows } from "node:assert/strict";
import { defaultConfig } from "../../src/config/config.ts";
import { ConfigError } from "../../src/common/errors.ts";
import { parseFlags, USAGE } from "../../src/config/flags.ts";
import { applyFlags } from "../../src/config/load.ts";
import { FieldNames, validateConfig } from "../../src/config/validate.ts";

function configFrom(args: string[]) {
  const names = new FieldNames();
  return validateConfig(applyFlags(defaultConfig(), parseFlags(args), names), names);
}

function rejects(args: string[], mentions: string) {
  assertThrows(
    () => configFrom(args),
    (error: unknown) => error instanceof ConfigError && error.message.includes(mentions),
    `${JSON.stringify(args)} should fail mentioning ${mentions}`,
  );
}

Deno.test("parseFlags takes the seed's flags: -f PORT, repeated -p PORT on 127.0.0.1", () => {
  const config = configFrom(["-f", "8080", "-p", "8101", "-p", "8102", "-p", "8103"]);
  assertEquals(config.frontends.length, 1);
  assertEquals(config.frontends[0]!.listen, { hostname: "::", port: 8080 });
  assertEquals(
    config.frontends[0]!.backends.map((b) => `${b.hostname}:${b.port}`),
    ["127.0.0.1:8101", "127.0.0.1:8102", "127.0.0.1:8103"],
  );
  assertEquals(config.frontends[0]!.balance, "roundrobin");
});

Deno.test("parseFlags defaults the frontend to all interfaces, port 8080", () => {
  assertEquals(configFrom(["-p", "8101"]).frontends[0]!.listen, {
    hostname: "::",
    port: 8080,
  });
});

Deno.test("parseFlags reads -f HOST:PORT, -p HOST:PORT and -p [IPv6]:PORT", () => {
  const config = configFrom(["-f", "127.0.0.1:9000", "-p", "10.0.0.5:80", "-p", "[::1]:9"]);
  assertEquals(config.frontends[0]!.listen, { hostname: "127.0.0.1", port: 9000 });
  assertEquals(config.frontends[0]!.backends.map((b) => [b.hostname, b.port]), [
    ["10.0.0.5", 80],
    ["::1", 9],
  ]);
});

Deno.test("parseFlags reads long forms, with a space or =", () => {
  const config = configFrom(["--frontend", "[::1]:0", "--backend", "8101", "--backend=8102"]);
  assertEquals(config.frontends[0]!.listen, { hostname: "::1", port: 0 });
  assertEquals(config.frontends[0]!.backends.map((b) => b.port), [8101, 8102]);
});

Deno.test("parseFlags reads per-backend weight, backup and maxconn", () => {
  const [a, b] = configFrom(["-p", "8101,weight=3,maxconn=5", "-p", "8102,backup"])
    .frontends[0]!.backends;
  assertEquals(a, { hostname: "127.0.0.1", port: 8101, weight: 3, backup: false, maxConn: 5 });
  assertEquals(b, { hostname: "127.0.0.1", port: 8102, weight: 1, backup: true, maxConn: 0 });
});

Deno.test("parseFlags reads durations and counts", () => {
  const config = configFrom([
    "-p",
    "8101",
    "--connect-timeout",
    "250ms",
    "--drain-timeout",
    "2s",
    "--retries",
    "0",
    "--max-conns",
    "100",
  ]);
  assertEquals(config.connectTimeout, 250);
  assertEquals(config.drainTimeout, 2000);
  assertEquals(config.retries, 0);
  assertEquals(config.maxConns, 100);
});

Deno.test("parseFlags sees --help and --version and their short forms", () => {
  ok(parseFlags(["--help"]).help);
  ok(parseFlags(["-h"]).help);
  ok(parseFlags(["--version"]).version);
  ok(parseFlags(["-v"]).version);
  ok(!parseFlags(["-p", "1"]).help);
});

Deno.test("parseFlags rejects unknown flags, naming them", () => {
  rejects(["--bogus", "-p", "8101"], "--bogus");
  rejects(["-x", "-p", "8101"], "-x");
});

Deno.test("parseFlags rejects a flag missing its value and stray arguments", () => {
  rejects(["-p"], "-p");
  rejects(["-p", "8101", "-f"], "-f");
  rejects(["-p", "8101", "extra"], "extra");
  rejects(["--help=yes"], "--help");
});

Deno.test("applyFlags names both spellings of -f and -p in errors", () => {
  rejects(["-f", "70000", "-p", "8101"], "-f/--frontend");
  rejects(["-p", "70000"], "-p/--backend");
});

Deno.test("applyFlags rejects bad ports, naming the flag", () => {
  rejects(["-f", "70000", "-p", "8101"], "--frontend");
  rejects(["-f", "http", "-p", "8101"], "--frontend");
  rejects(["-p", "70000"], "--backend");
  rejects(["-p", "abc"], "--backend");
  rejects(["-p", "0"], "--backend");
  rejects(["-p", "8101,weight=0"], "weight");
});

Deno.test("applyFlags rejects bad durations and counts, naming the flag", () => {
  rejects(["-p", "8101", "--connect-timeout", "soon"], "--connect-timeout");
  rejects(["-p", "8101", "--connect-timeout", "0"], "--connect-timeout");
  rejects(["-p", "8101", "--retries", "-1"], "--retries");
  rejects(["-p", "8101", "--balance", "random-ish"], "--balance");
  rejects(["-p", "8101", "--log", "xml"], "--log");
});

Deno.test("validateConfig without backends asks for -p and shows the usage", () => {
  assertThrows(
    () => configFrom(["-f", "8080"]),
    (error: unknown) => error instanceof ConfigError && error.showUsage && /-p/.test(error.message),
  );
});

Deno.test("applyFlags leaves its base config unchanged", () => {
  const base = defaultConfig();
  applyFlags(base, parseFlags(["-p", "8101", "--connect-timeout", "1s"]));
  assertEquals(base, defaultConfig());
});

Deno.test("USAGE shows every flag the parser knows, with examples", () => {
  for (const flag of ["-f, --frontend", "-p, --backend", "--help", "--version"]) {
    ok(USAGE.includes(flag), flag);
  }
  ok(USAGE.includes("lb -f 8080 -p 8101 -p 8102 -p 8103"));
});

Deno.test("validateConfig rejects a backend given twice (ids name it in metrics, admin and reload)", () => {
  rejects(["-p", "8101", "-p", "127.0.0.1:8101,weight=2"], "127.0.0.1:8101 is given twice");
  rejects(["-p", "[::1]:8101", "-p", "[::1]:8101"], "[::1]:8101 is given twice");
  assertEquals(configFrom(["-p", "8101", "-p", "[::1]:8101"]).frontends[0]!.backends.length, 2);
});

Deno.test("validateConfig refuses a non-loopback --admin without --admin-token-file or --admin-insecure", () => {
  const p = ["-p", "8101"];
  for (const admin of ["0", "9090", "127.0.0.2:9090", "[::1]:9090", "localhost:9090"]) {
    assertEquals(configFrom([...p, "--admin", admin]).adminTokenFile, null, admin);
  }
  for (const admin of ["0.0.0.0:9090", "[::]:9090", "10.0.0.5:9090", "lb.example:9090"]) {
    rejects([...p, "--admin", admin], `--admin ${admin} is not a loopback address`);
    const withToken = configFrom([...p, "--admin", admin, "--admin-token-file", "/etc/lb/t"]);
    assertEquals([withToken.adminTokenFile, withToken.adminInsecure], ["/etc/lb/t", false]);
    const insecure = configFrom([...p, "--admin", admin, "--admin-insecure"]);
    assertEquals([insecure.adminTokenFile, insecure.adminInsecure], [null, true]);
  }
  rejects([...p, "--admin-insecure=yes"], "--admin-insecure takes no value");
  rejects([...p, "--admin-token-file"], "--admin-token-file needs a value");
});

Deno.test("validateConfig refuses zero timeouts for a PROXY header and a ClientHello, and a bad tls-name", () => {
  rejects(["-p", "8101", "--accept-proxy", "--proxy-timeout", "0"], "--proxy-timeout");
  rejects(["-p", "8101,sni=a.example.com", "--sni-timeout", "0"], "--sni-timeout");
  rejects(["-p", "8101,tls,tls-name=bad..name"], "tls-name");
});

Deno.test("--workers auto is one accept loop per core, within the workers range", () => {
  const cores = Math.min(256, Math.max(1, navigator.hardwareConcurrency || 1));
  assertEquals(configFrom(["-p", "8101", "--workers", "auto"]).workers, cores);
  rejects(["-p", "8101", "--workers", "many"], "--workers");
});
