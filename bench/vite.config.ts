/**
 * Vite config of the benchmark page (bench/page → bench/dist), built and served by bench/run.ts.
 */
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

export default defineConfig({
  root: fileURLToPath(new URL('./page', import.meta.url)),
  // rxdb pins its own Dexie; Dexie refuses to run beside another copy, so all use the project's.
  resolve: { dedupe: ['dexie'] },
  build: { outDir: fileURLToPath(new URL('./dist', import.meta.url)), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 8192 },
  preview: { host: '127.0.0.1' },
  logLevel: 'warn'
})
