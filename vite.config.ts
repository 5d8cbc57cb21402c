/**
 * Vite config of the demo (demo/ → demo-dist/). The demo learns its relays from
 * `/kitedb-config.json`, served by this config's middleware from the `KITEDB_RELAYS` environment
 * variable (space-separated multiaddrs) set by `npm start` (scripts/start.js), and, when the demo
 * is served to the LAN, the base URL its share links and QR codes use (`KITEDB_SHARE_BASE`).
 * Over HTTPS (`npm start -- --https`) it also serves the local certificate authority a phone
 * installs to trust the demo, at `/kitedb-ca.crt` (`KITEDB_TLS_CA`, a PEM file).
 *
 * The demo is an installable web app: vite-plugin-pwa writes its manifest and a Workbox service
 * worker that precaches the whole build, so a page opened once opens again with no server and no
 * network (docs/design.md, "The demo").
 */
import { readFileSync } from 'node:fs'
import { defineConfig, type Plugin } from 'vite'
import { VitePWA } from 'vite-plugin-pwa'

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
  plugins: [
    kitedbConfig(),
    VitePWA({
      registerType: 'autoUpdate',
      injectRegister: false, // demo/main.ts registers it (virtual:pwa-register)
      includeAssets: ['icon.svg'],
      manifest: {
        name: 'KiteDB to-do',
        short_name: 'To-do',
        description: 'Peer-to-peer to-do lists that work offline: share one by link or QR code.',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        background_color: '#f4f6f9',
        theme_color: '#2f5d9e',
        icons: [
          { src: 'icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
          { src: 'icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
          { src: 'icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' }
        ]
      },
      workbox: {
        // The whole app: the network stack and QR code chunks load later, maybe offline.
        globPatterns: ['**/*.{js,css,html,svg,png,wasm}'],
        maximumFileSizeToCacheInBytes: 8 * 1024 * 1024,
        navigateFallback: 'index.html',
        navigateFallbackDenylist: [/^\/kitedb-/],
        cleanupOutdatedCaches: true,
        clientsClaim: true,
        skipWaiting: true
      }
    })
  ],
  server: { host: '127.0.0.1', strictPort: true },
  preview: { host: '127.0.0.1', strictPort: true }
})
