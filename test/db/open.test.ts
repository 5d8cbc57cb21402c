/**
 * Opening a database checks the manifest it stored against its address (src/db/kitedb.ts,
 * `beginOpen`): bytes that are not that database's manifest refuse the open, by name or by address.
 */
import { describe, expect, it } from 'vitest'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { KiteDB, DexieStorageProvider, NotFoundError } from '../../src/index.js'
import { MANIFEST_KEY } from '../../src/sync/index.js'

describe('the stored manifest', () => {
  it('when it is not the database\'s, init and open reject with NotFoundError and the database opens again once it is', async () => {
    const storage = new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange })
    const a = await KiteDB.init('a', { storage, encrypt: false })
    const b = await KiteDB.init('b', { storage, encrypt: false })
    await (await a.initCollection('c')).insertOne({ _id: 'kept' })
    await a.close()
    await b.close()
    const idOf = (address: string): string => address.replace('/kite/', '')
    const aStore = await storage.open(idOf(a.address))
    const bStore = await storage.open(idOf(b.address))
    const own = await aStore.getMeta<Uint8Array>(MANIFEST_KEY)
    await aStore.setMeta(MANIFEST_KEY, await bStore.getMeta<Uint8Array>(MANIFEST_KEY))
    await bStore.close()
    await expect(KiteDB.init('a', { storage })).rejects.toThrow(NotFoundError)
    await expect(KiteDB.open(a.address, { storage })).rejects.toThrow(/stored manifest of .* is corrupt/)
    await aStore.setMeta(MANIFEST_KEY, own)
    await aStore.close()
    const again = await KiteDB.init('a', { storage })
    expect(again.address).toBe(a.address)
    expect(await (await again.initCollection('c')).find()).toEqual([{ _id: 'kept' }])
    await again.close()
  })
})
