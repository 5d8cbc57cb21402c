/**
 * `Replica` over every storage: what the replica adds on top of `Storage` (commits on the heads,
 * change events, its replica id and clock kept across a reopen, snapshots joined through it,
 * foreign blocks refused). `Storage` itself is checked member by member by `storageConformance`
 * (test/store/conformance.test.ts).
 */
import { describe, expect, it } from 'vitest'
import { MemoryStorage } from '../../src/store/memory.js'
import { Replica, type SnapshotContent } from '../../src/sync/index.js'
import { type Op, decodeBlock, encodeBlock, generateSigner, parseCid, readBlockHeader, type CID } from '../../src/crdt/index.js'
import { storageKinds } from '../helpers/storages.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'

const signer = generateSigner()

async function block (parents: CID[], t: number, ops: Op[]): ReturnType<typeof encodeBlock> {
  return await encodeBlock({ v: 1, db: DB, parents, hlc: { t, c: 0, r: 'remote' }, ops }, { signer })
}

/** The snapshot of a replica's whole state, as `fetchSnapshot` assembles it after verifying. */
async function snapshotOf (replica: Replica): Promise<SnapshotContent> {
  const source = await replica.storage.readSnapshotSource()
  const heads = await Promise.all((await replica.storage.getBlocks(source.heads)).map(async b => await decodeBlock(b as Uint8Array)))
  return { root: 'test', docs: source.docs, colls: source.colls, covered: source.blocks, heads }
}

describe.each(storageKinds)('Replica over %s storage', (_kind, makeProvider) => {
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
})
