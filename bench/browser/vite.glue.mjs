// What both Vite configs of the bench (vite.config.mjs for the page,
// vite.worker.config.mjs for the worker-mode page and its SharedWorker)
// need: where the package source and the wasm glue are (overridable, to
// bundle another build side by side: compare.mjs, worker-bench.mjs
// --site), and the plugin that gives npm/src our glue.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const here = dirname(fileURLToPath(import.meta.url));
export const build = join(here, ".build");
export const npmSrc = resolve(process.env.SYNCLINE_BENCH_NPM_SRC ?? join(here, "..", "..", "npm", "src"));
export const glueDir = resolve(process.env.SYNCLINE_BENCH_GLUE ?? join(build, "syncline-wasm"));

/** npm/src imports "./wasm/syncline_wasm.js" (page and worker): serve ours instead. */
export function synclineGlue() {
  return {
    name: "syncline-bench-glue",
    enforce: "pre",
    resolveId(source, importer) {
      if (source === "./wasm/syncline_wasm.js" && importer && resolve(dirname(importer)) === npmSrc) {
        return join(glueDir, "syncline_wasm.js");
      }
      return null;
    },
  };
}
