/**
 * Storage the browser keeps, in real Chromium: a write that meets the origin's quota (lowered
 * through the DevTools protocol) throws `StorageFullError` and leaves nothing half-written; the
 * estimate reports usage and quota; `KiteDB.persist()` answers. A database an earlier version
 * wrote opens (docs/design.md, "Storage": the current schema first, the migrations when older).
 * A database reopened by name, the registry unchanged, opens without reading the registry, and
 * its first write, signed once the device key loads, is accepted by another browser.
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

test('reopened by name with the registry unchanged, a database opens without the registry; its first write is signed by the device key and another browser takes it', async ({ page, browser }) => {
  await page.goto('/')
  await expect(page.getByTestId('new-todo')).toBeEnabled()
  const relays = await page.evaluate(() => window.todoDb?.relays ?? [])
  expect(relays.length).toBeGreaterThan(0)
  const name = `reopen-${Date.now()}`
  // Each open with a provider of its own (as a reloaded page has), its registry reads counted.
  const opened = await page.evaluate(async (name) => {
    const { KiteDB, DexieStorageProvider } = window.kitedb
    const open = async (write?: { _id: string }): Promise<{ address: string, reads: string[], afterWrite: string[] }> => {
      const storage = new DexieStorageProvider()
      const reads: string[] = []
      const lookupName = storage.lookupName.bind(storage)
      const loadSecret = storage.loadSecret.bind(storage)
      storage.lookupName = async (n: string) => { reads.push('lookupName'); return await lookupName(n) }
      storage.loadSecret = async (n: string) => { reads.push('loadSecret'); return await loadSecret(n) }
      const db = await KiteDB.init(name, { storage, encrypt: false })
      const atOpen = [...reads]
      if (write !== undefined) await (await db.initCollection('docs')).insertOne(write)
      await db.close()
      return { address: db.address, reads: atOpen, afterWrite: reads.slice(atOpen.length) }
    }
    return [await open(), await open(), await open({ _id: 'signed' })]
  }, name)
  const [made, first, again] = opened
  expect(first.address).toBe(made.address)
  expect(first.reads).toContain('lookupName') // remembers this open
  expect(again.address).toBe(made.address)
  expect(again.reads).toEqual([])
  expect(again.afterWrite).toContain('loadSecret')
  // Another browser (its own device key) opens the database by address; only this page's key may write.
  await page.evaluate(async ({ address, relays }) => {
    Object.assign(window, { served: await window.kitedb.KiteDB.open(address, { relays, storage: 'indexeddb' }) })
  }, { address: made.address, relays })
  const other = await (await browser.newContext()).newPage()
  await other.goto('/')
  await expect(other.getByTestId('new-todo')).toBeEnabled()
  const seen = await other.evaluate(async ({ address, relays }) => {
    const db = await window.kitedb.KiteDB.open(address, { relays, storage: 'indexeddb' })
    const docs = await db.initCollection('docs')
    for (let i = 0; i < 300; i++) {
      const doc = await docs.findById('signed')
      if (doc !== undefined) return doc
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    return null
  }, { address: made.address, relays })
  expect(seen).toEqual({ _id: 'signed' })
})
