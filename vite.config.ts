/**
 * Vite config of the demo (demo/ → demo-dist/). The demo learns its relays from
 * `/kitedb-config.json`, served by this config's middleware from the `KITEDB_RELAYS` environment
 * variable (space-separated multiaddrs) set by `npm start` (scripts/start.js), and, when the demo
 * is served to the LAN, the base URL its share links and QR codes use (`KITEDB_SHARE_BASE`).
 * Over HTTPS (`npm start -- --https`) it also serves the local certificate authority a phone
 * installs to trust the demo, at `/kitedb-ca.crt` (`KITEDB_TLS_CA`, a PEM file).
 */
import { readFileSync } from 'node:fs'
import { defineConfig, type Plugin } from 'vite'

function kitedbConfig (): Plugin {
  const serve = (req: { url?: string }, res: { setHeader: (k: string, v: string) => void, end: (s: string | Buffer) => void }, next: () => void): void => {
    const path = req.url?.split('?')[0]
    if (path === '/kitedb-ca.crt' && process.env.KITEDB_TLS_CA !== undefined) {
      res.setHeader('content-type', 'application/x-x509-ca-cert')
      res.setHeader('content-disposition', 'attachment; filename="kitedb-demo-ca.crt"')
      res.end(readFileSync(process.env.KITEDB_TLS_CA))
      return
    }
    if (path !== '/kitedb-config.json') { next(); return }
    const relays = (process.env.KITEDB_RELAYS ?? '').split(/\s+/).filter(Boolean)
    const shareBase = process.env.KITEDB_SHARE_BASE
    res.setHeader('content-type', 'application/json')
    res.setHeader('cache-control', 'no-store')
    res.end(JSON.stringify(shareBase !== undefined && shareBase !== '' ? { relays, shareBase } : { relays }))
  }
  return {
    name: 'kitedb-config',
    configureServer (server) { server.middlewares.use(serve) },
    configurePreviewServer (server) { server.middlewares.use(serve) }
  }
}

export default defineConfig({
  root: 'demo',
  build: { outDir: '../demo-dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4096 },
  plugins: [kitedbConfig()],
  server: { host: '127.0.0.1', strictPort: true },
  preview: { host: '127.0.0.1', strictPort: true }
})
