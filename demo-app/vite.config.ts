import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  // The package loads its .wasm with `new URL(..., import.meta.url)`;
  // pre-bundling would move the JS away from the .wasm in dev.
  optimizeDeps: { exclude: ["syncline"] },
  // `syncline` is linked from ../npm: let the dev server read its .wasm there.
  server: { fs: { allow: [".", "../npm"] } },
  build: { target: "es2022" },
});
