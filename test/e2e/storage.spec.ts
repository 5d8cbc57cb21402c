/**
 * Storage the browser keeps, in real Chromium: a write that meets the origin's quota (lowered
 * through the DevTools protocol) throws `StorageFullError` and leaves nothing half-written; the
 * estimate reports usage and quota; `KiteDB.persist()` answers.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from '@playwright/test'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { test, expect } from './fixtures.js'

test('a write over the quota throws StorageFullError and writes nothing; estimate and persist answer', async ({ baseURL }) => {
  // An on-disk profile: Chromium enforces quotas there (an incognito-like context keeps IndexedDB in memory).
  const dir = mkdtempSync(join(tmpdir(), 'kitedb-quota-'))
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: chromiumPath, args: chromiumArgs, baseURL })
  const page = ctx.pages()[0] ?? await ctx.newPage()
  const errors: string[] = []
  page.on('pageerror', err => { errors.push(err.message) })
  // A 2 MB quota for the origin, set before the page (the demo opens IndexedDB at once) stores anything.
  const cdp = await ctx.newCDPSession(page)
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(baseURL as string).origin, quotaSize: 2 * 1024 * 1024 })
  await page.goto('/')
  await page.evaluate(async () => {
    const db = await window.kitedb.KiteDB.init(`quota-${Date.now()}`, { storage: 'indexeddb' })
    Object.assign(window, { quotaDb: db, quotaDocs: await db.initCollection('docs') })
    await (window as unknown as { quotaDocs: { insertOne: (d: unknown) => Promise<unknown> } }).quotaDocs.insertOne({ _id: 'first', text: 'fits' })
  })
  const estimate = await page.evaluate(async () => await (window as unknown as { quotaDb: { storageEstimate: () => Promise<{ usage: number, quota: number, persisted: boolean } | undefined> } }).quotaDb.storageEstimate())
  expect(estimate?.quota).toBeGreaterThan(0)
  expect(typeof estimate?.usage).toBe('number')
  expect(typeof await page.evaluate(async () => await window.kitedb.KiteDB.persist())).toBe('boolean')

  // 10 MB in one call, over the quota
  const outcome = await page.evaluate(async () => {
    const w = window as unknown as { quotaDb: { getHeadHash: () => Promise<string> }, quotaDocs: { insert: (d: unknown[]) => Promise<unknown>, countDocuments: () => Promise<number> } }
    const before = await w.quotaDb.getHeadHash()
    const big = Array.from({ length: 4000 }, (_, i) => ({ _id: `big-${i}`, text: 'x'.repeat(2500) }))
    let error: { name: string, code: string } | undefined
    try { await w.quotaDocs.insert(big) } catch (err) { error = { name: (err as Error).name, code: (err as { code: string }).code } }
    return { error, count: await w.quotaDocs.countDocuments(), sameHeads: before === await w.quotaDb.getHeadHash() }
  })
  expect(outcome.error).toEqual({ name: 'StorageFullError', code: 'ERR_STORAGE_FULL' })
  expect(outcome.count).toBe(1)
  expect(outcome.sameHeads).toBe(true)
  await ctx.close()
  rmSync(dir, { recursive: true, force: true })
  expect(errors).toEqual([])
})
