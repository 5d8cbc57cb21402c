/**
 * Name hints (src/store/dexie/provider.ts): `KiteDB.init` opens the database a name's hint points
 * at while the registry answers; the registry stays the truth, so a stale or malformed hint only
 * costs the early opening. And the record a database keeps of its last open by name
 * (src/db/opened-as.ts): while the registry's generation token has not moved, a reopen by name
 * does not read the registry, and the device key is loaded when it first signs.
 */
import { describe, expect, it, vi } from 'vitest'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { KiteDB, DexieStorageProvider, AccessError } from '../../src/index.js'
import { generateSigner, signerFromSeed, verifySignature } from '../../src/crdt/index.js'
import { deferredSigner } from '../../src/db/opened-as.js'

/** A `localStorage` stand-in. */
function hintStore (): Map<string, string> & { getItem: (k: string) => string | null, setItem: (k: string, v: string) => void, removeItem: (k: string) => void } {
  const m = new Map<string, string>()
  return Object.assign(m, {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => { m.set(k, v) },
    removeItem: (k: string) => { m.delete(k) }
  })
}

describe('name hints', () => {
  it('are kept beside the registry: set by init, used and confirmed by a reopen, removed by drop', async () => {
    const hints = hintStore()
    const storage = new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange, hints })
    const db = await KiteDB.init('todos', { storage, encrypt: false })
    expect(storage.guessName('todos')).toBe(db.address)
    await (await db.initCollection('todos')).insertOne({ _id: 'a' })
    await db.close()
    const again = await KiteDB.init('todos', { storage })
    expect(again.address).toBe(db.address)
    expect(await (await again.initCollection('todos')).find()).toEqual([{ _id: 'a' }])
    await again.close()
    await KiteDB.drop('todos', { storage })
    expect(storage.guessName('todos')).toBeUndefined()
    expect([...hints.keys()].filter(k => k.startsWith('kitedb:name:'))).toEqual([])
  })

  it('a stale, lost or malformed hint changes nothing but the hint, which follows the registry', async () => {
    const hints = hintStore()
    const indexedDB = new IDBFactory()
    const storage = new DexieStorageProvider({ indexedDB, IDBKeyRange, hints })
    const a = await KiteDB.init('a', { storage, encrypt: false })
    const b = await KiteDB.init('b', { storage, encrypt: false })
    await (await a.initCollection('c')).insertOne({ _id: 'in-a' })
    await a.close()
    await b.close()
    // stale: the hint of a names b's database
    hints.setItem('kitedb:name:a', b.address)
    const a2 = await KiteDB.init('a', { storage })
    expect(a2.address).toBe(a.address)
    expect(await (await a2.initCollection('c')).find()).toEqual([{ _id: 'in-a' }])
    expect(storage.guessName('a')).toBe(a.address)
    await a2.close()
    // lost, then malformed
    hints.removeItem('kitedb:name:a')
    const a3 = await KiteDB.init('a', { storage })
    expect(a3.address).toBe(a.address)
    expect(storage.guessName('a')).toBe(a.address)
    await a3.close()
    hints.setItem('kitedb:name:a', 'not an address')
    const a4 = await KiteDB.init('a', { storage })
    expect(a4.address).toBe(a.address)
    await a4.close()
    // a's address in another form (upper case): not opened as a database of its own
    const before = (await indexedDB.databases()).map(d => d.name).sort()
    hints.setItem('kitedb:name:a', '/kite/' + a.address.slice('/kite/'.length).toUpperCase())
    const a5 = await KiteDB.init('a', { storage })
    expect(a5.address).toBe(a.address)
    await a5.close()
    expect((await indexedDB.databases()).map(d => d.name).sort()).toEqual(before)
    // a hint of a name the registry does not know: a new database, and the hint follows it
    hints.setItem('kitedb:name:new', a.address)
    const fresh = await KiteDB.init('new', { storage, encrypt: false })
    expect(fresh.address).not.toBe(a.address)
    expect(storage.guessName('new')).toBe(fresh.address)
    await fresh.close()
  })

  it('are off with an explicit IndexedDB unless a store is given', () => {
    expect(new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange }).guessName('x')).toBeUndefined()
  })
})

/** A provider with a hints store, whose registry reads are counted. */
function countedProvider (): { storage: DexieStorageProvider, reads: () => number } {
  const storage = new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange, hints: hintStore() })
  const lookups = vi.spyOn(storage, 'lookupName')
  const secrets = vi.spyOn(storage, 'loadSecret')
  return { storage, reads: () => lookups.mock.calls.length + secrets.mock.calls.length }
}

describe('the record of an open by name', () => {
  it('lets a reopen with the registry unchanged skip it; the device key loads on the first write, and signs it', async () => {
    const { storage, reads } = countedProvider()
    const made = await KiteDB.init('todos', { storage })
    await (await made.initCollection('todos')).insertOne({ _id: 'a' })
    await made.close()
    // A database made by init remembers nothing yet (registering it moved the token); this open reads the registry and remembers.
    const first = await KiteDB.init('todos', { storage })
    await first.close()
    const before = reads()
    const again = await KiteDB.init('todos', { storage })
    expect(reads()).toBe(before)
    expect(again.address).toBe(made.address)
    expect(again.publicKey).toBe(await KiteDB.publicKey({ storage }))
    const todos = await again.initCollection('todos')
    expect(await todos.find()).toEqual([{ _id: 'a' }])
    // the write list is this device's key alone: the write passes only when signed by it
    await todos.insertOne({ _id: 'b' })
    expect(reads()).toBeGreaterThan(before)
    expect((await todos.find()).map(d => d._id)).toEqual(['a', 'b'])
    await again.close()
  })

  it('is not trusted once the registry changed (a name registered or forgotten, a secret saved), nor for another name or node', async () => {
    const { storage, reads } = countedProvider()
    const a = await KiteDB.init('a', { storage, encrypt: false })
    await a.close()
    const reopen = async (name: string, node?: string): Promise<boolean> => {
      const before = reads()
      const db = await KiteDB.init(name, { storage, ...(node !== undefined ? { node } : {}) })
      await db.close()
      expect(db.address).toBe(a.address)
      return reads() > before
    }
    expect(await reopen('a')).toBe(true) // remembers
    expect(await reopen('a')).toBe(false)
    for (const change of [
      async () => { await storage.registerName('other', a.address) },
      async () => { await storage.unregisterName('never-registered') },
      async () => { await storage.saveSecret('unrelated', new Uint8Array([1])) }
    ]) {
      const token = storage.registryGeneration()
      await change()
      expect(storage.registryGeneration()).not.toBe(token)
      expect(await reopen('a')).toBe(true)
      expect(await reopen('a')).toBe(false)
    }
    // another node: its device key is read
    expect(await reopen('a', 'second')).toBe(true)
    expect(await reopen('a')).toBe(true)
    expect(await reopen('a')).toBe(false)
    // a name whose hint points at a's database, which remembers the name a: the registry answers
    expect(await reopen('other')).toBe(true)
  })

  it('a deferred signer signs with the key it announced, and with no other', async () => {
    const device = generateSigner()
    const body = new Uint8Array([1, 2, 3])
    const right = deferredSigner(device.publicKey, async () => device)
    expect(await verifySignature(device.publicKey, body, await right.sign(body))).toBe(true)
    const wrong = deferredSigner(device.publicKey, async () => signerFromSeed(new Uint8Array(32).fill(7)))
    await expect(wrong.sign(body)).rejects.toBeInstanceOf(AccessError)
  })
})
