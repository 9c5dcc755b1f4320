// Copies `syncline/svelte5` (svelte5/svelte5.svelte.js and its types) into
// dist/ as source: a `.svelte.js` module uses runes, so the app's Svelte
// compiler compiles it, not tsc.
import { copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const file of ["svelte5.svelte.js", "svelte5.svelte.d.ts"]) {
  copyFileSync(join(root, "svelte5", file), join(root, "dist", file));
}
console.log("syncline: copied svelte5.svelte.js (source, for the app's Svelte compiler) to dist/");
