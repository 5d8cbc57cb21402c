/**
 * Crash safety: the browser is killed (CDP Browser.crash) in the middle of a large insert. On
 * restart the database opens, holds either none or all of that call (never part of a block), and
 * after syncing equals the other replica.
 */
import { chromium, type BrowserContext, type Page } from '@playwright/test'
import { test, expect } from './fixtures.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'

const count = async (page: Page): Promise<number> => await page.evaluate(async () => {
  const db = window.todoDb as NonNullable<typeof window.todoDb>
  return await (await db.initCollection('bulk')).countDocuments()
})

test('a browser killed during a large insert reopens with all or none of it, then converges', async ({ browser, baseURL }) => {
  test.setTimeout(120_000)
  const dir = await mkdtemp(join(tmpdir(), 'kitedb-crash-'))
  const launch = async (): Promise<BrowserContext> => await chromium.launchPersistentContext(dir, { executablePath: chromiumPath, args: chromiumArgs, baseURL })
  try {
    // A on a persistent profile (its IndexedDB survives the crash); B an ordinary second browser.
    let ctxA = await launch()
    let a = ctxA.pages()[0] ?? await ctxA.newPage()
    await a.goto('/')
    await expect(a.getByTestId('network-status')).toHaveText('online')
    await expect(a.getByTestId('share-link')).toHaveAttribute('href', /#E[A-Z2-7]{100,}$/)
    const link = await a.getByTestId('share-link').getAttribute('href') as string
    const ctxB = await browser.newContext()
    const b = await ctxB.newPage()
    await b.goto(link)
    await expect(b.getByTestId('peer-count')).toHaveText('1')
    await b.evaluate(async () => { await (await window.todoDb!.initCollection('bulk')).insert(Array.from({ length: 100 }, (_, i) => ({ _id: `b${i}` }))) })
    await expect.poll(async () => await count(a), { timeout: 30_000 }).toBe(100)

    // Three times: start a 20,000-document insert in A and kill the browser while it runs (at
    // different moments: while documents are prepared, while the block is encoded, while the
    // IndexedDB transaction runs). After each restart A holds all of a call or none of it.
    let expected = 100
    for (const [round, delay] of [300, 2500, 4500].entries()) {
      await a.evaluate((r) => {
        const docs = Array.from({ length: 20_000 }, (_, i) => ({ _id: `a${r}-${i}`, text: 'lorem ipsum dolor sit amet '.repeat(8), i }))
        void window.todoDb!.initCollection('bulk').then(async c => await c.insert(docs))
      }, round)
      await a.waitForTimeout(delay)
      const cdp = await ctxA.newCDPSession(a)
      await cdp.send('Browser.crash').catch(() => {})
      await ctxA.close().catch(() => {})
      ctxA = await launch()
      a = ctxA.pages()[0] ?? await ctxA.newPage()
      await a.goto(link)
      await expect(a.getByTestId('new-todo')).toBeEnabled()
      const now = await count(a)
      console.log(`crash ${round} after ${delay} ms: A holds ${now} documents`)
      expect([expected, expected + 20_000]).toContain(now)
      expected = now
    }
    const afterCrash = expected
    // And it converges with B.
    await expect.poll(async () => [await count(a), await count(b)], { timeout: 60_000 }).toEqual([afterCrash, afterCrash])
    const ids = async (p: Page): Promise<string> => await p.evaluate(async () => JSON.stringify((await (await window.todoDb!.initCollection('bulk')).find({}, { _id: 1 })).map(d => d._id)))
    expect(await ids(a)).toEqual(await ids(b))
    await ctxA.close()
    await ctxB.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
