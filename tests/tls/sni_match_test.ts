import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { SniNameError, SniRoutes } from "../../src/tls/sni_match.ts";

const ROUTES = new SniRoutes([
  { names: ["api.example.com"], value: "api" },
  { names: ["*.example.com"], value: "wild" },
  { names: ["*.b.example.com"], value: "wild-b" },
  { names: ["Example.ORG."], value: "org" },
  { names: ["*.Shop.Example.NET."], value: "shop" },
]);

const TABLE: [serverName: string | null, values: string[]][] = [
  ["api.example.com", ["api"]],
  ["API.Example.COM", ["api"]],
  ["api.example.com.", ["api"]],
  ["www.example.com", ["wild"]],
  ["b.example.com", ["wild"]],
  ["a.b.example.com", ["wild-b"]],
  ["x.a.b.example.com", []],
  ["a.c.example.com", []],
  ["example.com", []],
  [".example.com", []],
  ["com", []],
  ["example.org", ["org"]],
  ["EXAMPLE.ORG.", ["org"]],
  ["www.example.org", []],
  ["eu.shop.example.net", ["shop"]],
  ["shop.example.net", []],
  ["", []],
  [".", []],
  [null, []],
];

Deno.test("SniRoutes.match follows the exact/wildcard table", () => {
  for (const [serverName, values] of TABLE) {
    assertEquals(ROUTES.match(serverName), values, `match(${JSON.stringify(serverName)})`);
  }
});

Deno.test("SniRoutes.match returns every value of a name, in order, each once", () => {
  const routes = new SniRoutes([
    { names: ["a.example.com", "A.EXAMPLE.COM", "a.example.com."], value: 1 },
    { names: ["*.example.com", "a.example.com"], value: 2 },
    { names: ["*.example.com"], value: 3 },
    { names: [], value: 4 },
  ]);
  assertEquals(routes.match("a.example.com"), [1, 2]);
  assertEquals(routes.match("z.example.com"), [2, 3]);
});

Deno.test("SniRoutes.match prefers an exact name to a wildcard that also matches", () => {
  const routes = new SniRoutes([
    { names: ["*.example.com"], value: "wild" },
    { names: ["www.example.com"], value: "www" },
  ]);
  assertEquals(routes.match("www.example.com"), ["www"]);
  assertEquals(routes.match("api.example.com"), ["wild"]);
});

Deno.test("SniRoutes.match hands out a new array each time", () => {
  const first = ROUTES.match("api.example.com");
  first.push("tampered");
  assertEquals(ROUTES.match("api.example.com"), ["api"]);
});

Deno.test("SniRoutes.match finds nothing for a non-ASCII name that lower-cases to ASCII", () => {
  const routes = new SniRoutes([{ names: ["k.example.com"], value: "k" }]);
  assertEquals(routes.match("\u212a.example.com"), []); // KELVIN SIGN, "k" once lower-cased
  assertEquals(routes.match("K.example.com"), ["k"]);
});

const BAD_NAMES = [
  "",
  ".",
  "*",
  "*.",
  "**.example.com",
  "*example.com",
  "a.*.example.com",
  "*.*.example.com",
  "a..example.com",
  "example.com..",
  ".example.com",
  "a_b.example.com",
  "a b.example.com",
  "-a.example.com",
  "a-.example.com",
  "b\u00fccher.example",
  "\u212a.example.com",
  `${"a".repeat(64)}.example.com`,
  `${"a".repeat(63)}.`.repeat(4) + "a",
  "192.0.2.1",
  "*.10.0.0.1",
  "2001:db8::1",
  "[::1]",
  "api.example.com\n",
];

Deno.test("SniRoutes refuses each bad name with a one-line SniNameError naming it", () => {
  for (const name of BAD_NAMES) {
    throws(
      () => new SniRoutes([{ names: ["ok.example.com", name], value: 1 }]),
      (error: unknown) => {
        ok(error instanceof SniNameError && error instanceof SyntaxError, `${name}: ${error}`);
        assertEquals([error.name, error.serverName], ["SniNameError", name]);
        ok(error.message.includes(JSON.stringify(name)), error.message);
        ok(!error.message.includes("\n"), error.message);
        return true;
      },
      `accepted ${JSON.stringify(name)}`,
    );
  }
});

Deno.test("SniRoutes accepts wildcards over any host name, single labels included", () => {
  const routes = new SniRoutes([
    { names: ["*.com", "localhost", "xn--bcher-kva.example", "*.a-b.example"], value: 1 },
  ]);
  assertEquals(
    ["example.com", "localhost", "xn--bcher-kva.example", "x.a-b.example"].map((n) =>
      routes.match(n)
    ),
    [[1], [1], [1], [1]],
  );
});
