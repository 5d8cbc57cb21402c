import { describe, expect, it } from 'vitest'
import { Dexie } from 'dexie'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { DexieStorage, DexieStorageProvider } from '../../src/store/index.js'
import { encodeBlock, generateSigner } from '../../src/crdt/index.js'
import { storageConformance } from './conformance.js'

// A fresh IndexedDB per provider, so tests do not see each other's databases.
storageConformance('indexeddb (Dexie over fake-indexeddb)', () => new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange }))

describe('DexieStorage schema upgrades', () => {
  it('v2 → v3 tells stored blocks from chunks, so a snapshot lists blocks only', async () => {
    const indexedDB = new IDBFactory()
    const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
    const big = await encodeBlock({
      v: 1, db: DB, parents: [], hlc: { t: 1, c: 0, r: 'r' },
      ops: Array.from({ length: 3000 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${i}`, set: { text: 'x'.repeat(200) } }))
    }, { signer: generateSigner() })
    const chunk = (big.chunks ?? [])[0] as { cid: { toString: () => string }, bytes: Uint8Array }
    const old = new Dexie('kitedb/v2', { indexedDB, IDBKeyRange })
    old.version(1).stores({ blocks: 'cid', heads: 'cid', missing: 'cid', docs: '[coll+id], coll', meta: 'key' })
    old.version(2).stores({ docs: null, states: '[c+i]', documents: '[c+i]', colls: 'c', indexes: '[c+n], c', entries: '[x+k+i]' })
    await old.table('blocks').bulkPut([{ cid: big.cid.toString(), bytes: big.bytes }, { cid: chunk.cid.toString(), bytes: chunk.bytes }])
    await old.table('heads').put({ cid: big.cid.toString() })
    old.close()
    const storage = new DexieStorage('kitedb/v2', { indexedDB, IDBKeyRange })
    expect(await storage.countBlocks()).toBe(1)
    expect((await storage.readSnapshotSource()).blocks).toEqual([big.cid.toString()])
    expect(await storage.hasBlock(chunk.cid.toString())).toBe(true)
    await storage.close()
  })
})
