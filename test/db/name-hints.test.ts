/**
 * Name hints (src/store/dexie/provider.ts): `KiteDB.init` opens the database a name's hint points
 * at while the registry answers; the registry stays the truth, so a stale or malformed hint only
 * costs the early opening.
 */
import { describe, expect, it } from 'vitest'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { KiteDB, DexieStorageProvider } from '../../src/index.js'

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
    expect(hints.size).toBe(0)
  })

  it('a stale, lost or malformed hint changes nothing but the hint, which follows the registry', async () => {
    const hints = hintStore()
    const storage = new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange, hints })
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
