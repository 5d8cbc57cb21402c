import { describe, expect, it, vi } from 'vitest'
import fc from 'fast-check'
import { Dexie } from 'dexie'
import { IDBDatabase, IDBFactory, IDBKeyRange, IDBObjectStore } from 'fake-indexeddb'
import { DexieStorage, type KeyRange, RANK, type Storage, indexKeys, isMultikey } from '../../src/store/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { DexieWriter } from '../../src/store/dexie/write.js'
import { type Doc, type JsonValue, type Stamp, applyOp, encodeBlock, generateSigner, materialise } from '../../src/crdt/index.js'
import { Replica } from '../../src/sync/index.js'
import { COLLS, FIELDS, opArbitrary } from '../helpers/arbitraries.js'
import { executeQuery } from '../../src/db/planner.js'

/** The schema of KiteDB's IndexedDB database up to `version`, as earlier releases declared it (for upgrade tests). */
function legacyDb (name: string, indexedDB: IDBFactory, version: number): Dexie {
  const db = new Dexie(name, { indexedDB, IDBKeyRange })
  const schemas: Array<Record<string, string | null>> = [
    { blocks: 'cid', heads: 'cid', missing: 'cid', docs: '[coll+id], coll', meta: 'key' },
    { docs: null, states: '[c+i]', documents: '[c+i]', colls: 'c', indexes: '[c+n], c', entries: '[x+k+i]' },
    { blocks: 'cid, k', covered: 'cid' },
    { heads: null, covered: null },
    { documents: '[c+i], *x', entries: null }
  ]
  schemas.slice(0, version).forEach((stores, i) => { db.version(i + 1).stores(stores) })
  return db
}

/** Every object store of an IndexedDB database with its key path and indexes, as plain data to compare. */
async function idbShape (indexedDB: IDBFactory, name: string): Promise<unknown> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const req = indexedDB.open(name)
    req.onsuccess = () => { resolve(req.result) }
    req.onerror = () => { reject(req.error ?? new Error(`cannot open ${name}`)) }
  })
  const names = [...db.objectStoreNames]
  const tx = db.transaction(names, 'readonly')
  const shape = {
    version: db.version,
    stores: names.map(n => {
      const store = tx.objectStore(n)
      return {
        name: n,
        keyPath: store.keyPath,
        autoIncrement: store.autoIncrement,
        indexes: [...store.indexNames].map(i => { const x = store.index(i); return { name: i, keyPath: x.keyPath, multiEntry: x.multiEntry, unique: x.unique } })
      }
    })
  }
  db.close()
  return shape
}

describe('DexieStorage.open: the current schema first, the migrations when the database is older', () => {
  it('makes a new database with the very tables and indexes the migrations make', async () => {
    const indexedDB = new IDBFactory()
    const migrated = new DexieStorage('kitedb/migrated', { indexedDB, IDBKeyRange })
    await migrated.setMeta('k', 1)
    await migrated.close()
    const current = await DexieStorage.open('kitedb/current', { indexedDB, IDBKeyRange })
    await current.setMeta('k', 1)
    await current.close()
    const shape = await idbShape(indexedDB, 'kitedb/migrated')
    expect(shape).toMatchObject({ version: 60 })
    expect(await idbShape(indexedDB, 'kitedb/current')).toEqual(shape)
  })

  it('leaves a database of every earlier version as it was until the migrations run, and keeps its data', async () => {
    for (const version of [1, 2, 3, 4, 5]) {
      const indexedDB = new IDBFactory()
      const old = legacyDb('kitedb/old', indexedDB, version)
      await old.table('meta').put({ key: 'kept', value: version })
      old.close()
      // the first open, with the current schema only, aborts its upgrade: the database is untouched
      const before = await idbShape(indexedDB, 'kitedb/old')
      expect(before).toMatchObject({ version: version * 10 })
      const storage = await DexieStorage.open('kitedb/old', { indexedDB, IDBKeyRange })
      expect(await storage.getMeta('kept')).toBe(version)
      await storage.close()
      expect(await idbShape(indexedDB, 'kitedb/old')).toMatchObject({ version: 60 })
    }
  })
})

describe('DexieStorage schema upgrades', () => {
  it('v2 → v3 tells stored blocks from chunks, so a snapshot lists blocks only', async () => {
    const indexedDB = new IDBFactory()
    const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
    const big = await encodeBlock({
      v: 1, db: DB, parents: [], hlc: { t: 1, c: 0, r: 'r' },
      ops: Array.from({ length: 3000 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${i}`, set: { text: 'x'.repeat(200) } }))
    }, { signer: generateSigner() })
    const chunk = (big.chunks ?? [])[0] as { cid: { toString: () => string }, bytes: Uint8Array }
    const old = legacyDb('kitedb/v2', indexedDB, 2)
    await old.table('blocks').bulkPut([{ cid: big.cid.toString(), bytes: big.bytes }, { cid: chunk.cid.toString(), bytes: chunk.bytes }])
    await old.table('heads').put({ cid: big.cid.toString() })
    old.close()
    const storage = await DexieStorage.open('kitedb/v2', { indexedDB, IDBKeyRange })
    expect(await storage.countBlocks()).toBe(1)
    expect((await storage.readSnapshotSource()).blocks).toEqual([big.cid.toString()])
    expect(await storage.hasBlock(chunk.cid.toString())).toBe(true)
    expect(await storage.getHeads()).toEqual([big.cid.toString()]) // moved into the DAG row by v4
    await storage.close()
  })

  it('v3 → v4 moves the heads into the DAG row and covered CIDs into the blocks table', async () => {
    const indexedDB = new IDBFactory()
    const old = legacyDb('kitedb/v3', indexedDB, 3)
    const bytes = new Uint8Array([1, 2, 3])
    await old.table('blocks').bulkPut([{ cid: 'h2', bytes, k: 'b' }, { cid: 'h1', bytes, k: 'b' }, { cid: 'ch', bytes, k: 'c' }])
    await old.table('heads').bulkPut([{ cid: 'h2' }, { cid: 'h1' }])
    await old.table('covered').bulkPut([{ cid: 'v1' }, { cid: 'v2' }])
    old.close()
    const storage = new DexieStorage('kitedb/v3', { indexedDB, IDBKeyRange })
    expect(await storage.getHeads()).toEqual(['h1', 'h2'])
    expect(await storage.hasBlock('v1')).toBe(true)
    expect(await storage.getBlocks(['v1', 'h1', 'x'])).toEqual([undefined, bytes, undefined])
    expect(await storage.countBlocks()).toBe(4) // two blocks, two covered; the chunk is not a block
    expect((await storage.readSnapshotSource()).blocks).toEqual(['h1', 'h2', 'v1', 'v2'])
    await storage.close()
  })

  it('v4 → v5 moves index entries into the documents rows from the declared indexes; queries use the index', async () => {
    const indexedDB = new IDBFactory()
    const old = legacyDb('kitedb/v4', indexedDB, 4)
    const people: Doc[] = [
      { _id: 'p1', age: 30, tags: ['a', 'b'] },
      { _id: 'p2', age: 25, tags: [] },
      { _id: 'p3', age: 30, tags: 'b' },
      { _id: 'p4', name: 'no age' },
      { _id: 'p5', age: 41, tags: ['c'] }
    ]
    await old.table('documents').bulkPut([...people.map(d => ({ c: 'people', i: d._id, d })), { c: 'other', i: 'o1', d: { _id: 'o1', age: 30 } }])
    await old.table('indexes').bulkPut([
      { c: 'people', n: 'age', paths: ['age'], ready: true, multikey: false },
      { c: 'people', n: 'tags', paths: ['tags'], ready: true, multikey: true }
    ])
    // v4 entries, one of them stale (p2 once had age 99): v5 recomputes from the documents
    await old.table('entries').bulkPut([
      ...people.flatMap(d => indexKeys(d, ['age']).map(k => ({ x: 'people\u0000age', k, i: d._id }))),
      { x: 'people\u0000age', k: [[RANK.number, 99]], i: 'p2' }
    ])
    await old.table('meta').put({ key: 'dag', value: { gen: 3, heads: [] } })
    old.close()
    const storage = await DexieStorage.open('kitedb/v4', { indexedDB, IDBKeyRange })
    const eq = await executeQuery(storage, 'people', { age: 30 }, undefined, {})
    expect(eq.explain).toMatchObject({ strategy: 'index', index: 'age', docsRead: 2 })
    expect(eq.docs.map(d => d._id)).toEqual(['p1', 'p3'])
    const range = await executeQuery(storage, 'people', { age: { $gte: 26 } }, undefined, { sort: { age: -1 }, limit: 2 })
    expect(range.explain).toMatchObject({ strategy: 'index', index: 'age', sortedByIndex: true })
    expect(range.docs.map(d => d._id)).toEqual(['p5', 'p1'])
    expect((await executeQuery(storage, 'people', { age: 99 }, undefined, {})).docs).toEqual([])
    const tags = await executeQuery(storage, 'people', { tags: 'b' }, undefined, {})
    expect(tags.explain).toMatchObject({ strategy: 'index', index: 'tags' })
    expect(tags.docs.map(d => d._id)).toEqual(['p1', 'p3'])
    expect((await storage.scanIndex('people', 'age', { lower: [], upper: [[RANK.max]] })).map(e => e.id)).toEqual(['p4', 'p2', 'p1', 'p3', 'p5'])
    expect(await storage.getDocs('other')).toEqual([{ _id: 'o1', age: 30 }])
    expect(await storage.getCollections()).toEqual(['other', 'people'])
    expect(await storage.countDocs('people')).toBe(5)
    await storage.close()
  })
})

describe('DexieStorage v5 → v6', () => {
  it('moves each existing document\'s state into its row (packed), keeps absent documents\' states apart, and goes on merging', async () => {
    const indexedDB = new IDBFactory()
    const old = legacyDb('kitedb/v5', indexedDB, 5)
    const stamp = (t: number): Stamp => [t, 0, 'r', 'bafyold', 0]
    const kept = applyOp(applyOp(undefined, { op: 'put', coll: 'c', id: 'a', set: { v: 1, w: 'x' } }, stamp(1)), { op: 'put', coll: 'c', id: 'a', inc: { n: 2 } }, stamp(2))
    const gone = applyOp(applyOp(undefined, { op: 'put', coll: 'c', id: 'b', set: { v: 1 } }, stamp(1)), { op: 'del', coll: 'c', id: 'b' }, stamp(3))
    await old.table('states').bulkPut([{ c: 'c', i: 'a', s: kept }, { c: 'c', i: 'b', s: gone }])
    await old.table('documents').bulkPut([{ c: 'c', i: 'a', d: materialise(kept), x: [] }])
    await old.table('meta').put({ key: 'dag', value: { gen: 1, heads: [] } })
    old.close()
    const storage = await DexieStorage.open('kitedb/v5', { indexedDB, IDBKeyRange })
    expect((await storage.readSnapshotSource()).docs).toEqual([{ coll: 'c', id: 'a', state: kept }, { coll: 'c', id: 'b', state: gone }])
    expect(await storage.getDocs('c')).toEqual([{ _id: 'a', n: 2, v: 1, w: 'x' }])
    const replica = await Replica.open(storage, 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4')
    await replica.commit([{ op: 'put', coll: 'c', id: 'a', inc: { n: 1 } }, { op: 'put', coll: 'c', id: 'b', set: { back: true } }])
    expect(await storage.getDocs('c')).toEqual([{ _id: 'a', n: 3, v: 1, w: 'x' }, { _id: 'b', back: true }])
    await storage.close()
    const raw = new Dexie('kitedb/v5', { indexedDB, IDBKeyRange })
    await raw.open()
    expect(await raw.table('states').count()).toBe(0) // both exist now: their states are in their rows
    raw.close()
  })
})

describe('DexieStorage index builds and drops', () => {
  it('an index dropped, then declared again while the drop is still removing elements, ends exact', async () => {
    const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
    const storage = new DexieStorage('kitedb/drop', { indexedDB: new IDBFactory(), IDBKeyRange })
    const replica = await Replica.open(storage, DB)
    await storage.createIndex('c', ['a'])
    for (let b = 0; b < 3; b++) {
      await replica.commit(Array.from({ length: 1000 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${b}-${String(i).padStart(4, '0')}`, set: { a: i % 7 } })))
    }
    // Hold the drop's second batch until the index is declared again (a document changing in
    // between) and built: that batch, and any after it, must then leave the rows alone.
    const db = (storage as unknown as { db: Dexie }).db
    const transaction = db.transaction.bind(db) as (...args: unknown[]) => Promise<unknown>
    let dropBatches = 0
    let info: { ready: boolean } | undefined
    const spy = vi.spyOn(db, 'transaction').mockImplementation((async (...args: unknown[]) => {
      const tables = (args[1] as Array<{ name: string }>).map(t => t.name).join()
      if (args[0] === 'rw' && tables === 'indexes,documents,meta' && ++dropBatches === 2) {
        await replica.commit([{ op: 'put', coll: 'c', id: 'd0-0001', set: { a: 'moved' } }])
        info = await storage.createIndex('c', ['a'])
      }
      return await transaction(...args)
    }) as never)
    try {
      await storage.dropIndex('c', 'a')
    } finally {
      spy.mockRestore()
    }
    expect(await storage.getDoc('c', 'd0-0001')).toEqual({ _id: 'd0-0001', a: 'moved' })
    expect(info?.ready).toBe(true)
    const all: KeyRange = { lower: [], upper: [[RANK.max]] }
    const expected = (await storage.getDocs('c')).flatMap(d => indexKeys(d, ['a']).map(key => ({ key, id: d._id })))
    const got = await storage.scanIndex('c', 'a', all)
    expect(got.length).toBe(3000)
    expect([...got].sort((x, y) => x.id < y.id ? -1 : 1)).toEqual(expected)
    expect(dropBatches).toBe(2) // the held batch found the index declared again and stopped
    expect((await executeQuery(storage, 'c', { a: 3 }, undefined, {})).docs.length).toBe((await storage.getDocs('c')).filter(d => d.a === 3).length)
    await storage.close()
  })
})

describe('DexieStorage write cache (two tabs on one IndexedDB database)', () => {
  const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
  type Private = { applyCached: (...a: unknown[]) => Promise<unknown>, applyRead: (...a: unknown[]) => Promise<unknown> }
  const proto = DexieWriter.prototype as unknown as Private

  /** Two storages ("tabs") on one fresh IndexedDB database, each with its replica. */
  async function twoTabs (): Promise<{ tabs: Replica[], storages: DexieStorage[] }> {
    const indexedDB = new IDBFactory()
    const storages = [new DexieStorage('kitedb/tabs', { indexedDB, IDBKeyRange }), new DexieStorage('kitedb/tabs', { indexedDB, IDBKeyRange })]
    const tabs = [await Replica.open(storages[0], DB), await Replica.open(storages[1], DB)]
    return { tabs, storages }
  }

  /** Every stored block folded into a fresh memory replica: the reference the storage must equal. */
  async function reference (storage: DexieStorage): Promise<MemoryStorage> {
    const { blocks } = await storage.readSnapshotSource()
    const ref = new MemoryStorage()
    const replica = await Replica.open(ref, DB)
    for (const bytes of await storage.getBlocks(blocks)) await replica.receive(bytes as Uint8Array)
    return ref
  }

  /** Index entries as stored, and as the documents say they should be. */
  async function entries (storage: Storage, coll: string): Promise<{ stored: string[], expected: string[] }> {
    const stored: string[] = []
    const expected: string[] = []
    const docs = await storage.getDocs(coll)
    for (const index of await storage.listIndexes(coll)) {
      for (const e of await storage.scanIndex(coll, index.name, { lower: [], upper: [[RANK.max]] })) stored.push(`${index.name} ${JSON.stringify(e.key)} ${e.id}`)
      for (const d of docs) for (const k of indexKeys(d, index.paths)) expected.push(`${index.name} ${JSON.stringify(k)} ${d._id}`)
    }
    return { stored: stored.sort(), expected: expected.sort() }
  }

  it('writes a local block from the cache, and falls back to reading when the other tab wrote', async () => {
    const cached = vi.spyOn(proto, 'applyCached')
    try {
      const { tabs: [a, b], storages: [sa] } = await twoTabs() as { tabs: [Replica, Replica], storages: [DexieStorage] }
      await a.commit([{ op: 'coll', coll: 'c' }]) // first write: read path, fills the cache
      expect(cached).not.toHaveBeenCalled()
      await a.commit([{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      expect(cached).toHaveBeenCalledTimes(1)
      await expect(cached.mock.results[0]?.value).resolves.toMatchObject({ applied: true })
      await b.commit([{ op: 'put', coll: 'c', id: 'y', set: { v: 2 } }]) // B has no cache yet: read path
      expect(cached).toHaveBeenCalledTimes(1)
      const z = await a.commit([{ op: 'put', coll: 'c', id: 'z', set: { v: 3 } }]) // A's cache is stale now
      expect(cached).toHaveBeenCalledTimes(2)
      await expect(cached.mock.results[1]?.value).rejects.toThrow('another writer moved the generation')
      expect(z?.applied).toBe(true)
      const ref = await reference(sa)
      expect(await sa.getDocs('c')).toEqual(await ref.getDocs('c'))
      expect((await sa.getDocs('c')).map(d => d._id)).toEqual(['x', 'y', 'z'])
      expect(await sa.getHeads()).toEqual(await ref.getHeads())
    } finally {
      cached.mockRestore()
    }
  })

  it('a remote block that is missing (its child came first) or stored is not taken as new by the cached path', async () => {
    const { tabs: [tab], storages: [storage] } = await twoTabs() as { tabs: [Replica], storages: [DexieStorage] }
    await tab.commit([{ op: 'coll', coll: 'a' }])
    const peer = await Replica.open(new MemoryStorage(), DB)
    const first = await peer.commit([{ op: 'put', coll: 'a', id: 'y', set: { f: 1 } }])
    const second = await peer.commit([{ op: 'put', coll: 'a', id: 'x', set: { g: 1 } }])
    await tab.receive(second?.bytes as Uint8Array)
    expect(await storage.getMissing()).toEqual([first?.cid.toString()])
    const cached = vi.spyOn(proto, 'applyCached')
    try {
      expect((await tab.receive(first?.bytes as Uint8Array)).applied).toBe(true)
      await expect(cached.mock.results[0]?.value).rejects.toThrow('stored, covered or missing')
      expect(await storage.getMissing()).toEqual([])
      expect(await storage.getHeads()).not.toContain(first?.cid.toString())
      expect(await storage.getHeads()).toEqual(await (await reference(storage)).getHeads())
      expect((await tab.receive(second?.bytes as Uint8Array)).applied).toBe(false)
    } finally {
      cached.mockRestore()
    }
  })

  it('an insert writes without reading first, and falls back when the document turns out to exist', async () => {
    const { tabs: [tab], storages: [storage] } = await twoTabs() as { tabs: [Replica], storages: [DexieStorage] }
    await tab.commit([{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'old', set: { v: 1 } }])
    // Push 'old' out of the cache's recent states with more than it keeps.
    await tab.commit(Array.from({ length: 1001 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `n${i}`, set: { v: i } })))
    const cached = vi.spyOn(proto, 'applyCached')
    try {
      const absentCheck = (before: Map<string, unknown>): void => { if (before.get('c\u0000old') !== null) throw new Error('duplicate old') }
      await expect(tab.commit([{ op: 'put', coll: 'c', id: 'old', set: { v: 2 } }], { check: absentCheck, expectAbsent: true })).rejects.toThrow('duplicate old')
      await expect(cached.mock.results[0]?.value).rejects.toThrow('expected absent')
      expect(await storage.getDoc('c', 'old')).toEqual({ _id: 'old', v: 1 })
      const fresh = await tab.commit([{ op: 'put', coll: 'c', id: 'new', set: { v: 3 } }], { check: before => { if (before.get('c\u0000new') !== null) throw new Error('dup') }, expectAbsent: true })
      expect(fresh?.applied).toBe(true)
      await expect(cached.mock.results[1]?.value).resolves.toMatchObject({ applied: true })
    } finally {
      cached.mockRestore()
    }
  })

  /** Documents `n` of collection `c` with `v: n` (ids in order), written by `tab` in one block. */
  async function fill (tab: Replica, n: number): Promise<void> {
    await tab.commit([{ op: 'coll', coll: 'c' }])
    await tab.commit(Array.from({ length: n }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${String(i).padStart(4, '0')}`, set: { v: i } })))
  }

  /** Names of the object stores `fn` reads single rows of with `get`. */
  async function storesRead (fn: () => Promise<void>): Promise<string[]> {
    const gets = vi.spyOn(IDBObjectStore.prototype, 'get')
    try {
      await fn()
      return gets.mock.contexts.map(store => (store as IDBObjectStore).name).filter(name => name === 'documents' || name === 'states')
    } finally {
      gets.mockRestore()
    }
  }

  it('an update of more documents than the cache holds takes their states from the rows its query read', async () => {
    const { tabs: [tab], storages: [storage] } = await twoTabs() as { tabs: [Replica], storages: [DexieStorage] }
    await fill(tab, 600) // the cache keeps the last 64 states
    const cached = vi.spyOn(proto, 'applyCached')
    try {
      const targets = (await executeQuery(storage, 'c', {}, undefined, {}, { forWrite: true })).docs
      expect(targets).toHaveLength(600)
      const read = await storesRead(async () => { await tab.commit(targets.map(d => ({ op: 'put' as const, coll: 'c', id: d._id, set: { v: (d.v as number) + 1 } }))) })
      expect(read).toEqual([])
      await expect(cached.mock.results[0]?.value).resolves.toMatchObject({ applied: true })
      // Without `forWrite` the same update reads what the cache lacks in its transaction.
      const plain = (await executeQuery(storage, 'c', {}, undefined, {})).docs
      const again = await storesRead(async () => { await tab.commit(plain.map(d => ({ op: 'put' as const, coll: 'c', id: d._id, set: { v: (d.v as number) + 1 } }))) })
      expect(again.filter(name => name === 'documents')).toHaveLength(600 - 64)
    } finally {
      cached.mockRestore()
    }
    const ref = await reference(storage)
    expect(await storage.getDocs('c')).toEqual(await ref.getDocs('c'))
    expect((await storage.getDocs('c')).map(d => d.v)).toEqual(Array.from({ length: 600 }, (_, i) => i + 2))
  })

  it('rows read for a write are not used once a write came between, here or in the other tab', async () => {
    const { tabs: [a, b], storages: [sa] } = await twoTabs() as { tabs: [Replica, Replica], storages: [DexieStorage] }
    await fill(a, 300)
    const bump = (docs: Doc[]): Array<{ op: 'put', coll: string, id: string, inc: Record<string, number> }> => docs.map(d => ({ op: 'put', coll: 'c', id: d._id, inc: { n: 1 } }))
    // Writes of this storage between the read and the update (one changes the documents, the next
    // pushes them out of the cache): the update reads their states again.
    const first = (await executeQuery(sa, 'c', {}, undefined, {}, { forWrite: true })).docs
    await a.commit(bump(first.slice(0, 40)))
    await a.commit(Array.from({ length: 260 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `e${i}`, set: { v: i } })))
    expect((await storesRead(async () => { await a.commit(bump(first.slice(0, 40))) })).filter(name => name === 'documents')).toHaveLength(40)
    // The other tab increments documents after A read them: A's update must count both increments.
    const second = (await executeQuery(sa, 'c', {}, undefined, {}, { forWrite: true })).docs
    await b.commit(bump(second.slice(0, 40)))
    await a.commit(bump(second.slice(0, 40)))
    const ref = await reference(sa)
    expect(await sa.getDocs('c')).toEqual(await ref.getDocs('c'))
    expect((await sa.getDocs('c')).slice(0, 40).map(d => d.n)).toEqual(Array.from({ length: 40 }, () => 4))
  })

  it('two tabs writing in turn, declaring and dropping indexes, always equal the reference fold with exact index entries', async () => {
    const value = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('s', 't'), fc.constant<JsonValue>([1, 2]))
    const ops = fc.array(opArbitrary(value), { minLength: 1, maxLength: 3 })
    const step = fc.oneof(
      // expectAbsent is a hint: right or wrong, the result must be the same
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), tab: fc.nat(1), ops, expectAbsent: fc.boolean() }) },
      // a peer's two blocks (the second on the first) reach a tab, in order or children first
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('remote' as const), tab: fc.nat(1), ops, childFirst: fc.boolean() }) },
      // a peer's block reaches a tab again
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('again' as const), tab: fc.nat(1), k: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('index' as const), tab: fc.nat(1), path: fc.constantFrom(...FIELDS), drop: fc.boolean() }) }
    )
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), async steps => {
      const { tabs, storages } = await twoTabs()
      await tabs[0].commit(COLLS.map(coll => ({ op: 'coll', coll }))) // so blocks can take the cached path
      const peer = await Replica.open(new MemoryStorage(), DB)
      const sent: Uint8Array[] = []
      for (const s of steps) {
        const tab = tabs[s.tab]
        if (s.kind === 'write') await tab.commit(s.ops, { expectAbsent: s.expectAbsent })
        else if (s.kind === 'remote') {
          const first = (await peer.commit(s.ops))?.bytes as Uint8Array
          const second = (await peer.commit([{ op: 'put', coll: 'a', id: 'x', set: { g: sent.length } }]))?.bytes as Uint8Array
          sent.push(first, second)
          for (const bytes of s.childFirst ? [second, first] : [first, second]) await tab.receive(bytes)
        } else if (s.kind === 'again') {
          if (sent.length > 0) await tab.receive(sent[s.k % sent.length])
        } else {
          for (const coll of COLLS) {
            if (s.drop) await tab.storage.dropIndex(coll, s.path)
            else await tab.storage.createIndex(coll, [s.path])
          }
        }
      }
      for (const storage of storages) {
        const ref = await reference(storage)
        expect(await storage.getHeads()).toEqual(await ref.getHeads())
        for (const coll of COLLS) {
          expect(await storage.getDocs(coll)).toEqual(await ref.getDocs(coll))
          const { stored, expected } = await entries(storage, coll)
          expect(stored).toEqual(expected)
          for (const index of await storage.listIndexes(coll)) {
            const docs = await storage.getDocs(coll)
            if (docs.some(d => isMultikey(d, index.paths))) expect(index.multikey).toBe(true)
          }
        }
      }
      for (const storage of storages) await storage.close()
    }), { numRuns: 40 })
  })
})

describe('DexieStorage.read resolves when its reads succeeded', () => {
  /** A fresh storage, and the order in which read-only transactions completed and awaited reads resolved. */
  function traced (): { storage: DexieStorage, order: string[], restore: () => void } {
    const order: string[] = []
    // eslint-disable-next-line @typescript-eslint/unbound-method -- patched and put back, called with its database
    const original = IDBDatabase.prototype.transaction
    IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: Parameters<typeof original>) {
      const tx = original.apply(this, args)
      if (args[1] !== 'readwrite') tx.addEventListener('complete', () => { order.push('complete') })
      return tx
    } as typeof original
    const storage = new DexieStorage('kitedb/reads', { indexedDB: new IDBFactory(), IDBKeyRange })
    return { storage, order, restore: () => { IDBDatabase.prototype.transaction = original } }
  }

  it('read resolves before its transaction completes', async () => {
    const { storage, order, restore } = traced()
    try {
      await storage.createIndex('c', ['f'])
      await new Promise(resolve => setTimeout(resolve, 5)) // the earlier transactions' events are in
      order.length = 0
      await storage.read(async () => await storage.getDocs('c'))
      order.push('read')
      await new Promise(resolve => setTimeout(resolve, 5))
      expect(order).toEqual(['read', 'complete'])
    } finally {
      restore()
      await storage.close()
    }
  })

  it('code that awaited a read begins a write transaction at once (it is outside the read\'s transaction)', async () => {
    const storage = new DexieStorage('kitedb/read-then-write', { indexedDB: new IDBFactory(), IDBKeyRange })
    await storage.createIndex('c', ['f'])
    await storage.read(async () => await storage.getDocs('c'))
    await storage.setMeta('k', 2)
    await storage.read(async () => await storage.listIndexes('c'))
    await storage.dropIndex('c', 'f')
    expect(await storage.getMeta('k')).toBe(2)
    expect(await storage.listIndexes('c')).toEqual([])
    await storage.close()
  })
})
