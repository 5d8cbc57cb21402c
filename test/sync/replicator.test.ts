import { afterEach, describe, expect, it } from 'vitest'
import { MemoryStorage } from '../../src/store/memory.js'
import { Replica, Replicator, topicOf, encodeHeadsMessage, BLOCKS_PROTOCOL, SNAPSHOT_PROTOCOL } from '../../src/sync/index.js'
import { encodeBlock, generateSigner } from '../../src/crdt/index.js'

const evilSigner = generateSigner()
import { setLogLevel } from '../../src/log.js'
import { DatabaseClosedError } from '../../src/errors.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const running: Replicator[] = []

async function replicaOn (hub: MemoryHub, name: string, options = {}): Promise<Replicator> {
  const replica = await Replica.open(new MemoryStorage(), DB)
  const r = new Replicator(replica, hub.join(name), { republishMs: 100, ...options })
  r.start()
  running.push(r)
  return r
}

async function write (r: Replicator, id: string, set: Record<string, number | string>): Promise<void> {
  const applied = await r.replica.commit([{ op: 'put', coll: 'c', id, set }])
  if (applied !== undefined) await r.publishLocal(applied)
}

const docs = async (r: Replicator): Promise<unknown> => await r.replica.storage.getDocs('c')

afterEach(() => { for (const r of running.splice(0)) r.stop() })

describe('Replicator over an in-memory transport', () => {
  it('two replicas converge on concurrent writes', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    const b = await replicaOn(hub, 'B')
    await write(a, 'x', { v: 1 })
    await write(b, 'y', { v: 2 })
    await eventually(async () => JSON.stringify(await docs(a)) === JSON.stringify(await docs(b)) && (await docs(a) as unknown[]).length === 2, 5000, 'convergence')
    expect(await docs(a)).toEqual([{ _id: 'x', v: 1 }, { _id: 'y', v: 2 }])
  })

  it('a late joiner fetches the whole history by walking parents in batches', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    for (let i = 0; i < 50; i++) await write(a, `d${i}`, { i })
    const b = await replicaOn(hub, 'B', { fetchBatch: 7, snapshotJoin: false })
    await eventually(async () => (await docs(b) as unknown[]).length === 50, 10_000, 'catch-up')
    expect(await b.replica.heads()).toEqual(await a.replica.heads())
    expect(await b.replica.missing()).toEqual([])
    expect((await b.state()).lastSyncedAt).not.toBeNull()
  })

  it('republishes rarely while every peer announced the same heads, and in full again once they differ', async () => {
    const hub = new MemoryHub()
    const rs = [await replicaOn(hub, 'A'), await replicaOn(hub, 'B'), await replicaOn(hub, 'C')]
    let published = 0
    for (const r of rs) {
      const t = r.transport
      const publish = t.publish.bind(t)
      t.publish = async (topic, data) => { published++; await publish(topic, data) }
    }
    const inStep = async (): Promise<boolean> => {
      const heads = await Promise.all(rs.map(async r => JSON.stringify(await r.replica.heads())))
      return heads.every(h => h === heads[0])
    }
    await write(rs[0], 'x', { v: 1 })
    await eventually(inStep, 5000, 'convergence')
    await new Promise(resolve => setTimeout(resolve, 500)) // every replica republishes its new heads once
    published = 0
    await new Promise(resolve => setTimeout(resolve, 2000))
    // 3 replicas × 20 ticks of 100 ms: 60 republications out of step, 6 in step
    expect(published).toBeLessThanOrEqual(24) // half of that, and more, is left to a loaded machine
    // B misses C's next block: C keeps republishing (B never announced its heads) until B has it
    hub.partition(['C'], ['B'])
    await write(rs[2], 'y', { v: 2 })
    await new Promise(resolve => setTimeout(resolve, 200))
    hub.heal()
    await eventually(async () => (await docs(rs[1]) as unknown[]).length === 2, 3000, 'B heals')
    await eventually(inStep, 3000, 'convergence')
  })

  it('converges despite lost messages, thanks to head republication', async () => {
    const hub = new MemoryHub()
    hub.drop = 0.5
    const a = await replicaOn(hub, 'A')
    const b = await replicaOn(hub, 'B')
    const c = await replicaOn(hub, 'C')
    for (let i = 0; i < 10; i++) await write([a, b, c][i % 3], `d${i % 4}`, { i })
    hub.drop = 0
    await eventually(async () => {
      const [da, db, dc] = await Promise.all([docs(a), docs(b), docs(c)])
      return JSON.stringify(da) === JSON.stringify(db) && JSON.stringify(db) === JSON.stringify(dc) && (da as unknown[]).length === 4
    }, 10_000, 'convergence after loss')
  })

  it('heals a partition', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    const b = await replicaOn(hub, 'B')
    hub.partition(['A'], ['B'])
    await write(a, 'x', { side: 'a' })
    await write(b, 'x', { other: 'b' })
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(await docs(a)).toEqual([{ _id: 'x', side: 'a' }])
    hub.heal()
    await eventually(async () => JSON.stringify(await docs(a)) === JSON.stringify(await docs(b)) && JSON.stringify(await docs(a)).includes('other'), 5000, 'heal')
    expect(await docs(a)).toEqual([{ _id: 'x', other: 'b', side: 'a' }])
  })

  it('drops garbage messages, forged blocks and foreign blocks without disturbing replication', async () => {
    setLogLevel('silent')
    try {
      const hub = new MemoryHub()
      const a = await replicaOn(hub, 'A')
      const b = await replicaOn(hub, 'B')
      const evil = hub.join('evil')
      const topic = topicOf(DB)
      await evil.publish(topic, new Uint8Array([1, 2, 3]))
      const foreign = await encodeBlock({ v: 1, db: 'bafyreihiekde7ck57zwp4wcddjir6blyvwzm2qjaqpszd4nzwmwhikwrwi', parents: [], hlc: { t: 1, c: 0, r: 'e' }, ops: [{ op: 'put', coll: 'c', id: 'evil', set: { v: 1 } }] }, { signer: evilSigner })
      await evil.publish(topic, encodeHeadsMessage({ heads: [], blocks: [foreign.bytes, new Uint8Array([0xa1, 0x61])] }))
      // A forged head: the evil peer announces a CID and answers the fetch with other bytes.
      const real = await encodeBlock({ v: 1, db: DB, parents: [], hlc: { t: 1, c: 0, r: 'e' }, ops: [{ op: 'put', coll: 'c', id: 'evil', set: { v: 2 } }] }, { signer: evilSigner })
      const other = await encodeBlock({ v: 1, db: DB, parents: [], hlc: { t: 2, c: 0, r: 'e' }, ops: [{ op: 'put', coll: 'c', id: 'evil', set: { v: 3 } }] }, { signer: evilSigner })
      const { encodeBlocksResponse } = await import('../../src/sync/index.js')
      evil.handle(BLOCKS_PROTOCOL, async () => encodeBlocksResponse({ blocks: [other.bytes, new Uint8Array([9])] }))
      await evil.publish(topic, encodeHeadsMessage({ heads: [real.cid], blocks: [] }))
      await write(a, 'x', { v: 1 })
      await eventually(async () => (await docs(b) as unknown[]).length === 1, 5000, 'good write to arrive')
      await new Promise(resolve => setTimeout(resolve, 300))
      expect(await docs(a)).toEqual([{ _id: 'x', v: 1 }])
      expect(await docs(b)).toEqual([{ _id: 'x', v: 1 }])
    } finally {
      setLogLevel('warn')
    }
  })
})

describe('Replicator: large blocks and catch-up', () => {
  it('replicates a call of 10,000 documents (a block with chunks) and applies it whole', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    const b = await replicaOn(hub, 'B')
    const ops = Array.from({ length: 10_000 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${String(i).padStart(5, '0')}`, set: { text: 'lorem ipsum '.repeat(30), i } }))
    const applied = await a.replica.commit(ops)
    expect(applied?.changes.length).toBe(10_000)
    await a.publishLocal(applied as NonNullable<typeof applied>)
    // B never sees part of the call: either none of its documents or all of them.
    const counts: number[] = []
    await eventually(async () => {
      const n = (await docs(b) as unknown[]).length
      counts.push(n)
      return n === 10_000
    }, 20_000, 'the large block')
    expect(counts.every(n => n === 0 || n === 10_000)).toBe(true)
    expect(await b.replica.heads()).toEqual(await a.replica.heads())
  })

  it('a late joiner gets a 100-block chain in one request, thanks to ancestors pushed with the answer', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    for (let i = 0; i < 100; i++) await write(a, `d${i}`, { i })
    const b = await replicaOn(hub, 'B', { snapshotJoin: false }) // a replay, not a snapshot join
    let requests = 0
    const transportB = hub.peers.get('B') as NonNullable<ReturnType<typeof hub.peers.get>>
    const original = transportB.request.bind(transportB)
    transportB.request = async (...args) => { requests++; return await original(...args) }
    await eventually(async () => (await docs(b) as unknown[]).length === 100, 10_000, 'catch-up')
    expect(requests).toBeLessThanOrEqual(2)
  })
})

describe('Replicator: stopping under a fetch in flight', () => {
  it('a fetch round that meets the closed storage after a stop ends quietly, with no unhandled rejection', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    await write(a, 'x', { v: 1 })
    const b = await replicaOn(hub, 'B', { snapshotJoin: false })
    // B's block request to A is answered only once B has stopped and its storage is closed (as
    // `Database.close` does: the replicator stops, then the storage closes under the round).
    let release = (): void => {}
    const held = new Promise<void>(resolve => { release = resolve })
    let asked = false
    const request = b.transport.request.bind(b.transport)
    b.transport.request = async (peer, protocol, data, options) => {
      const answer = await request(peer, protocol, data, options)
      if (protocol === BLOCKS_PROTOCOL) { asked = true; await held }
      return answer
    }
    const rejections: unknown[] = []
    const onRejection = (reason: unknown): void => { rejections.push(reason) }
    process.on('unhandledRejection', onRejection)
    try {
      await eventually(() => asked, 5000, 'B asks A for blocks')
      b.stop()
      const storage = b.replica.storage as unknown as Record<string, unknown>
      for (const name of ['getMissing', 'hasBlock', 'getBlocks', 'getHeads', 'getMeta', 'countBlocks']) {
        storage[name] = async () => { throw new DatabaseClosedError('db') }
      }
      release()
      await new Promise(resolve => setTimeout(resolve, 100))
      expect(rejections).toEqual([])
    } finally {
      process.off('unhandledRejection', onRejection)
    }
  })
})

describe('Replicator: a joiner and a peer that does not answer', () => {
  it('a peer that never answers snapshot asks holds a joiner\'s blocks back for 5 s at most, not the 30 s timeout', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A', { republishMs: 3000 })
    await write(a, 'x', { v: 1 })
    // C (asked before A: it holds no wants) takes snapshot asks and never answers them, as a peer
    // still starting or behind a dying connection may.
    const c = hub.join('C')
    const handle = c.handle.bind(c)
    c.handle = (protocol, handler) => handle(protocol, protocol === SNAPSHOT_PROTOCOL ? async () => await new Promise<Uint8Array>(() => {}) : handler)
    const cr = new Replicator(await Replica.open(new MemoryStorage(), DB), c, { republishMs: 3000 })
    cr.start()
    running.push(cr)
    const started = Date.now()
    const b = await replicaOn(hub, 'B', { republishMs: 3000 }) // the default snapshot timeout: 30 s
    await eventually(async () => (await docs(b) as unknown[]).length === 1, 12_000, 'B gets x from A')
    expect(Date.now() - started).toBeLessThan(12_000)
  }, 20_000)
})
