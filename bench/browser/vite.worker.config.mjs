// Bundles the worker-mode benchmark page (site-worker/, run by
// worker-bench.mjs) into .build/site-worker. Like vite.config.mjs,
// `syncline` is the TypeScript source in npm/src with this folder's wasm
// glue; in addition the package's SharedWorker script
// (`new SharedWorker(new URL("./worker.js", import.meta.url))` in
// npm/src/worker-client.ts → npm/src/worker.ts) is bundled as its own ES
// module chunk, with the same glue, so `createRepo({ worker: true })` really
// starts a worker (the page checks `repo.status.mode === "worker"`).
import { join, resolve } from "node:path";
import { defineConfig } from "vite";
import { build, glueDir, here, npmSrc, synclineGlue } from "./vite.glue.mjs";

const outDir = resolve(process.env.SYNCLINE_BENCH_WORKER_SITE ?? join(build, "site-worker"));

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
