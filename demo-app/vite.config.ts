import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  // The package loads its .wasm with `new URL(..., import.meta.url)`;
  // pre-bundling would move the JS away from the .wasm in dev.
  optimizeDeps: { exclude: ["syncline"] },
  // The link to ../npm would otherwise bring the package's own dev copies of
  // React and CodeMirror (two Reacts break hooks, two @codemirror/state
  // break extensions); an installed package has none.
  resolve: { dedupe: ["react", "react-dom", "@codemirror/state", "@codemirror/view"] },
  // `syncline` is linked from ../npm: let the dev server read its .wasm there.
  server: { fs: { allow: [".", "../npm"] } },
  build: { target: "es2022" },
});
