// Bundles the benchmark page: `syncline` is the TypeScript source in npm/src
// (not npm/dist), with the wasm glue this folder's build wrote to
// .build/syncline-wasm — so nothing is written into npm/.
import { join, resolve } from "node:path";
import { defineConfig } from "vite";
import { build, glueDir, here, npmSrc, synclineGlue } from "./vite.glue.mjs";

// Overrides, to bundle another build side by side (see compare.mjs): the
// package source and the wasm-bindgen output (vite.glue.mjs), and where the
// site goes.
// SYNCLINE_BENCH_PAGE=editor bundles only site/editor.html (cm-keystroke.mjs)
// into .build/editor-site: it needs no aes-wasm build.
const editorOnly = process.env.SYNCLINE_BENCH_PAGE === "editor";
const outDir = resolve(process.env.SYNCLINE_BENCH_SITE ?? join(build, editorOnly ? "editor-site" : "site"));

export default defineConfig({
  root: join(here, "site"),
  base: "./",
  logLevel: "warn",
  plugins: [synclineGlue()],
  // The package's SharedWorker script (worker mode: cm-keystroke.mjs --worker), with the same glue.
  worker: { format: "es", plugins: () => [synclineGlue()] },
  resolve: {
    alias: [
      { find: /^syncline$/, replacement: join(npmSrc, "index.ts") },
      { find: /^syncline\/codemirror$/, replacement: join(npmSrc, "codemirror.ts") },
      { find: /^syncline-glue$/, replacement: join(glueDir, "syncline_wasm.js") },
      { find: /^aes-glue$/, replacement: join(build, "aes-wasm", "syncline_bench_aes.js") },
      { find: /^aes-glue-speed$/, replacement: join(build, "aes-wasm-speed", "syncline_bench_aes.js") },
    ],
    // One CodeMirror for the page and npm/src/codemirror.ts (two copies of @codemirror/state break extensions).
    dedupe: ["@codemirror/state", "@codemirror/view", "yjs"],
  },
  build: {
    outDir,
    rollupOptions: { input: editorOnly ? join(here, "site", "editor.html") : [join(here, "site", "index.html"), join(here, "site", "editor.html")] },
    emptyOutDir: true,
    target: "esnext",
    minify: false, // readable names in --profile output
    sourcemap: false,
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
