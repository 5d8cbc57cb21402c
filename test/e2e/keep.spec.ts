/**
 * Keepers in real Chromium against a real relay process with `--keep`: two browsers that are never
 * online together share a list through it, across a SIGKILL and restart of the keeper.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Browser, type Page } from '@playwright/test'
import { test, expect } from './fixtures.js'
import { RelayProcess, serveDemo } from './helpers/cluster.js'
import { addTodo, titles } from './helpers/demo.js'

let dir: string
const stops: Array<() => Promise<void> | void> = []
test.beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kitedb-keep-e2e-')) })
test.afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
  rmSync(dir, { recursive: true, force: true })
})

/** Keeps every text the join screen shows, in `window.joinTexts` (an init script). */
function recordJoinTexts (): void {
  const seen: string[] = []
  Object.assign(window, { joinTexts: seen })
  new MutationObserver(() => {
    const box = document.getElementById('join-status')
    const text = box !== null && !box.hidden ? box.textContent ?? '' : ''
    if (text !== '' && seen.at(-1) !== text) seen.push(text)
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true })
}

/**
 * A page in a context of its own. `init`: an init script; `slowWebSockets`: every WebSocket frame
 * from a server reaches the page this many ms late (in order), through Playwright's WebSocket routing.
 */
async function openPage (browser: Browser, name: string, url: string, options: { init?: () => void, slowWebSockets?: number } = {}): Promise<Page> {
  const ctx = await browser.newContext()
  if (options.init !== undefined) await ctx.addInitScript(options.init)
  const delay = options.slowWebSockets
  if (delay !== undefined) {
    await ctx.routeWebSocket(/.*/, ws => {
      const server = ws.connectToServer()
      ws.onMessage(message => { server.send(message) })
      server.onMessage(message => { setTimeout(() => { ws.send(message) }, delay) })
    })
  }
  stops.push(async () => { await ctx.close().catch(() => {}) })
  const page = await ctx.newPage()
  page.on('pageerror', err => { throw new Error(`[${name}] uncaught page error: ${err.message}`) })
  page.on('console', msg => {
    if (msg.type() === 'error' && !/WebSocket connection|Failed to load resource/.test(msg.text())) console.log(`[${name} console] ${msg.text()}`)
  })
  await page.goto(url)
  return page
}

test('two browsers never online together share a list through a keeping relay, across its SIGKILL and restart', async ({ browser }) => {
  test.setTimeout(120_000)
  const relay = await RelayProcess.start('127.0.0.1', dir, ['--keep', join(dir, 'keep')])
  stops.push(async () => { await relay.kill() })
  const demo = await serveDemo('127.0.0.1', () => [relay.addr])
  stops.push(demo.close)

  // A writes, sees "saved on the relay ✓", and closes (its IndexedDB is kept for later).
  const aContext = await browser.newContext()
  let a = await aContext.newPage()
  await a.goto(demo.url)
  for (const t of ['buy milk', 'write tests', 'ship it']) await addTodo(a, t)
  await expect(a.getByTestId('kept-status')).toHaveText('saved on the relay ✓', { timeout: 30_000 })
  const link = await a.getByTestId('share-link').getAttribute('href') as string
  expect(link).toMatch(/#E[A-Z2-7]{100,}$/) // the short form: address and key
  await a.close()

  // B opens the link with nobody else online: the keeper serves the list, and the join screen says
  // so. B's link to the relay is slow (every frame from it 100 ms late), so the fetch takes a while.
  const b = await openPage(browser, 'B', link, { init: recordJoinTexts, slowWebSockets: 100 })
  await expect(b.getByTestId('todo-item')).toHaveCount(3, { timeout: 30_000 })
  const joinTexts = await b.evaluate(() => (window as unknown as { joinTexts: string[] }).joinTexts)
  expect(joinTexts.some(t => t.startsWith('Fetching this list from the relay…')), joinTexts.join(' | ')).toBe(true)
  await expect(b.getByTestId('join-status')).toBeHidden()
  expect(await titles(b)).toEqual(['buy milk', 'write tests', 'ship it'])
  await b.getByTestId('todo-item').filter({ hasText: 'write tests' }).getByTestId('todo-toggle').check()
  await addTodo(b, 'from B')
  await expect(b.getByTestId('kept-status')).toHaveText('saved on the relay ✓', { timeout: 30_000 })
  await b.context().close()

  // The keeper dies without warning and comes back on the same directory.
  await relay.kill('SIGKILL')
  await relay.restart()

  // A reopens (same browser profile) and sees B's edits.
  a = await aContext.newPage()
  stops.push(async () => { await aContext.close().catch(() => {}) })
  a.on('pageerror', err => { throw new Error(`[A] uncaught page error: ${err.message}`) })
  await a.goto(demo.url)
  await expect(a.getByTestId('todo-item')).toHaveCount(4, { timeout: 30_000 })
  expect(await titles(a)).toEqual(['buy milk', 'write tests', 'ship it', 'from B'])
  await expect(a.getByTestId('todo-item').filter({ hasText: 'write tests' }).getByTestId('todo-toggle')).toBeChecked()
})

test('a joiner that reaches the keeper but nobody holding the list says the relay does not keep it', async ({ browser }) => {
  const relay = await RelayProcess.start('127.0.0.1', dir, ['--keep', join(dir, 'keep')])
  stops.push(async () => { await relay.kill() })
  const demo = await serveDemo('127.0.0.1', () => [relay.addr])
  stops.push(demo.close)
  // a list made on a page that never goes online: nobody, the keeper included, has it
  const maker = await openPage(browser, 'maker', demo.url)
  const link = await maker.evaluate(async () => {
    const db = await window.kitedb.KiteDB.init(`unkept-${Date.now()}`, { storage: 'memory', access: { write: ['*'] } })
    const link = db.shareLink(location.origin + '/', { short: true })
    await db.close()
    return link
  })
  const b = await openPage(browser, 'B', link)
  await expect(b.getByTestId('join-status')).toContainText('Waiting for a device that has this list — none is online, and the relay does not keep it', { timeout: 20_000 })
  await expect(b.getByTestId('join-progress')).toBeHidden() // waiting, not moving
})
