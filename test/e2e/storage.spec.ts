/**
 * Storage the browser keeps, in real Chromium: a write that meets the origin's quota (lowered
 * through the DevTools protocol) throws `StorageFullError` and leaves nothing half-written; the
 * estimate reports usage and quota; `KiteDB.persist()` answers. A database an earlier version
 * wrote opens (docs/design.md, "Storage": the current schema first, the migrations when older).
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

test('a database an earlier KiteDB wrote (schema v5) opens: its migrations run, its data is kept', async ({ page }) => {
  await page.goto('/')
  await expect(page.getByTestId('new-todo')).toBeEnabled()
  const cid = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
  const result = await page.evaluate(async (cid) => {
    const name = `kitedb/${cid}`
    const opened = async (version?: number, upgrade?: (db: IDBDatabase) => void): Promise<IDBDatabase> => await new Promise((resolve, reject) => {
      const req = version === undefined ? indexedDB.open(name) : indexedDB.open(name, version)
      req.onupgradeneeded = () => { upgrade?.(req.result) }
      req.onsuccess = () => { resolve(req.result) }
      req.onerror = () => { reject(new Error(`cannot open ${name}`)) }
    })
    // The stores of schema v5 (IndexedDB version 50), made with IndexedDB itself, and one meta row.
    const v5 = await opened(50, db => {
      db.createObjectStore('blocks', { keyPath: 'cid' }).createIndex('k', 'k')
      db.createObjectStore('missing', { keyPath: 'cid' })
      db.createObjectStore('states', { keyPath: ['c', 'i'] })
      db.createObjectStore('documents', { keyPath: ['c', 'i'] }).createIndex('x', 'x', { multiEntry: true })
      db.createObjectStore('colls', { keyPath: 'c' })
      db.createObjectStore('indexes', { keyPath: ['c', 'n'] }).createIndex('c', 'c')
      db.createObjectStore('meta', { keyPath: 'key' }).put({ key: 'kept', value: 'from v5' })
    })
    v5.close()
    const db = await window.kitedb.KiteDB.open(`/kite/${cid}`, { storage: 'indexeddb' })
    const collections = await db.listCollections()
    await db.close()
    const after = await opened()
    const kept = await new Promise<unknown>(resolve => {
      const req = after.transaction('meta').objectStore('meta').get('kept')
      req.onsuccess = () => { resolve((req.result as { value: unknown } | undefined)?.value) }
    })
    const version = after.version
    after.close()
    return { collections, version, kept }
  }, cid)
  expect(result).toEqual({ collections: [], version: 60, kept: 'from v5' })
})
