/**
 * Hostile and wrong clocks: a block's HLC can neither disable another replica's writes (now or
 * after a reopen) nor keep it ahead of real time for longer than the skew bound; a block too far
 * ahead is held back, not lost, and every replica converges once its clock catches up.
 */
import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { InvalidBlockError } from '../../src/errors.js'
import { type CID, type Signer, cidOf, encode, encodeBlock, generateSigner, readBlockHeader } from '../../src/crdt/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { Replica, Replicator } from '../../src/sync/index.js'
import { setLogLevel } from '../../src/log.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const DAY = 24 * 60 * 60 * 1000
const running: Replicator[] = []
afterEach(() => {
  for (const r of running.splice(0)) r.stop()
  setLogLevel('warn')
})

/**
 * A signed block whose HLC is taken as given (`encodeBlock` refuses out-of-bound HLCs): what a
 * hostile writer, or a replica of an older version, can send.
 */
async function rawBlock (signer: Signer, t: number, c: number, set: Record<string, number>, parents: CID[] = []): Promise<{ cid: CID, bytes: Uint8Array }> {
  const body = encode({ db: DB, parents, hlc: [t, c, 'evil'], ops: [{ op: 'put', coll: 'c', id: 'x', set }] })
  const bytes = encode({ v: 1, body, w: signer.publicKey, s: await signer.sign(body) })
  return { cid: cidOf(bytes), bytes }
}

const state = async (r: Replica): Promise<string> => JSON.stringify([await r.heads(), await r.missing(), await r.storage.getDocs('c')])

describe('clock bounds', () => {
  it('a block with an out-of-bound HLC is refused, and the receiver keeps writing', async () => {
    setLogLevel('silent')
    const signer = generateSigner()
    const huge = fc.constantFrom(2 ** 53 - 1, 8.64e15 + 1, 2 ** 32, Date.now() + 2 * DAY)
    await fc.assert(fc.asyncProperty(huge, huge, async (t, c) => {
      const victim = await Replica.open(new MemoryStorage(), DB)
      await victim.commit([{ op: 'put', coll: 'c', id: 'x', set: { v: 0 } }])
      const before = await state(victim)
      const poison = await rawBlock(signer, t, c, { v: 666 })
      await expect(victim.receive(poison.bytes)).rejects.toThrow(InvalidBlockError)
      expect(await state(victim)).toBe(before)
      // The victim's clock is untouched: it writes, and its write wins as the latest.
      const own = await victim.commit([{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      expect(own?.applied).toBe(true)
      expect(await victim.storage.getDocs('c')).toEqual([{ _id: 'x', v: 1 }])
      expect(readBlockHeader(own?.bytes as Uint8Array).hlc.t).toBeLessThanOrEqual(Date.now())
    }), { numRuns: 16 })
  })

  it('a block stored before the bounds existed cannot stop writes after a reopen', async () => {
    const storage = new MemoryStorage()
    const poison = await rawBlock(generateSigner(), 2 ** 53 - 1, 2 ** 53 - 1, { v: 666 })
    // Store it as an older replica would have: applied, a head.
    await storage.applyBlock({ cid: poison.cid.toString(), bytes: poison.bytes, parents: [], keys: [], colls: [], dropped: [], merge: () => ({ docs: [], colls: [] }) })
    const replica = await Replica.open(storage, DB)
    const own = await replica.commit([{ op: 'put', coll: 'c', id: 'y', set: { v: 1 } }])
    expect(own?.applied).toBe(true)
    const { hlc } = readBlockHeader(own?.bytes as Uint8Array)
    // Its block stays acceptable to peers: no more than the bound ahead of real time.
    expect(hlc.t).toBeLessThanOrEqual(Date.now() + DAY)
    expect(await replica.storage.getDocs('c')).toEqual([{ _id: 'y', v: 1 }])
  })

  it('after a reopen, the first write is stamped after the stored heads even when the wall clock went back', async () => {
    const storage = new MemoryStorage()
    const t0 = Date.now()
    const before = await Replica.open(storage, DB, { now: () => t0 + 60_000 })
    const first = await before.commit([{ op: 'put', coll: 'c', id: 'a', set: { v: 1 } }])
    const reopened = await Replica.open(storage, DB, { now: () => t0 })
    const second = await reopened.commit([{ op: 'put', coll: 'c', id: 'a', set: { v: 2 } }])
    const h1 = readBlockHeader(first?.bytes as Uint8Array).hlc
    const h2 = readBlockHeader(second?.bytes as Uint8Array).hlc
    expect(h2.t > h1.t || (h2.t === h1.t && h2.c > h1.c)).toBe(true)
    expect(await reopened.storage.getDocs('c')).toEqual([{ _id: 'a', v: 2 }])
  })

  it('a snapshot whose head is too far ahead is not installed', async () => {
    const signer = generateSigner()
    const ahead = await encodeBlock({ v: 1, db: DB, parents: [], hlc: { t: Date.now() + 2 * DAY, c: 0, r: 'w' }, ops: [{ op: 'coll', coll: 'c' }] }, { signer })
    const replica = await Replica.open(new MemoryStorage(), DB)
    await expect(replica.installSnapshot({ root: ahead.cid.toString(), docs: [], colls: [{ coll: 'c', state: {} }], covered: [ahead.cid.toString()], heads: [ahead] }))
      .rejects.toThrow(InvalidBlockError)
    expect(await replica.heads()).toEqual([])
  })

  it('a writer whose clock runs days ahead keeps writing; its blocks are held by others until their clocks catch up, then everyone converges', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    let skew = 0
    const fast = await Replica.open(new MemoryStorage(), DB, { now: () => Date.now() + 2 * DAY })
    const slow = await Replica.open(new MemoryStorage(), DB, { now: () => Date.now() + skew })
    const a = new Replicator(fast, hub.join('A'), { republishMs: 50 })
    const b = new Replicator(slow, hub.join('B'), { republishMs: 50 })
    running.push(a, b)
    a.start()
    b.start()
    const write = async (r: Replicator, id: string, v: number): Promise<void> => {
      const applied = await r.replica.commit([{ op: 'put', coll: 'c', id, set: { v } }])
      if (applied !== undefined) await r.publishLocal(applied)
    }
    await write(a, 'ahead', 1)
    await write(b, 'honest', 2)
    // A takes B's block (it is behind A's clock, not ahead); B holds A's block back.
    await eventually(async () => (await fast.storage.getDocs('c')).length === 2, 5000, 'A has both')
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(await slow.storage.getDocs('c')).toEqual([{ _id: 'honest', v: 2 }])
    // B keeps writing meanwhile.
    await write(b, 'honest', 3)
    // B's clock reaches A's: the held block arrives by republication, and both converge.
    skew = 2 * DAY
    await eventually(async () => await state(fast) === await state(slow), 5000, 'convergence')
    expect(await slow.storage.getDocs('c')).toEqual([{ _id: 'ahead', v: 1 }, { _id: 'honest', v: 3 }])
  })
})
