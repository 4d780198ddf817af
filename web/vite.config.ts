import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The API serves the built files at / (server/app.py); `npm run dev` proxies the API
// of a local `edgeplane serve` instead.
export default defineConfig({
  plugins: [react()],
  build: {
    target: "es2022",
    // scripts/check-size.mjs walks the manifest to weigh the first page load.
    manifest: true,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8000",
    },
  },
});
