/**
 * `DexieStorage.openedCollection` (src/store/dexie/storage.ts): the collections and index lists
 * read with the open's meta rows answer the first open of each collection, once, while nothing
 * was written since; `Database.openCollection` then reads nothing, and a query still sees an index
 * another tab declared meanwhile (the planner checks the list at each query).
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { DexieStorageProvider, KiteDB } from '../../src/index.js'
import { DexieStorage } from '../../src/store/index.js'

const provider = (indexedDB: IDBFactory): DexieStorageProvider => new DexieStorageProvider({ indexedDB, IDBKeyRange })
const idOf = (address: string): string => address.replace('/kite/', '')

/** A database with collection `c` (indexed on `a`) and `d` (no index); returns its storage id. */
async function made (indexedDB: IDBFactory): Promise<string> {
  const db = await KiteDB.init('lists', { storage: provider(indexedDB), encrypt: false })
  await (await db.initCollection('c', { indexes: [['a']] })).insertOne({ _id: 'x', a: 1 })
  await (await db.initCollection('d')).insertOne({ _id: 'y' })
  await db.close()
  return idOf(db.address)
}

afterEach(() => { vi.restoreAllMocks() })

describe('DexieStorage.openedCollection', () => {
  it('answers from the open\'s reads: a created collection\'s indexes, once each; nothing for an absent one', async () => {
    const indexedDB = new IDBFactory()
    const id = await made(indexedDB)
    const storage = await provider(indexedDB).open(id)
    expect(storage.openedCollection('c')).toBeUndefined() // nothing read yet
    await storage.getMeta('replicaId')
    const listed = await storage.listIndexes('c')
    expect(listed.map(i => i.paths)).toEqual([['a']])
    expect(storage.openedCollection('c')).toEqual(listed)
    expect(storage.openedCollection('c')).toBeUndefined() // asked already
    expect(storage.openedCollection('d')).toEqual([])
    expect(storage.openedCollection('absent')).toBeUndefined()
    await storage.close()
  })

  it('answers nothing once a write went through the storage', async () => {
    const indexedDB = new IDBFactory()
    const id = await made(indexedDB)
    const storage = await provider(indexedDB).open(id)
    await storage.getMeta('replicaId')
    await storage.createIndex('d', ['b'])
    expect(storage.openedCollection('c')).toBeUndefined()
    expect(storage.openedCollection('d')).toBeUndefined()
    await storage.close()
  })

  it('lets a reopened database open its collections without reading, and a query uses an index another tab declared meanwhile', async () => {
    const indexedDB = new IDBFactory()
    await made(indexedDB)
    const has = vi.spyOn(DexieStorage.prototype, 'hasCollection')
    const list = vi.spyOn(DexieStorage.prototype, 'listIndexes')
    const db = await KiteDB.init('lists', { storage: provider(indexedDB) })
    const c = await db.initCollection('c')
    expect(has).not.toHaveBeenCalled()
    expect(list).not.toHaveBeenCalled()
    // another tab (its own storage over the same IndexedDB database) declares an index on d
    const other = await provider(indexedDB).open(idOf(db.address))
    await other.createIndex('d', ['b'])
    await other.close()
    const d = await db.initCollection('d')
    expect(await c.find({ a: 1 })).toEqual([{ _id: 'x', a: 1 }])
    expect((await d.explain({ b: 2 })).strategy).toBe('index')
    await db.close()
  })
})
