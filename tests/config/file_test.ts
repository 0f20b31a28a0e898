import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok,
  throws,
} from "node:assert/strict";
import { loadConfigFile, parseConfigText, stripJsonComments } from "../../src/config/file.ts";
import { defaultConfig } from "../../src/config/config.ts";
import { STRATEGY_NAMES } from "../../src/balancing/strategies/mod.ts";
import { ConfigError } from "../../src/common/errors.ts";
import { parseFlags } from "../../src/config/flags.ts";
import { applyFlags } from "../../src/config/load.ts";
import { FieldNames, validateConfig } from "../../src/config/validate.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** The ConfigError `fn` throws; fails when it throws nothing or something else. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

async function configRejection(fn: () => Promise<unknown>): Promise<ConfigError> {
  try {
    await fn();
  } catch (error) {
    ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

Deno.test("stripJsonComments removes comments and trailing commas, keeping offsets", () => {
  const text = `{
  // line comment with "quotes" and /* a block */
  "a": "http://x/*not a comment*/", /* block
  over lines */ "b": [1, 2, 3,],
  "c": "quote \\" // still a string",
  "d": { "e": true, /* c */ },
}`;
  const plain = stripJsonComments(text);
  assertEquals(plain.length, text.length);
  assertEquals(plain.split("\n").length, text.split("\n").length);
  assertEquals(JSON.parse(plain), {
    a: "http://x/*not a comment*/",
    b: [1, 2, 3],
    c: 'quote " // still a string',
    d: { e: true },
  });
});

Deno.test("stripJsonComments leaves invalid JSON invalid", () => {
  throws(() => JSON.parse(stripJsonComments("[1,,]")));
  throws(() => JSON.parse(stripJsonComments("{,}")));
  assertEquals(JSON.parse(stripJsonComments('["a,]"]')), ["a,]"]);
});

Deno.test("parseConfigText reads every field", () => {
  const config = parseConfigText(
    `{
    "$schema": "../lb.schema.json",
    "frontends": [
      { "name": "web", "listen": "127.0.0.1:8080", "balance": "roundrobin",
        "backends": [
          { "host": "10.0.0.5", "port": 80, "weight": 3, "maxConn": 100 },
          { "port": 8102, "backup": true, "proxy": "v2" },
          "[::1]:8103,weight=2,proxy=v1",
        ],
        "acceptProxy": { "timeout": "2s", "from": ["10.0.0.0/8"] } },
      { "name": "api", "listen": 9000, "backends": ["8201"], "allow": ["192.0.2.0/24"],
        "deny": [] },
    ],
    "health": { "interval": "500ms", "timeout": 0.25, "rise": 1, "fall": 5 },
    "retries": 2,
    "connectTimeout": "3s",
    "idleTimeout": "5m",
    "maxConns": 1000,
    "drainTimeout": 10,
    "drainDelay": "2s",
    "resolvers": ["127.0.0.1:5353"],
    "resolveInterval": "30s",
    "admin": "9090",
    "adminTokenFile": "/etc/lb/admin.token",
    "adminInsecure": true,
    "log": "json",
    "logFile": "/var/log/lb.log",
    "workers": 2,
    "allow": ["10.0.0.0/8"],
    "deny": ["10.0.0.66"],
    "maxConnsPerSource": 10,
    "connRatePerSource": "20/1s",
    "sourceTableSize": 5000,
    "sourceIPv6Prefix": 56,
    "tlsCa": "/etc/lb/ca.pem",
  }`,
    "lb.json",
  );
  assertEquals(config, {
    frontends: [
      {
        name: "web",
        listen: { hostname: "127.0.0.1", port: 8080 },
        balance: "roundrobin",
        backends: [
          { hostname: "10.0.0.5", port: 80, weight: 3, backup: false, maxConn: 100 },
          { hostname: "127.0.0.1", port: 8102, weight: 1, backup: true, maxConn: 0, proxy: "v2" },
          { hostname: "::1", port: 8103, weight: 2, backup: false, maxConn: 0, proxy: "v1" },
        ],
        acceptProxy: { timeout: 2000, from: ["10.0.0.0/8"] },
      },
      {
        name: "api",
        listen: { hostname: "::", port: 9000 },
        balance: "roundrobin",
        backends: [{ hostname: "127.0.0.1", port: 8201, weight: 1, backup: false, maxConn: 0 }],
        allow: ["192.0.2.0/24"],
        deny: [],
      },
    ],
    health: { interval: 500, timeout: 250, rise: 1, fall: 5 },
    retries: 2,
    connectTimeout: 3000,
    idleTimeout: 300_000,
    maxConns: 1000,
    drainTimeout: 10_000,
    drainDelay: 2000,
    resolvers: [{ hostname: "127.0.0.1", port: 5353 }],
    resolveInterval: 30_000,
    admin: { hostname: "127.0.0.1", port: 9090 },
    adminTokenFile: "/etc/lb/admin.token",
    adminInsecure: true,
    log: "json",
    logFile: "/var/log/lb.log",
    workers: 2,
    allow: ["10.0.0.0/8"],
    deny: ["10.0.0.66"],
    maxConnsPerSource: 10,
    connRatePerSource: { count: 20, windowMs: 1000 },
    sourceTableSize: 5000,
    sourceIPv6Prefix: 56,
    sniTimeout: 5000,
    tlsCa: "/etc/lb/ca.pem",
  });
});

Deno.test("parseConfigText gives defaults for what the file leaves out", () => {
  assertEquals(parseConfigText("{}", "lb.json"), defaultConfig());
  const config = parseConfigText(`{"frontends": [{"listen": 8080}, {"listen": 8081}]}`, "x");
  assertEquals(config.frontends.map((f) => f.name), ["main", "frontend1"]);
  assertEquals(config.frontends[0]!.balance, "roundrobin");
  assertEquals(parseConfigText(`{"retries": null, "admin": null}`, "x").retries, null);
});

Deno.test("parseConfigText errors name the file and the exact field", () => {
  const cases: [string, string][] = [
    [
      `{"frontends": [{"listen": 1, "backends": [{"port": 1}, {"port": 2}, {"port": 70000}]}]}`,
      "lb.json: frontends[0].backends[2].port must be 1-65535: got 70000",
    ],
    [
      `{"frontends": [{"listen": 1, "backends": [{"port": "80"}]}]}`,
      'lb.json: frontends[0].backends[0].port must be a whole number 1-65535: got "80"',
    ],
    [
      `{"frontends": [{"listen": 1, "backends": [{"port": 80, "wieght": 2}]}]}`,
      "lb.json: frontends[0].backends[0].wieght is not a known field",
    ],
    [
      `{"frontends": [{"listen": 1, "backends": [{"port": 80, "weight": 0}]}]}`,
      "lb.json: frontends[0].backends[0].weight must be 1-1000: got 0",
    ],
    [
      `{"frontends": [{"listen": 1, "backends": [{"port": 80, "backup": "yes"}]}]}`,
      'lb.json: frontends[0].backends[0].backup must be true or false: got "yes"',
    ],
    [
      `{"frontends": [{"listen": 1, "backends": ["127.0.0.1:80,heavy"]}]}`,
      'lb.json: frontends[0].backends[0] 127.0.0.1:80: unknown option "heavy"',
    ],
    [
      `{"frontends": [{"listen": 1, "backends": [{"port": 80}, {"host": "127.0.0.1", "port": 80}]}]}`,
      'lb.json: frontends[0].backends[1] repeats frontends[0].backends[0]: "127.0.0.1:80"',
    ],
    [`{"frontends": [{"name": "a"}]}`, "lb.json: frontends[0].listen is required"],
    [
      `{"frontends": [{"listen": "nowhere"}]}`,
      "lb.json: frontends[0].listen must be PORT, HOST:PORT or [IPv6]:PORT",
    ],
    [
      `{"frontends": [{"listen": 1, "balance": "fastest"}]}`,
      "lb.json: frontends[0].balance must be one of roundrobin",
    ],
    [
      `{"frontends": [{"name": "a", "listen": 1}, {"name": "a", "listen": 2}]}`,
      'lb.json: frontends[1].name repeats frontends[0].name: "a"',
    ],
    [
      `{"frontends": [{"name": "a", "listen": 1}, {"name": "b", "listen": "[::]:1"}]}`,
      'lb.json: frontends[1].listen repeats frontends[0].listen: "[::]:1"',
    ],
    [`{"frontends": {}}`, "lb.json: frontends must be an array: got {}"],
    [
      `{"health": {"interval": "2 seconds"}}`,
      'lb.json: health.interval must be a duration like 500ms, 2s or 5m: got "2 seconds"',
    ],
    [`{"health": {"rise": 0}}`, "lb.json: health.rise must be 1-1000: got 0"],
    [`{"health": {"timeout": 0}}`, "lb.json: health.timeout must be more than 0"],
    [`{"drainTimeout": true}`, "lb.json: drainTimeout must be a duration"],
    [`{"drainTimeout": -1}`, "lb.json: drainTimeout must be a duration"],
    [`{"connectTimeout": 0}`, "lb.json: connectTimeout must be more than 0"],
    [`{"maxConns": 1.5}`, "lb.json: maxConns must be a whole number 0-10000000: got 1.5"],
    [`{"log": "xml"}`, 'lb.json: log must be "text", "json" or "off": got "xml"'],
    [`{"logFile": 3}`, "lb.json: logFile must be a non-empty string: got 3"],
    [`{"workers": 0}`, "lb.json: workers must be 1-256: got 0"],
    [`{"admin": "example.com:99999"}`, "lb.json: admin must be a port 1-65535"],
    [`{"retries": -1}`, "lb.json: retries must be 0-1000: got -1"],
    [`{"frontend": []}`, "lb.json: frontend is not a known field"],
    [`[]`, "lb.json: the top level must be an object: got []"],
    [`{"a": 1,\n  "b": }`, "lb.json: not valid JSON: "],
  ];
  for (const [text, message] of cases) {
    let error: ConfigError;
    try {
      error = configError(() =>
        validateConfig(parseConfigText(text, "lb.json"), new FieldNames("lb.json"))
      );
    } catch (cause) {
      throw new Error(`for ${text}: ${cause}`);
    }
    if (!error.message.startsWith(message)) {
      throw new Error(`for ${text}\n  expected: ${message}\n  got:      ${error.message}`);
    }
  }
});

Deno.test("parseConfigText syntax errors give the line", () => {
  const error = configError(() =>
    parseConfigText(`{\n  // fine\n  "log": "json",\n  "workers": ,\n}`, "lb.json")
  );
  assertMatch(error.message, /^lb\.json: not valid JSON: .*line 4/);
});

Deno.test("applyFlags on a file config: flags override the file", () => {
  const file = parseConfigText(
    `{
      "frontends": [
        { "name": "web", "listen": "0.0.0.0:80", "backends": [{ "port": 8101 }] },
        { "name": "api", "listen": "0.0.0.0:81", "backends": [{ "port": 8201 }] },
      ],
      "drainTimeout": "1m",
      "maxConns": 50,
      "log": "json",
    }`,
    "lb.json",
  );
  const config = validateConfig(applyFlags(
    file,
    parseFlags(["-f", "127.0.0.1:9000", "-p", "8102", "--drain-timeout", "5s", "--log", "off"]),
  ));
  assertEquals(config.frontends[0]!.listen, { hostname: "127.0.0.1", port: 9000 });
  assertEquals(config.frontends[0]!.backends.map((b) => b.port), [8102]);
  assertEquals(config.frontends[1]!.listen, { hostname: "0.0.0.0", port: 81 });
  assertEquals(config.drainTimeout, 5000);
  assertEquals(config.log, "off");
  assertEquals(config.maxConns, 50); // not given as a flag: the file's value stays
  assertEquals(file.drainTimeout, 60_000); // the base is not changed
});

Deno.test("loadConfigFile reads a file and names it when missing", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(path, `{ "workers": 3, /* c */ }`);
    assertEquals((await loadConfigFile(path)).workers, 3);
  } finally {
    await Deno.remove(path);
  }
  const error = await configRejection(() => loadConfigFile(path));
  assertEquals(error.message, `${path}: cannot read config file: no such file`);
});

async function lbCheck(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-net", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = (bytes: Uint8Array) =>
    new TextDecoder().decode(bytes).split("\n").filter((l) => l !== "");
  return { code: out.code, stdout: lines(out.stdout), stderr: lines(out.stderr) };
}

Deno.test("main --check --config validates without starting: one line, exit 0 or 2", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(
      path,
      `{ // check only: port 1 is never opened
        "frontends": [{ "name": "web", "listen": "127.0.0.1:1", "backends": [{ "port": 8101 }, { "port": 8102 }] }],
      }`,
    );
    const ok = await lbCheck(["--check", "--config", path]);
    assertEquals(ok, {
      code: 0,
      stdout: [`lb: ${path} is valid (1 frontend(s), 2 backend(s))`],
      stderr: [],
    });

    await Deno.writeTextFile(
      path,
      `{ "frontends": [{ "listen": 1, "backends": [{ "port": 1 }, { "port": 2 }, { "port": 70000 }] }] }`,
    );
    const bad = await lbCheck(["--check", "--config", path]);
    assertEquals(bad, {
      code: 2,
      stdout: [],
      stderr: [`lb: ${path}: frontends[0].backends[2].port must be 1-65535: got 70000`],
    });

    // A flag fixes what the file gets wrong: flags override.
    const fixed = await lbCheck(["--check", "--config", path, "-p", "8101"]);
    assertEquals(fixed.code, 2); // the file is checked on its own first
    const missing = await lbCheck(["--check", "--config", `${path}.missing`]);
    assertEquals(missing.code, 2);
    assertEquals(missing.stderr, [`lb: ${path}.missing: cannot read config file: no such file`]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("main --config without --check refuses an invalid file with exit 2", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(path, `{ "frontends": [{ "listen": 0, "balance": "fastest" }] }`);
    const bad = await lbCheck(["--config", path]);
    assertEquals(bad.code, 2);
    assertEquals(bad.stderr.length, 1);
    assertMatch(bad.stderr[0]!, /^lb: .*: frontends\[0\]\.balance must be one of /);
  } finally {
    await Deno.remove(path);
  }
});

// The JSON Schema for editors, checked against the examples and the loader.

type Schema = Record<string, unknown>;

const SCHEMA_PATH = new URL("../../lb.schema.json", import.meta.url);
const EXAMPLES = new URL("../../examples/", import.meta.url);
const ANNOTATIONS = ["$schema", "$id", "title", "description", "default", "definitions"];

/**
 * Validates `value` against the subset of JSON Schema (draft-07) that
 * lb.schema.json uses; throws on a keyword outside it, so the subset stays honest.
 *
 * @returns Problems found, each naming the path.
 */
function validate(root: Schema, schema: Schema, value: unknown, path = "$"): string[] {
  const problems: string[] = [];
  for (const [keyword, arg] of Object.entries(schema)) {
    if (ANNOTATIONS.includes(keyword)) continue;
    switch (keyword) {
      case "$ref": {
        const name = /^#\/definitions\/(.+)$/.exec(arg as string)?.[1];
        const target = (root.definitions as Record<string, Schema>)[name ?? ""];
        if (!target) throw new Error(`unresolved $ref ${arg}`);
        problems.push(...validate(root, target, value, path));
        break;
      }
      case "type": {
        const types = Array.isArray(arg) ? arg : [arg];
        if (!types.some((t) => typeOf(value, t))) {
          problems.push(`${path}: not ${types.join(" or ")}`);
        }
        break;
      }
      case "enum":
        if (!(arg as unknown[]).includes(value)) problems.push(`${path}: not one of ${arg}`);
        break;
      case "minimum":
        if (typeof value === "number" && value < (arg as number)) {
          problems.push(`${path}: below ${arg}`);
        }
        break;
      case "maximum":
        if (typeof value === "number" && value > (arg as number)) {
          problems.push(`${path}: above ${arg}`);
        }
        break;
      case "minLength":
        if (typeof value === "string" && value.length < (arg as number)) {
          problems.push(`${path}: shorter than ${arg}`);
        }
        break;
      case "pattern":
        if (typeof value === "string" && !new RegExp(arg as string, "u").test(value)) {
          problems.push(`${path}: does not match ${arg}`);
        }
        break;
      case "required":
        if (isObject(value)) {
          for (const key of arg as string[]) {
            if (!(key in value)) problems.push(`${path}: ${key} is required`);
          }
        }
        break;
      case "properties":
        if (isObject(value)) {
          for (const [key, sub] of Object.entries(arg as Record<string, Schema>)) {
            if (key in value) problems.push(...validate(root, sub, value[key], `${path}.${key}`));
          }
        }
        break;
      case "additionalProperties":
        if (arg !== false) throw new Error("only additionalProperties: false is supported");
        if (isObject(value)) {
          const known = Object.keys((schema.properties ?? {}) as Schema);
          for (const key of Object.keys(value)) {
            if (!known.includes(key)) problems.push(`${path}: unknown property ${key}`);
          }
        }
        break;
      case "items":
        if (Array.isArray(value)) {
          value.forEach((item, i) =>
            problems.push(...validate(root, arg as Schema, item, `${path}[${i}]`))
          );
        }
        break;
      case "anyOf": {
        const branches = (arg as Schema[]).map((sub) => validate(root, sub, value, path));
        if (branches.every((b) => b.length > 0)) {
          problems.push(`${path}: matches no alternative (${branches.flat().join("; ")})`);
        }
        break;
      }
      default:
        throw new Error(`schema keyword ${keyword} is outside the tested subset`);
    }
  }
  return problems;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function typeOf(value: unknown, type: unknown): boolean {
  switch (type) {
    case "object":
      return isObject(value);
    case "array":
      return Array.isArray(value);
    case "integer":
      return Number.isInteger(value);
    case "null":
      return value === null;
    case "string":
    case "number":
    case "boolean": {
      const actual: string = typeof value;
      return actual === type;
    }
    default:
      throw new Error(`schema type ${type} is outside the tested subset`);
  }
}

async function loadSchema(): Promise<Schema> {
  return JSON.parse(await Deno.readTextFile(SCHEMA_PATH));
}

Deno.test("lb.schema.json accepts every example, and every example loads", async () => {
  const schema = await loadSchema();
  const names = [...Deno.readDirSync(EXAMPLES)].map((e) => e.name).filter((n) =>
    n.endsWith(".json")
  );
  ok(names.includes("lb.json") && names.includes("multi.json"), names.join(", "));
  for (const name of names) {
    const url = new URL(name, EXAMPLES);
    const text = await Deno.readTextFile(url);
    assertEquals(validate(schema, schema, JSON.parse(stripJsonComments(text))), [], name);
    const config = await loadConfigFile(url.pathname);
    ok(config.frontends.length > 0, `${name} has frontends`);
    validateConfig(config); // complete on its own, without flags
  }
});

Deno.test("lb.schema.json and the loader agree on what is wrong", async () => {
  const schema = await loadSchema();
  const good = { listen: 8080, backends: [{ port: 8101 }] };
  const bad: unknown[] = [
    { frontends: [{ ...good, backends: [{ port: 70000 }] }] },
    { frontends: [{ ...good, backends: [{ port: 8101, wieght: 2 }] }] },
    { frontends: [{ ...good, backends: ["8101,heavy"] }] },
    { frontends: [{ ...good, balance: "fastest" }] },
    { frontends: [{ ...good, listen: "nowhere" }] },
    { frontends: [{ backends: [{ port: 8101 }] }] },
    { frontends: [{ ...good, name: "has space" }] },
    { health: { interval: "2 seconds" } },
    { health: { rise: 0 } },
    { drainTimeout: -1 },
    { log: "xml" },
    { workers: 0 },
    { maxConns: 1.5 },
    { retries: "all" },
    { admin: true },
    { adminTokenFile: "" },
    { adminInsecure: "yes" },
    { frontend: [] },
  ];
  for (const config of bad) {
    const text = JSON.stringify(config);
    ok(validate(schema, schema, config).length > 0, `schema accepts ${text}`);
    configError(() => validateConfig(parseConfigText(text, "lb.json")));
  }
  const fine: unknown[] = [
    {},
    { frontends: [good], retries: null, admin: null, logFile: null },
    { frontends: [{ ...good, backends: ["[::1]:8101,weight=2,backup", "8102,maxconn=5"] }] },
    { health: { interval: 0, timeout: "250ms" }, drainTimeout: 0.5, idleTimeout: "1h" },
    { admin: "[::1]:9090", retries: 0 },
    { admin: "0.0.0.0:9090", adminTokenFile: "/etc/lb/admin.token" },
    { admin: "[::]:9090", adminInsecure: true, adminTokenFile: null },
  ];
  for (const config of fine) {
    assertEquals(validate(schema, schema, config), [], JSON.stringify(config));
    validateConfig(parseConfigText(JSON.stringify(config), "lb.json"));
  }
});

Deno.test("lb.schema.json lists exactly the strategies lb knows", async () => {
  const schema = await loadSchema();
  const frontend = (schema.definitions as Record<string, Schema>).frontend!;
  const balance = (frontend.properties as Record<string, Schema>).balance!;
  assertEquals([...(balance.enum as string[])].sort(), [...STRATEGY_NAMES].sort());
});
