/**
 * Browser tests: Debian's Chromium (CHROMIUM_PATH or /usr/bin/chromium; Playwright never
 * downloads a browser here) against the real relay and demo, both started by `npm start` as
 * Playwright's webServer, on test-only ports.
 */
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineConfig } from '@playwright/test'

const port = Number(process.env.KITEDB_E2E_PORT ?? 5273)
const relayPort = Number(process.env.KITEDB_E2E_RELAY_PORT ?? 9291)
/**
 * The relay records every payload it forwards here (`kitedb-relay --record`), so tests can check
 * what a relay sees. Lines carry ISO times: a test reads only those written after it started.
 */
export const relayRecordPath = join(tmpdir(), `kitedb-e2e-relay-${relayPort}.jsonl`)
/** Where the web server's relays keep (`kitedb-relay --keep`): emptied at the start of a run. */
export const keepPath = join(tmpdir(), `kitedb-e2e-keep-${relayPort}`)
if (process.env.TEST_WORKER_INDEX === undefined) for (const p of [relayRecordPath, `${relayRecordPath}.2`, keepPath, `${keepPath}-2`]) rmSync(p, { force: true, recursive: true }) // main process only
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const chromiumArgs = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-features=WebRtcHideLocalIpsWithMdns'
]

export default defineConfig({
  testDir: 'test/e2e',
  timeout: 90_000,
  expect: { timeout: 15_000 },
  workers: 1,
  fullyParallel: false,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    launchOptions: { executablePath: chromiumPath, args: chromiumArgs },
    trace: 'retain-on-failure'
  },
  webServer: {
    command: `node scripts/start.js --port ${port} --relay-port ${relayPort} --relays 2 --relay-record ${relayRecordPath} --keep ${keepPath}`,
    url: `http://127.0.0.1:${port}/kitedb-config.json`,
    reuseExistingServer: false,
    timeout: 120_000,
    stdout: 'pipe',
    stderr: 'pipe',
    gracefulShutdown: { signal: 'SIGINT', timeout: 5000 }
  }
})
