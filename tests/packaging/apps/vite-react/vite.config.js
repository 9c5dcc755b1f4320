// The create-vite React template's config, unchanged: nothing for syncline.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
});
