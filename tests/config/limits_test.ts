import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { ConfigError } from "../../src/common/errors.ts";
import { type IntLimit, LIMITS, readInt } from "../../src/config/limits.ts";

Deno.test("readInt accepts whole numbers in range only, digits from text and integers from JSON", () => {
  assertEquals(readInt("7", "--rise", { min: 1, max: 10 }), 7);
  assertEquals(readInt(0, "--retries", { min: 0, max: 10 }), 0);
  for (const bad of ["0", "11", "1.5", "", "x", "-3", 1.5, 11, true, null]) {
    assertThrows(() => readInt(bad, "--rise", { min: 1, max: 10 }), ConfigError, `accepted ${bad}`);
  }
});

Deno.test("LIMITS is the one table of ranges: lb.schema.json has the same bounds for every field", async () => {
  const schema = JSON.parse(
    await Deno.readTextFile(new URL("../../lb.schema.json", import.meta.url)),
  );
  const backend = schema.definitions.backend.anyOf[1].properties;
  const places: [string, { minimum?: number; maximum?: number }, IntLimit][] = [
    ["health.rise", schema.properties.health.properties.rise, LIMITS.rise],
    ["health.fall", schema.properties.health.properties.fall, LIMITS.fall],
    ["retries", schema.properties.retries, LIMITS.retries],
    ["maxConns", schema.properties.maxConns, LIMITS.maxConns],
    ["workers", schema.properties.workers.anyOf[0], LIMITS.workers],
    ["backends[].port", backend.port, LIMITS.port],
    ["backends[].weight", backend.weight, LIMITS.weight],
    ["backends[].maxConn", backend.maxConn, LIMITS.maxConn],
    ["maxConnsPerSource", schema.properties.maxConnsPerSource, LIMITS.maxConnsPerSource],
    ["sourceTableSize", schema.properties.sourceTableSize, LIMITS.sourceTableSize],
    ["sourceIPv6Prefix", schema.properties.sourceIPv6Prefix, LIMITS.sourceIPv6Prefix],
  ];
  for (const [field, property, limit] of places) {
    assertEquals([property.minimum, property.maximum], [limit.min, limit.max], field);
  }
  // A listen address may also be port 0 (any free port).
  const address = schema.definitions.address.anyOf[1];
  assertEquals([address.minimum, address.maximum], [0, LIMITS.port.max], "address port");
  // Every bound written in the schema is one of those above (or a duration's 0): none unchecked.
  const text = JSON.stringify(schema);
  assertEquals(text.match(/"minimum":/g)?.length, places.length + 2);
});
