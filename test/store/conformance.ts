/**
 * The conformance suite every `Storage` implementation must pass (the automerge-repo habit: one
 * suite, many adapters). Call `storageConformance(name, makeProvider)` from a test file.
 */
import { describe, expect, it } from 'vitest'
import { type IndexEntry, type KeyRange, type Storage, MemoryStorage, RANK, type StorageProvider, compareKeys, inRange, indexKeys } from '../../src/store/index.js'
import { Replica, type SnapshotContent } from '../../src/sync/index.js'
import { type Op, decodeBlock, encodeBlock, generateSigner, parseCid, readBlockHeader, type CID } from '../../src/crdt/index.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'

const signer = generateSigner()

async function block (parents: CID[], t: number, ops: Op[]): ReturnType<typeof encodeBlock> {
  return await encodeBlock({ v: 1, db: DB, parents, hlc: { t, c: 0, r: 'remote' }, ops }, { signer })
}

/** The snapshot of a replica's whole state, as sync/snapshot.ts assembles it after verifying. */
async function snapshotOf (replica: Replica): Promise<SnapshotContent> {
  const source = await replica.storage.readSnapshotSource()
  const heads = await Promise.all((await replica.storage.getBlocks(source.heads)).map(async b => await decodeBlock(b as Uint8Array)))
  return { root: 'test', docs: source.docs, colls: source.colls, covered: source.blocks, heads }
}

/** Every entry of index `paths` the documents of `coll` should have within `range`, in (key, id) order. */
async function expectedEntries (storage: Storage, coll: string, paths: string[], range: KeyRange): Promise<IndexEntry[]> {
  const out: IndexEntry[] = []
  for (const d of await storage.getDocs(coll)) for (const key of indexKeys(d, paths)) if (inRange(key, range)) out.push({ key, id: d._id })
  return out.sort((a, b) => compareKeys(a.key, b.key) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

export function storageConformance (name: string, makeProvider: () => StorageProvider): void {
  describe(`Storage conformance: ${name}`, () => {
    it('applies a block atomically: block, heads, documents', async () => {
      const storage = await makeProvider().open(DB)
      const replica = await Replica.open(storage, DB)
      const applied = await replica.commit([{ op: 'put', coll: 'todos', id: 'a', set: { title: 'x' } }])
      expect(applied?.applied).toBe(true)
      expect(await storage.getHeads()).toEqual([applied?.cid.toString()])
      expect(await storage.getMissing()).toEqual([])
      expect(await storage.hasBlock(applied?.cid.toString() as string)).toBe(true)
      const got = await storage.getBlocks([applied?.cid.toString() as string, 'nope'])
      expect(got.map(b => b === undefined ? undefined : Uint8Array.from(b))).toEqual([Uint8Array.from(applied?.bytes as Uint8Array), undefined])
      expect(await storage.getDoc('todos', 'a')).toEqual({ _id: 'a', title: 'x' })
      expect(await storage.getDocs('todos')).toEqual([{ _id: 'a', title: 'x' }])
      expect(await storage.getCollections()).toEqual(['todos'])
      await storage.close()
    })

    it('is idempotent: applying a block twice changes nothing the second time', async () => {
      const storage = await makeProvider().open(DB)
      const replica = await Replica.open(storage, DB)
      const b = await block([], 5, [{ op: 'put', coll: 'c', id: 'x', inc: { n: 1 } }])
      expect((await replica.receive(b.bytes)).applied).toBe(true)
      expect((await replica.receive(b.bytes)).applied).toBe(false)
      expect(await storage.getDoc('c', 'x')).toEqual({ _id: 'x', n: 1 })
    })

    it('tracks heads and missing parents when blocks arrive children-first', async () => {
      const storage = await makeProvider().open(DB)
      const replica = await Replica.open(storage, DB)
      const b1 = await block([], 1, [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      const b2 = await block([b1.cid], 2, [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }])
      const b3 = await block([b2.cid], 3, [{ op: 'put', coll: 'c', id: 'y', set: { v: 3 } }])
      await replica.receive(b3.bytes)
      // A block whose parents are missing is applied at once (state-based CRDT)...
      expect(await storage.getDoc('c', 'y')).toEqual({ _id: 'y', v: 3 })
      expect(await storage.getHeads()).toEqual([b3.cid.toString()])
      expect(await storage.getMissing()).toEqual([b2.cid.toString()])
      await replica.receive(b1.bytes)
      // ...b1 is not referenced by any stored block yet, so it is a head until b2 arrives.
      expect(await storage.getHeads()).toEqual([b1.cid.toString(), b3.cid.toString()].sort())
      await replica.receive(b2.bytes)
      expect(await storage.getHeads()).toEqual([b3.cid.toString()])
      expect(await storage.getMissing()).toEqual([])
      expect(await storage.getDoc('c', 'x')).toEqual({ _id: 'x', v: 2 })
    })

    it('keeps concurrent heads until a block merges them', async () => {
      const storage = await makeProvider().open(DB)
      const replica = await Replica.open(storage, DB)
      const root = await block([], 1, [{ op: 'put', coll: 'c', id: 'x', set: { v: 0 } }])
      const left = await block([root.cid], 2, [{ op: 'put', coll: 'c', id: 'x', set: { l: 1 } }])
      const right = await encodeBlock({ v: 1, db: DB, parents: [root.cid], hlc: { t: 2, c: 0, r: 'other' }, ops: [{ op: 'put', coll: 'c', id: 'x', set: { r: 1 } }] }, { signer })
      for (const b of [root, left, right]) await replica.receive(b.bytes)
      expect(await storage.getHeads()).toEqual([left.cid.toString(), right.cid.toString()].sort())
      const merged = await replica.commit([{ op: 'put', coll: 'c', id: 'y', set: { m: 1 } }])
      expect(await storage.getHeads()).toEqual([merged?.cid.toString()])
      const parents = readBlockHeader(merged?.bytes as Uint8Array).parents.map(String).sort()
      expect(parents).toEqual([left.cid.toString(), right.cid.toString()].sort())
      expect(await storage.getDoc('c', 'x')).toEqual({ _id: 'x', v: 0, l: 1, r: 1 })
    })

    it('reports document changes with before and after', async () => {
      const storage = await makeProvider().open(DB)
      const replica = await Replica.open(storage, DB)
      const seen: unknown[] = []
      replica.onChange(({ changes }, origin) => { seen.push({ changes, origin }) })
      await replica.commit([{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      await replica.commit([{ op: 'del', coll: 'c', id: 'x' }])
      expect(seen).toEqual([
        { origin: 'local', changes: [{ coll: 'c', id: 'x', before: null, after: { _id: 'x', v: 1 } }] },
        { origin: 'local', changes: [{ coll: 'c', id: 'x', before: { _id: 'x', v: 1 }, after: null }] }
      ])
      expect(await storage.getDocs('c')).toEqual([])
    })

    it('keeps data, heads, replica id and clock across close and reopen', async () => {
      const provider = makeProvider()
      const storage = await provider.open(DB)
      const replica = await Replica.open(storage, DB)
      const first = await replica.commit([{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      await storage.close()
      const again = await Replica.open(await provider.open(DB), DB)
      expect(again.clock.replicaId).toBe(replica.clock.replicaId)
      expect(await again.storage.getDoc('c', 'x')).toEqual({ _id: 'x', v: 1 })
      expect(await again.heads()).toEqual([first?.cid.toString()])
      const second = await again.commit([{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }])
      const h1 = readBlockHeader(first?.bytes as Uint8Array).hlc
      const h2 = readBlockHeader(second?.bytes as Uint8Array).hlc
      expect(h2.t > h1.t || (h2.t === h1.t && h2.c > h1.c)).toBe(true)
    })

    it('keeps databases apart and maps names to addresses', async () => {
      const provider = makeProvider()
      const other = 'bafyreihiekde7ck57zwp4wcddjir6blyvwzm2qjaqpszd4nzwmwhikwrwi'
      const a = await Replica.open(await provider.open(DB), DB)
      const b = await Replica.open(await provider.open(other), other)
      await a.commit([{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      expect(await b.storage.getDocs('c')).toEqual([])
      await provider.registerName('todos', `/kite/${DB}`)
      expect(await provider.lookupName('todos')).toBe(`/kite/${DB}`)
      expect(await provider.lookupName('nope')).toBeUndefined()
      expect(await provider.listNames()).toEqual([{ name: 'todos', address: `/kite/${DB}` }])
    })

    it('installs a snapshot in one step: joined states, documents, index entries, heads; covered blocks are present but never stored, applied, heads or missing', async () => {
      // The source: b1 <- b2 (heads H = [b2]); b3 is concurrent to b2 (parent b1), written elsewhere.
      const source = await Replica.open(new MemoryStorage(), DB)
      const b1 = await block([], 1, [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1, a: 'k' }, inc: { n: 1 } }])
      const b2 = await block([b1.cid], 2, [{ op: 'put', coll: 'c', id: 'y', set: { v: 2, a: 'm' } }, { op: 'put', coll: 'c', id: 'x', inc: { n: 2 } }])
      const b3 = await encodeBlock({ v: 1, db: DB, parents: [b1.cid], hlc: { t: 3, c: 0, r: 'other' }, ops: [{ op: 'put', coll: 'c', id: 'x', inc: { n: 4 } }] }, { signer })
      for (const b of [b1, b2]) await source.receive(b.bytes)
      const snapshot = await snapshotOf(source)
      expect(snapshot.covered).toEqual([b1.cid.toString(), b2.cid.toString()].sort())

      const storage = await makeProvider().open(DB)
      const joiner = await Replica.open(storage, DB)
      await storage.createIndex('c', ['a'])
      // A local write before the join keeps its effect: states are joined, not overwritten.
      const local = await joiner.commit([{ op: 'put', coll: 'c', id: 'z', set: { v: 9, a: 'z' } }, { op: 'put', coll: 'c', id: 'x', inc: { n: 10 } }])
      const seen: unknown[] = []
      joiner.onChange(({ changes }, origin) => { seen.push({ n: changes.length, origin }) })
      const change = await joiner.installSnapshot(snapshot)
      expect(change.changes.map(c => c.id).sort()).toEqual(['x', 'y'])
      expect(seen).toEqual([{ n: 2, origin: 'remote' }])
      expect(await storage.getDocs('c')).toEqual([{ _id: 'x', v: 1, a: 'k', n: 13 }, { _id: 'y', v: 2, a: 'm' }, { _id: 'z', v: 9, a: 'z' }])
      expect((await storage.scanIndex('c', 'a', { lower: [[30, 'm']], upper: [[30, 'm']] })).map(e => e.id)).toEqual(['y'])
      expect(await storage.getHeads()).toEqual([b2.cid.toString(), local?.cid.toString()].sort())
      expect(await storage.getMissing()).toEqual([])
      expect(await storage.hasBlock(b1.cid.toString())).toBe(true)
      expect(await storage.getBlocks([b1.cid.toString(), b2.cid.toString()])).toEqual([undefined, expect.any(Uint8Array)])
      expect(await storage.countBlocks()).toBe(3)
      expect(await joiner.snapshotRoot()).toBe('test')

      // Covered blocks delivered again change nothing; a concurrent block whose parent is covered applies.
      expect((await joiner.receive(b1.bytes)).applied).toBe(false)
      expect((await joiner.receive(b2.bytes)).applied).toBe(false)
      expect((await joiner.receive(b3.bytes)).applied).toBe(true)
      expect(await storage.getDoc('c', 'x')).toEqual({ _id: 'x', v: 1, a: 'k', n: 17 })
      expect(await storage.getHeads()).toEqual([b2.cid.toString(), b3.cid.toString(), local?.cid.toString()].sort())
      expect(await storage.getMissing()).toEqual([])
      // A block naming a covered CID as parent never makes it missing; one naming an unknown CID does.
      const b4 = await block([b1.cid, b3.cid], 4, [{ op: 'put', coll: 'c', id: 'y', set: { v: 4 } }])
      await joiner.receive(b4.bytes)
      expect(await storage.getMissing()).toEqual([])
      expect(await storage.getHeads()).toEqual([b2.cid.toString(), b4.cid.toString(), local?.cid.toString()].sort())

      // The joiner's own snapshot source: its stored blocks and covered CIDs (chunks excluded).
      await storage.putNodes([{ cid: 'chunk-cid', bytes: new Uint8Array([1]) }])
      const again = await storage.readSnapshotSource()
      expect(again.blocks).toEqual([b1, b2, b3, b4].map(b => b.cid.toString()).concat(local?.cid.toString() as string).sort())
      expect(again.missing).toBe(0)
      expect(again.docs.map(d => `${d.coll}/${d.id}`)).toEqual(['c/x', 'c/y', 'c/z'])
      expect(again.colls.map(c => c.coll)).toEqual(['c'])
    })

    it('installing a snapshot takes a missing head and covered missing parents out of missing; covered survives a reopen', async () => {
      const source = await Replica.open(new MemoryStorage(), DB)
      const b1 = await block([], 1, [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      const b2 = await block([b1.cid], 2, [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }])
      const b3 = await block([b2.cid], 3, [{ op: 'put', coll: 'c', id: 'x', set: { v: 3 } }])
      for (const b of [b1, b2]) await source.receive(b.bytes)
      const provider = makeProvider()
      const storage = await provider.open(DB)
      const joiner = await Replica.open(storage, DB)
      await joiner.receive(b3.bytes) // its parent b2 (the snapshot's head) is missing
      expect(await storage.getMissing()).toEqual([b2.cid.toString()])
      await joiner.installSnapshot(await snapshotOf(source))
      expect(await storage.getHeads()).toEqual([b3.cid.toString()])
      expect(await storage.getMissing()).toEqual([])
      expect(await storage.getDoc('c', 'x')).toEqual({ _id: 'x', v: 3 })
      await storage.close()
      const reopened = await provider.open(DB)
      expect(await reopened.hasBlock(b1.cid.toString())).toBe(true)
      expect(await reopened.countBlocks()).toBe(3)
      expect((await (await Replica.open(reopened, DB)).receive(b1.bytes)).applied).toBe(false)
    })

    it('rejects a block of another database without writing anything', async () => {
      const storage = await makeProvider().open(DB)
      const replica = await Replica.open(storage, DB)
      const foreign = await encodeBlock({ v: 1, db: 'bafyreihiekde7ck57zwp4wcddjir6blyvwzm2qjaqpszd4nzwmwhikwrwi', parents: [], hlc: { t: 1, c: 0, r: 'x' }, ops: [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }] }, { signer })
      await expect(replica.receive(foreign.bytes)).rejects.toThrow(/belongs to database/)
      expect(await storage.getHeads()).toEqual([])
      expect(await storage.getDocs('c')).toEqual([])
      expect(parseCid(foreign.cid.toString())).toBeDefined()
    })
    it('scanIndex pages with after, reverse and limit through duplicate and multikey keys, in (key, id) order; scanIndexDocs carries the documents', async () => {
      const storage = await makeProvider().open(DB)
      const replica = await Replica.open(storage, DB)
      await storage.createIndex('c', ['a'])
      const values = [1, 2, 2, 'x', [2, 3], 2, 1, [1, 1, 'x'], null, 3, 2, 'x']
      await replica.commit(values.map((a, i) => ({ op: 'put' as const, coll: 'c', id: `d${String(values.length - i).padStart(2, '0')}`, set: { a } })))
      await replica.commit([{ op: 'put', coll: 'c', id: 'e', set: { b: 1 } }]) // no `a`: indexed as null
      const ranges: KeyRange[] = [
        { lower: [], upper: [[RANK.max]] },
        { lower: [[20, 2]], upper: [[20, 2]] },
        { lower: [[20, 1]], upper: [[20, 3]], lowerOpen: true },
        { lower: [[20]], upper: [[21]], upperOpen: true },
        { lower: [[20, 2]], upper: [[30, 'x']], lowerOpen: true, upperOpen: true }
      ]
      for (const range of ranges) {
        const expected = await expectedEntries(storage, 'c', ['a'], range)
        expect(await storage.scanIndex('c', 'a', range)).toEqual(expected)
        expect(await storage.scanIndex('c', 'a', range, { reverse: true })).toEqual([...expected].reverse())
        const withDocs = await storage.scanIndexDocs('c', 'a', range)
        expect(withDocs.map(e => ({ key: e.key, id: e.id }))).toEqual(expected)
        for (const e of withDocs) expect(e.doc).toEqual(await storage.getDoc('c', e.id))
        for (const reverse of [false, true]) {
          const order = reverse ? [...expected].reverse() : expected
          for (const limit of [1, 2, 3]) {
            const paged: IndexEntry[] = []
            let after: IndexEntry | undefined
            for (;;) {
              const page = await storage.scanIndex('c', 'a', range, { reverse, limit, ...(after !== undefined ? { after } : {}) })
              expect(page.length).toBeLessThanOrEqual(limit)
              paged.push(...page)
              if (page.length < limit) break
              after = page[page.length - 1]
            }
            expect(paged).toEqual(order)
            // `after` any entry (or a position between entries) continues strictly after it
            for (let i = 0; i < order.length; i++) {
              expect(await storage.scanIndex('c', 'a', range, { reverse, after: order[i] as IndexEntry, limit })).toEqual(order.slice(i + 1, i + 1 + limit))
            }
            const between: IndexEntry = { key: [[20, 2]], id: 'd05x' }
            const rest = order.filter(e => { const c = compareKeys(e.key, between.key) || (e.id < between.id ? -1 : e.id > between.id ? 1 : 0); return reverse ? c < 0 : c > 0 })
            expect(await storage.scanIndex('c', 'a', range, { reverse, after: between })).toEqual(rest)
          }
        }
      }
      await storage.close()
    })

    it('a dropped index leaves no entries, and one declared again is exact even when documents changed in between', async () => {
      const storage = await makeProvider().open(DB)
      const replica = await Replica.open(storage, DB)
      const all: KeyRange = { lower: [], upper: [[RANK.max]] }
      await storage.createIndex('c', ['a'])
      await storage.createIndex('c', ['b'])
      await replica.commit(Array.from({ length: 30 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${String(i).padStart(2, '0')}`, set: { a: i % 4, b: i % 3 === 0 ? [i, 'x'] : 's' } })))
      await storage.dropIndex('c', 'a')
      expect(await storage.scanIndex('c', 'a', all)).toEqual([])
      expect((await storage.listIndexes('c')).map(i => i.name)).toEqual(['b'])
      // documents change, go and come while the index is dropped
      await replica.commit([
        { op: 'put', coll: 'c', id: 'd01', set: { a: 'changed' } },
        { op: 'del', coll: 'c', id: 'd02' },
        { op: 'put', coll: 'c', id: 'n1', set: { a: 7 } }
      ])
      await storage.createIndex('c', ['a'])
      expect(await storage.scanIndex('c', 'a', all)).toEqual(await expectedEntries(storage, 'c', ['a'], all))
      expect(await storage.scanIndex('c', 'a', { lower: [[20, 1]], upper: [[20, 1]] })).toEqual((await storage.getDocs('c')).filter(d => d.a === 1).map(d => ({ key: [[20, 1]], id: d._id })))
      expect(await storage.scanIndex('c', 'b', all)).toEqual(await expectedEntries(storage, 'c', ['b'], all))
      // dropped and declared again at once (either may come last): exact entries or none
      await Promise.all([storage.dropIndex('c', 'b'), storage.createIndex('c', ['b'])])
      await replica.commit([{ op: 'put', coll: 'c', id: 'd03', set: { b: 'later' } }])
      const declared = (await storage.listIndexes('c')).some(i => i.name === 'b')
      expect(await storage.scanIndex('c', 'b', all)).toEqual(declared ? await expectedEntries(storage, 'c', ['b'], all) : [])
      expect(await storage.scanIndex('c', 'a', all)).toEqual(await expectedEntries(storage, 'c', ['a'], all))
      await storage.close()
    })
  })
}
