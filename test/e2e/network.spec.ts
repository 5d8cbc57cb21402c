/**
 * Staying connected in real Chromium against real relay processes: relays killed (SIGKILL) and
 * restarted on the same key and port, a browser's network really cut (its link taken down in a
 * network namespace) and healed, two relays with one lost, two tabs of one browser, the relays
 * down when a page loads, and a joiner that reaches nobody.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from '@playwright/test'
import { test, expect } from './fixtures.js'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { Netns, RelayProcess, canMakeNetns, serveDemo } from './helpers/cluster.js'
import { addTodo, titles } from './helpers/demo.js'

let dir: string
const stops: Array<() => Promise<void> | void> = []
/** uncaught errors of pages in browsers this file launches itself (the fixture watches the others) */
const pageErrors: string[] = []
test.beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kitedb-network-')) })
test.afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
  rmSync(dir, { recursive: true, force: true })
  expect(pageErrors.splice(0), 'uncaught page errors').toEqual([])
})

/** Two relays and the demo served on `host`, stopped after the test. */
async function cluster (host = '127.0.0.1'): Promise<{ relays: [RelayProcess, RelayProcess], url: string }> {
  const relays: [RelayProcess, RelayProcess] = [await RelayProcess.start(host, dir), await RelayProcess.start(host, dir)]
  stops.push(async () => { await Promise.all(relays.map(async r => { await r.kill() })) })
  const demo = await serveDemo(host, () => relays.map(r => r.addr))
  stops.push(demo.close)
  return { relays, url: demo.url }
}

/** A page in its own context (its own IndexedDB); an uncaught page error fails the test. */
async function openPage (browser: Browser, name: string, url: string, context?: BrowserContext): Promise<Page> {
  const ctx = context ?? await browser.newContext()
  if (context === undefined) stops.push(async () => { await ctx.close().catch(() => {}) })
  const page = await ctx.newPage()
  page.on('pageerror', err => { pageErrors.push(`[${name}] ${err.message}`) })
  // Failed relay dials and a missing favicon are expected here; other console errors are shown.
  page.on('console', msg => {
    if (msg.type() === 'error' && !/WebSocket connection|Failed to load resource/.test(msg.text())) console.log(`[${name} console] ${msg.text()}`)
  })
  await page.goto(url)
  return page
}

/** The demo's share link (its short form). */
async function shareLink (page: Page): Promise<string> {
  const link = page.getByTestId('share-link')
  await expect(link).toHaveAttribute('href', /#E[A-Z2-7]{100,}$/)
  return await link.getAttribute('href') as string
}

/** The long form of the page's link (`db.shareLink`), which names the device's peer id once online. */
async function longLink (page: Page): Promise<string> {
  let link = ''
  await expect.poll(async () => (link = await page.evaluate(() => window.todoDb?.shareLink(location.origin + '/') ?? ''))).toMatch(/#db=.*&key=[\w-]{43}&relay=.*&relay=.*&peer=/)
  return link
}

const reserved = async (page: Page): Promise<number> => await page.evaluate(() => window.todoDb?.networkState().reserved ?? -1)

test('relays killed and restarted: open pages reconnect, and a fresh page joins and sees everything', async ({ browser }) => {
  test.setTimeout(150_000)
  const { relays, url } = await cluster()
  const a = await openPage(browser, 'A', url)
  for (const t of ['one', 'two', 'three']) await addTodo(a, t)
  const link = await shareLink(a)
  const b = await openPage(browser, 'B', link)
  await expect(b.getByTestId('todo-item')).toHaveCount(3)
  // a page alone on its own list, to see the status leave 'online' when nothing is up
  const alone = await openPage(browser, 'alone', url)
  await expect(alone.getByTestId('network-status')).toHaveText('online')

  await Promise.all(relays.map(async r => { await r.kill() }))
  await expect(alone.getByTestId('network-status')).not.toHaveText('online', { timeout: 20_000 })
  await expect(alone.getByTestId('network-banner')).toBeVisible()
  await addTodo(a, 'while the relays were down')
  await new Promise(resolve => setTimeout(resolve, 15_000))
  await Promise.all(relays.map(async r => { await r.restart() }))

  for (const page of [a, b, alone]) {
    await expect(page.getByTestId('network-status')).toHaveText('online', { timeout: 20_000 })
    await expect.poll(async () => await reserved(page), { timeout: 20_000 }).toBe(2)
  }
  await expect(alone.getByTestId('network-banner')).toBeHidden()
  const c = await openPage(browser, 'C', link)
  await expect(c.getByTestId('todo-item')).toHaveCount(4, { timeout: 30_000 })
  expect(await titles(c)).toEqual(await titles(a))
  await expect(b.getByTestId('todo-item')).toHaveCount(4)
})

test('two relays, one killed: nothing lost, nothing a user sees; a fresh page joins through the other', async ({ browser }) => {
  const { relays, url } = await cluster()
  const a = await openPage(browser, 'A', url)
  await addTodo(a, 'first')
  const link = await shareLink(a)
  const b = await openPage(browser, 'B', link)
  await expect(b.getByTestId('todo-item')).toHaveCount(1)
  await expect.poll(async () => await reserved(a), { timeout: 20_000 }).toBe(2)

  await relays[0].kill()
  await addTodo(b, 'after one relay died')
  await expect(a.getByTestId('todo-title').filter({ hasText: 'after one relay died' })).toHaveCount(1)
  await expect.poll(async () => await reserved(a), { timeout: 20_000 }).toBe(1)
  for (const page of [a, b]) {
    await expect(page.getByTestId('network-status')).toHaveText('online')
    await expect(page.getByTestId('network-banner')).toBeHidden()
  }
  const c = await openPage(browser, 'C', link)
  await expect(c.getByTestId('todo-item')).toHaveCount(2, { timeout: 30_000 })
  await addTodo(c, 'from C')
  await expect(a.getByTestId('todo-title').filter({ hasText: 'from C' })).toHaveCount(1)
})

test('the relays down when the page loads: it works locally, shows the countdown, and comes online when they return', async ({ browser }) => {
  const { relays, url } = await cluster()
  await Promise.all(relays.map(async r => { await r.kill() }))
  const a = await openPage(browser, 'A', url)
  await addTodo(a, 'written offline')
  await expect(a.getByTestId('network-banner')).toContainText(/Retrying in \d+ s|Connecting/)
  await expect(a.getByTestId('network-status')).toHaveText('offline', { timeout: 15_000 })
  await expect(a.getByTestId('network-banner')).toContainText(/Retrying in \d+ s/)
  const back = Date.now()
  await Promise.all(relays.map(async r => { await r.restart() }))
  await expect(a.getByTestId('network-status')).toHaveText('online', { timeout: 15_000 })
  console.log(`online ${Date.now() - back} ms after the relays returned`)
  await expect(a.getByTestId('network-banner')).toBeHidden()
  const b = await openPage(browser, 'B', await shareLink(a))
  await expect(b.getByTestId('todo-title').filter({ hasText: 'written offline' })).toHaveCount(1, { timeout: 30_000 })
})

test('two tabs of one browser see each other\'s and a remote browser\'s edits; the link outlives the tab that made it', async ({ browser }) => {
  test.setTimeout(120_000)
  const { url } = await cluster()
  const ctx = await browser.newContext()
  stops.push(async () => { await ctx.close().catch(() => {}) })
  const tab1 = await openPage(browser, 'tab 1', url, ctx)
  await addTodo(tab1, 'from tab 1')
  const tab2 = await openPage(browser, 'tab 2', url, ctx)
  await expect(tab2.getByTestId('todo-title').filter({ hasText: 'from tab 1' })).toHaveCount(1)
  await addTodo(tab2, 'from tab 2')
  await expect(tab1.getByTestId('todo-title').filter({ hasText: 'from tab 2' })).toHaveCount(1)
  await tab1.getByTestId('todo-item').filter({ hasText: 'from tab 2' }).getByTestId('todo-toggle').check()
  await expect(tab2.getByTestId('todo-item').filter({ hasText: 'from tab 2' }).getByTestId('todo-toggle')).toBeChecked()

  // The link made in tab 2 names the device's peer id, which tab 1 runs now.
  const link = await longLink(tab2)
  const devicePeer = new URL(link).hash.match(/peer=([^&]+)/)?.[1]
  expect(devicePeer).toBe(await tab1.evaluate(() => window.todoDb?.peerId))
  const remote = await openPage(browser, 'remote', link)
  await expect(remote.getByTestId('todo-item')).toHaveCount(2)
  await addTodo(remote, 'from the remote browser')
  for (const tab of [tab1, tab2]) await expect(tab.getByTestId('todo-title').filter({ hasText: 'from the remote browser' })).toHaveCount(1)

  // Tab 1 closes: tab 2 takes over the device's peer id, and keeps syncing.
  await tab1.close()
  await expect.poll(async () => await tab2.evaluate(() => window.todoDb?.peerId), { timeout: 30_000 }).toBe(devicePeer)
  await addTodo(remote, 'after the handover')
  await expect(tab2.getByTestId('todo-title').filter({ hasText: 'after the handover' })).toHaveCount(1, { timeout: 30_000 })
})

test('a joiner that reaches nobody holding the list says so, and fills when a holder returns', async ({ browser }) => {
  const { url } = await cluster()
  const ctxA = await browser.newContext()
  stops.push(async () => { await ctxA.close().catch(() => {}) })
  const a = await openPage(browser, 'A', url, ctxA)
  await addTodo(a, 'kept on A')
  const link = await shareLink(a)
  await a.close()
  const b = await openPage(browser, 'B', link)
  await expect(b.getByTestId('join-status')).toContainText('Waiting for a device that has this list — none is online', { timeout: 20_000 })
  await expect(b.getByTestId('empty')).toBeHidden()
  await openPage(browser, 'A again', url, ctxA)
  await expect(b.getByTestId('todo-title').filter({ hasText: 'kept on A' })).toHaveCount(1, { timeout: 30_000 })
  await expect(b.getByTestId('join-status')).toBeHidden()
})

test('a browser whose network is really cut for 30 s catches up when it heals', async ({ browser }) => {
  test.skip(!canMakeNetns(), 'needs root and iproute2 to cut a browser\'s network (a network namespace)')
  test.setTimeout(240_000)
  const ns = new Netns(chromiumPath)
  stops.push(() => { ns.close() })
  const { url } = await cluster(ns.hostIp)
  const inside = await chromium.launch({ executablePath: ns.chromiumPath, args: chromiumArgs })
  stops.push(async () => { await inside.close() })

  const a = await openPage(browser, 'A', url)
  for (const t of ['one', 'two']) await addTodo(a, t)
  const b = await openPage(inside, 'B (cut)', await shareLink(a))
  await expect(b.getByTestId('todo-item')).toHaveCount(2)
  await expect(b.getByTestId('connection-type')).toContainText('webrtc', { timeout: 30_000 })

  ns.cut()
  const cutAt = Date.now()
  await addTodo(b, 'written by B while cut off')
  await addTodo(a, 'written by A meanwhile')
  await a.getByTestId('todo-item').filter({ hasText: 'one' }).getByTestId('todo-toggle').check()
  await expect(b.getByTestId('network-status')).not.toHaveText('online', { timeout: 25_000 })
  await expect(b.getByTestId('network-banner')).toBeVisible()
  await new Promise(resolve => setTimeout(resolve, Math.max(0, 30_000 - (Date.now() - cutAt))))

  ns.heal()
  const healedAt = Date.now()
  await expect.poll(async () => {
    const [x, y] = await Promise.all([titles(a), titles(b)])
    return x.length === 4 && JSON.stringify(x) === JSON.stringify(y)
  }, { timeout: 60_000 }).toBe(true)
  console.log(`lists equal ${Date.now() - healedAt} ms after the network healed`)
  await expect(b.getByTestId('todo-item').filter({ hasText: 'one' }).getByTestId('todo-toggle')).toBeChecked()
  await expect(b.getByTestId('network-status')).toHaveText('online')
})
