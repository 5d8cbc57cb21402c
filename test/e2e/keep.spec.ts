/**
 * Keepers in real Chromium against a real relay process with `--keep`: two browsers that are never
 * online together share a list through it, across a SIGKILL and restart of the keeper.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, expect, type Browser, type Page } from '@playwright/test'
import { RelayProcess, serveDemo } from './helpers/cluster.js'

let dir: string
const stops: Array<() => Promise<void> | void> = []
test.beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kitedb-keep-e2e-')) })
test.afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
  rmSync(dir, { recursive: true, force: true })
})

async function openPage (browser: Browser, name: string, url: string): Promise<Page> {
  const ctx = await browser.newContext()
  stops.push(async () => { await ctx.close().catch(() => {}) })
  const page = await ctx.newPage()
  page.on('pageerror', err => { throw new Error(`[${name}] uncaught page error: ${err.message}`) })
  page.on('console', msg => {
    if (msg.type() === 'error' && !/WebSocket connection|Failed to load resource/.test(msg.text())) console.log(`[${name} console] ${msg.text()}`)
  })
  await page.goto(url)
  return page
}

async function titles (page: Page): Promise<string[]> {
  return await page.getByTestId('todo-title').allTextContents()
}

async function addTodo (page: Page, title: string): Promise<void> {
  await page.getByTestId('new-todo').fill(title)
  await page.getByTestId('new-todo').press('Enter')
  await expect(page.getByTestId('todo-title').filter({ hasText: title })).toHaveCount(1)
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
  expect(link).toMatch(/#db=.*&key=[\w-]{43}/)
  await a.close()

  // B opens the link with nobody else online: the keeper serves the list.
  const b = await openPage(browser, 'B', link)
  await expect(b.getByTestId('todo-item')).toHaveCount(3, { timeout: 30_000 })
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
