/**
 * The demo as an app people keep: a list opened once opens again, and takes edits, with its web
 * server stopped and the browser offline — the service worker (Workbox) serves the app and the
 * remembered configuration names the relays — and syncs with another browser once the server,
 * the relay and the network are back. Its own server and relay, on fixed ports (the page's origin,
 * and so its storage and service worker, must be the same after the restart).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, expect } from './fixtures.js'
import { RelayProcess, serveDemo } from './helpers/cluster.js'
import { addTodo, closeShare, openShare } from './helpers/demo.js'

const DEMO_PORT = Number(process.env.KITEDB_E2E_OFFLINE_PORT ?? 5773)
const RELAY_PORT = Number(process.env.KITEDB_E2E_OFFLINE_RELAY_PORT ?? 9791)

let dir: string
const stops: Array<() => Promise<void>> = []
test.beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kitedb-offline-e2e-')) })
test.afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
})

test('a list opens and takes edits with the server stopped and the browser offline, then syncs when both return', async ({ browser }) => {
  test.setTimeout(150_000)
  const relay = await RelayProcess.start('127.0.0.1', dir, [], RELAY_PORT)
  stops.push(async () => { await relay.kill() })
  let demo = await serveDemo('127.0.0.1', () => [relay.addr], DEMO_PORT)
  stops.push(async () => { await demo.close() })
  const ctxA = await browser.newContext()
  const ctxB = await browser.newContext()
  stops.push(async () => { await ctxA.close() }, async () => { await ctxB.close() })

  // A opens the app once: the service worker installs, caches the app and takes the page.
  const a = await ctxA.newPage()
  await a.goto(demo.url)
  await addTodo(a, 'bought online')
  await a.evaluate(async () => { await navigator.serviceWorker.ready })
  await expect.poll(async () => await a.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true)
  const link = await openShare(a)
  await closeShare(a)
  const b = await ctxB.newPage()
  await b.goto(link)
  await expect(b.getByTestId('todo-title').filter({ hasText: 'bought online' })).toHaveCount(1)

  // The web server and the relay stop, and A's browser goes offline.
  await demo.close()
  await relay.kill()
  await ctxA.setOffline(true)
  expect(await a.evaluate(async () => await fetch('/kitedb-config.json').then(() => 'reached', () => 'unreachable'))).toBe('unreachable')

  // A reloads, and opens a second page: the app is there, with the list, and takes edits.
  await a.reload()
  await expect(a.getByTestId('todo-title').filter({ hasText: 'bought online' })).toHaveCount(1)
  expect(await a.evaluate(() => navigator.serviceWorker.controller?.state)).toBe('activated')
  await expect(a.getByTestId('network-banner')).toContainText(/Offline|Connecting/)
  await addTodo(a, 'written offline')
  await a.getByTestId('todo-item').filter({ hasText: 'bought online' }).getByTestId('todo-toggle').check()
  const again = await ctxA.newPage()
  await again.goto(demo.url)
  await expect(again.getByTestId('todo-title')).toHaveText(['bought online', 'written offline'])
  await again.close()
  await addTodo(b, 'written by B meanwhile')

  // The relay, the server and the network return: both sides get what the other wrote.
  await relay.restart()
  demo = await serveDemo('127.0.0.1', () => [relay.addr], DEMO_PORT)
  await ctxA.setOffline(false)
  const all = ['bought online', 'written offline', 'written by B meanwhile']
  for (const page of [a, b]) {
    await expect(page.getByTestId('todo-title')).toHaveText(all, { timeout: 60_000 })
    await expect(page.getByTestId('todo-item').filter({ hasText: 'bought online' }).getByTestId('todo-toggle')).toBeChecked()
  }
  await expect(a.getByTestId('network-status')).toHaveText('online')
})
