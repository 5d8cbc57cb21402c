/**
 * The keeper's LevelDB store on its own: heads and missing parents whatever the order blocks
 * arrive in, chunks kept only with a block naming them, a snapshot replacing the one before (its
 * nodes freed), quotas exact, and everything (totals included) back after a reopen.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type CID, cidOf, createManifest, encode, encodeBlock, encodeManifest, generateKey, generateSigner, linkSigner
} from '../../src/crdt/index.js'
import { KeepStore, checkKeptNode, resolveKeepLimits, type KeepLimits } from '../../src/keep/index.js'

const dirs: string[] = []
afterEach(async () => { for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }) })

async function setup (limits: Partial<KeepLimits> = {}): Promise<{ store: KeepStore, dir: string, db: string, manifest: ReturnType<typeof createManifest>, make: (parents: CID[], big?: boolean) => Promise<Awaited<ReturnType<typeof encodeBlock>>> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kitedb-store-'))
  dirs.push(dir)
  const key = generateKey()
  const manifest = createManifest('x', ['*'], key)
  const { bytes, cid } = encodeManifest(manifest)
  const store = await KeepStore.open(dir, resolveKeepLimits(limits))
  expect(await store.keep(cid.toString(), bytes, 'peer-a')).toBeUndefined()
  const signer = generateSigner()
  let n = 0
  const make = async (parents: CID[], big = false) => await encodeBlock({
    v: 1, db: cid.toString(), parents, hlc: { t: Date.now(), c: n++, r: 'r' },
    ops: big ? Array.from({ length: 3000 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${i}`, set: { text: 'y'.repeat(300) } })) : [{ op: 'put', coll: 'c', id: String(n), set: { n } }]
  }, { signer, key, link: linkSigner(key) })
  return { store, dir, db: cid.toString(), manifest, make }
}

describe('KeepStore', () => {
  it('keeps heads and missing parents right whatever the order blocks arrive in, and across a reopen', async () => {
    const { store, dir, db, manifest, make } = await setup()
    const a = await make([])
    const b = await make([a.cid])
    const c = await make([a.cid])
    const d = await make([b.cid, c.cid])
    const check = async (bs: Array<typeof a>) => await Promise.all(bs.map(async x => await checkKeptNode(x.bytes, db, manifest)))
    // d first: its parents are missing, it is the head.
    await store.putBlocks(db, await check([d]))
    let state = await store.state(db)
    expect(state.heads.map(String)).toEqual([d.cid.toString()])
    expect(state.missing.map(String).sort()).toEqual([b.cid.toString(), c.cid.toString()].sort())
    // then b and c together, then a.
    await store.putBlocks(db, await check([c, b]))
    state = await store.state(db)
    expect(state.heads.map(String)).toEqual([d.cid.toString()])
    expect(state.missing.map(String)).toEqual([a.cid.toString()])
    const result = await store.putBlocks(db, await check([a, d]))
    expect('stored' in result && result.stored.map(String).sort()).toEqual([a.cid.toString(), d.cid.toString()].sort())
    state = await store.state(db)
    expect(state).toMatchObject({ kept: true, missing: [], more: false, blocks: 4 })
    expect(await store.has(db, [a.cid.toString(), 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'])).toEqual([true, false])
    const total = store.total
    await store.close()
    const again = await KeepStore.open(dir, resolveKeepLimits())
    try {
      expect(again.total).toEqual(total)
      expect((await again.state(db)).heads.map(String)).toEqual([d.cid.toString()])
      const stored = await again.node(db, b.cid.toString()) as Uint8Array
      expect(Buffer.from(stored).equals(Buffer.from(b.bytes))).toBe(true)
    } finally {
      await again.close()
    }
  })

  it('keeps a chunk only with a block naming it, before or after it', async () => {
    const { store, db, manifest, make } = await setup()
    const big = await make([], true)
    const chunks = big.chunks ?? []
    expect(chunks.length).toBeGreaterThan(0)
    const first = chunks[0]
    // Alone: refused.
    let r = await store.putBlocks(db, [await checkKeptNode(first.bytes, db, manifest)])
    expect('refused' in r && r.refused[0]?.reason).toMatch(/names this chunk/)
    // The block first: its chunks become missing, then are taken.
    await store.putBlocks(db, [await checkKeptNode(big.bytes, db, manifest)])
    expect((await store.state(db)).missing.map(String).sort()).toEqual(chunks.map(c => c.cid.toString()).sort())
    r = await store.putBlocks(db, await Promise.all(chunks.map(async c => await checkKeptNode(c.bytes, db, manifest))))
    expect('stored' in r && r.stored).toHaveLength(chunks.length)
    expect((await store.state(db)).missing).toEqual([])
    await store.close()
  })

  it('a snapshot replaces the one before once all its nodes are in, freeing the old nodes; quotas count them', async () => {
    const { store, db, make, manifest } = await setup()
    const head = await make([])
    await store.putBlocks(db, [await checkKeptNode(head.bytes, db, manifest)])
    const nodes1 = [encode({ v: 1, box: new Uint8Array(100).fill(1) }), encode({ v: 1, box: new Uint8Array(100).fill(2) })]
    const offer = (nodes: Uint8Array[]) => ({ root: cidOf(nodes[0]), w: new Uint8Array(32), s: new Uint8Array(64), heads: [head.cid], nodes: nodes.map(n => cidOf(n)), blocks: 1 })
    expect(await store.offerSnapshot(db, offer(nodes1))).toEqual({ lacking: nodes1.map(n => cidOf(n)) })
    // A node it does not name is refused; its own are taken.
    const stray = encode({ v: 1, box: new Uint8Array(10) })
    const r = await store.putNodes(db, [...nodes1, stray].map(bytes => ({ cid: cidOf(bytes), bytes })))
    expect('refused' in r && r.refused.map(x => x.reason)).toEqual([expect.stringMatching(/not a node/)])
    expect((await store.snapshot(db))?.root.toString()).toBe(cidOf(nodes1[0]).toString())
    const bytesWith1 = store.total.bytes
    const nodes2 = [encode({ v: 1, box: new Uint8Array(50).fill(3) })]
    await store.offerSnapshot(db, offer(nodes2))
    await store.putNodes(db, nodes2.map(bytes => ({ cid: cidOf(bytes), bytes })))
    expect((await store.snapshot(db))?.root.toString()).toBe(cidOf(nodes2[0]).toString())
    expect(store.total.bytes).toBe(bytesWith1 - nodes1.reduce((s, n) => s + n.byteLength, 0) + nodes2[0].byteLength)
    expect(await store.node(db, cidOf(nodes1[0]).toString())).toBeUndefined()
    expect((await store.record(db))?.bytes).toBe(store.total.bytes)
    await store.close()
  })

  it('refuses a write that would pass the total, whole, and dropping a database gives everything back', async () => {
    const { store, db, make, manifest } = await setup({ totalBytes: 2000 })
    const blocks = []
    let parents: CID[] = []
    for (let i = 0; i < 10; i++) { const b = await make(parents); parents = [b.cid]; blocks.push(await checkKeptNode(b.bytes, db, manifest)) }
    const r = await store.putBlocks(db, blocks)
    expect(r).toMatchObject({ error: { code: 'full', message: expect.stringMatching(/2000-byte total/) as unknown } })
    expect((await store.record(db))?.blocks).toBe(0)
    await store.drop(db)
    expect(store.total).toEqual({ databases: 0, bytes: 0 })
    expect(await store.manifest(db)).toBeUndefined()
    const seen = []
    for await (const x of store.databases()) seen.push(x)
    expect(seen).toEqual([])
    await store.close()
  })
})
