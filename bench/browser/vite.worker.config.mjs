// Bundles the worker-mode benchmark page (site-worker/, run by
// worker-bench.mjs) into .build/site-worker. Like vite.config.mjs,
// `syncline` is the TypeScript source in npm/src with this folder's wasm
// glue; in addition the package's SharedWorker script
// (`new SharedWorker(new URL("./worker.js", import.meta.url))` in
// npm/src/worker-client.ts → npm/src/worker.ts) is bundled as its own ES
// module chunk, with the same glue, so `createRepo({ worker: true })` really
// starts a worker (the page checks `repo.status.mode === "worker"`).
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");
const build = join(here, ".build");
const npmSrc = resolve(process.env.SYNCLINE_BENCH_NPM_SRC ?? join(repoRoot, "npm", "src"));
const glueDir = resolve(process.env.SYNCLINE_BENCH_GLUE ?? join(build, "syncline-wasm"));
const outDir = resolve(process.env.SYNCLINE_BENCH_WORKER_SITE ?? join(build, "site-worker"));

/** npm/src imports "./wasm/syncline_wasm.js" (page and worker): serve ours instead. */
function synclineGlue() {
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

export default defineConfig({
  root: join(here, "site-worker"),
  base: "./",
  logLevel: "warn",
  plugins: [synclineGlue()],
  worker: { format: "es", plugins: () => [synclineGlue()] },
  resolve: {
    alias: [
      { find: /^syncline$/, replacement: join(npmSrc, "index.ts") },
      { find: /^syncline-glue$/, replacement: join(glueDir, "syncline_wasm.js") },
    ],
  },
  build: {
    outDir,
    emptyOutDir: true,
    target: "esnext",
    minify: false,
    sourcemap: false,
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
