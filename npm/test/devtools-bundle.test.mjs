// syncline/devtools is its own entry: nothing the main entries import
// statically (index, react, svelte, the worker) reaches its files, so an app
// that never mounts the devtools never loads them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");
const built = existsSync(join(dist, "devtools.js"));

/** Every file reachable from `entry` by static `import … from "./…"` / `export … from "./…"`. */
function staticGraph(entry) {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    const source = readFileSync(file, "utf8");
    for (const match of source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/gms)) visit(join(dirname(file), match[1]));
    for (const match of source.matchAll(/^\s*import\s+"(\.[^"]+)"/gm)) visit(join(dirname(file), match[1]));
  };
  visit(entry);
  return [...seen].map((f) => f.slice(dist.length + 1));
}

test("no main entry reaches the devtools' code; the devtools entry loads its panel lazily", { skip: !built && "needs `npm run build`" }, () => {
  for (const entry of ["index.js", "react.js", "svelte.js", "worker.js"]) {
    const graph = staticGraph(join(dist, entry));
    assert.ok(graph.length > 1 || entry !== "index.js", `${entry}'s graph was read`);
    const devtools = graph.filter((f) => f.startsWith("devtools"));
    assert.deepEqual(devtools, [], `${entry} imports ${devtools.join(", ")}`);
  }
  const entryGraph = staticGraph(join(dist, "devtools.js"));
  assert.ok(!entryGraph.includes("devtools/panel.js"), "the panel is not imported statically by the entry");
  assert.match(readFileSync(join(dist, "devtools.js"), "utf8"), /import\("\.\/devtools\/panel\.js"\)/);
  const pkg = JSON.parse(readFileSync(join(dist, "..", "package.json"), "utf8"));
  assert.equal(pkg.exports["./devtools"].default, "./dist/devtools.js");
});
