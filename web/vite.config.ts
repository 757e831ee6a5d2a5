import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

// Run from the repository root: `vite build --config web/vite.config.ts`. The root is this folder
// whatever the working directory; the API serves web/dist at `/` (src/features/web).
const api = process.env.COLDBOARD_URL ?? 'http://127.0.0.1:3000'

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true
  },
  // `npx vite --config web/vite.config.ts` serves the page with hot reload against a running coldboard.
  server: {
    proxy: {
      '/api': api,
      '/metrics': api,
      '/socket.io': { target: api, ws: true }
    }
  }
})
