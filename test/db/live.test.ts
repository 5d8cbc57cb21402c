/** Live queries and database events with remote changes: two databases over an in-memory transport. */
import { describe, expect, it } from 'vitest'
import { KiteDB, MemoryStorageProvider, type Database, type PeerInfo, type SyncProgress } from '../../src/index.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

async function pair (): Promise<{ a: Database, b: Database, hub: MemoryHub }> {
  const hub = new MemoryHub()
  const replication = { republishMs: 50 }
  const a = await KiteDB.init('live', { encrypt: false, access: { write: ['*'] }, storage: new MemoryStorageProvider(), transport: hub.join('A'), replication })
  const b = await KiteDB.open(a.address, { storage: new MemoryStorageProvider(), transport: hub.join('B'), replication })
  return { a, b, hub }
}

describe('live queries with remote changes', () => {
  it('observe on one replica follows inserts, updates, deletes and a drop made on another, in its sort window', async () => {
    const { a, b } = await pair()
    const ta = await a.initCollection('todos')
    const tb = await b.initCollection('todos')
    const seen: string[][] = []
    const stop = tb.observe({ done: false }, docs => { seen.push(docs.map(d => d.title as string)) }, { sort: { rank: 1 }, limit: 2 })
    await ta.insert([{ title: 'x', rank: 3, done: false }, { title: 'y', rank: 1, done: false }, { title: 'z', rank: 2, done: false }])
    await eventually(() => JSON.stringify(seen.at(-1)) === JSON.stringify(['y', 'z']), 5000, 'remote insert')
    await ta.updateOne({ title: 'y' }, { $set: { done: true } })
    await eventually(() => JSON.stringify(seen.at(-1)) === JSON.stringify(['z', 'x']), 5000, 'remote update')
    await ta.deleteOne({ title: 'z' })
    await eventually(() => JSON.stringify(seen.at(-1)) === JSON.stringify(['x']), 5000, 'remote delete')
    await a.dropCollection('todos')
    await eventually(() => JSON.stringify(seen.at(-1)) === JSON.stringify([]), 5000, 'remote drop')
    stop()
    expect(await b.listCollections()).toEqual([])
    // Never a stale or repeated result set: consecutive calls differ.
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toEqual(seen[i - 1])
  })

  it('a collection created on one replica is listed on the other', async () => {
    const { a, b } = await pair()
    await a.createCollection('empty')
    await eventually(async () => (await b.listCollections()).includes('empty'), 5000, 'create to replicate')
  })

  it('concurrent increments on two replicas are both counted', async () => {
    const { a, b, hub } = await pair()
    const ca = await a.initCollection('c')
    await ca.insertOne({ _id: 'n', count: 0 })
    const cb = await b.initCollection('c')
    await eventually(async () => (await cb.findById('n')) !== undefined, 5000, 'seed')
    hub.partition(['A'], ['B'])
    await ca.updateOne({ _id: 'n' }, { $inc: { count: 1 } })
    await cb.updateOne({ _id: 'n' }, { $inc: { count: 10 } })
    hub.heal()
    await eventually(async () => (await ca.findById('n'))?.count === 11 && (await cb.findById('n'))?.count === 11, 5000, 'both increments')
  })

  it('emits peer:join, peer:leave and sync:progress', async () => {
    const hub = new MemoryHub()
    const replication = { republishMs: 50, peerTtlMs: 300 }
    const a = await KiteDB.init('ev', { encrypt: false, access: { write: ['*'] }, storage: new MemoryStorageProvider(), transport: hub.join('A'), replication })
    const ca = await a.initCollection('c')
    for (let i = 0; i < 30; i++) await ca.insertOne({ i })
    const joined: PeerInfo[] = []
    const left: string[] = []
    a.on('peer:join', p => { joined.push(p) })
    a.on('peer:leave', id => { left.push(id) })
    // B is cut off from A until its listener is on, so it cannot catch up before (a loaded machine did).
    hub.partition(['A'], ['B'])
    const b = await KiteDB.open(a.address, { storage: new MemoryStorageProvider(), transport: hub.join('B'), replication: { ...replication, fetchBatch: 5 } })
    const progress: SyncProgress[] = []
    b.on('sync:progress', p => { progress.push(p) })
    hub.heal()
    await eventually(async () => await (await b.initCollection('c')).countDocuments() === 30, 5000, 'catch-up')
    await eventually(() => joined.some(p => p.id === 'B'), 5000, 'peer:join')
    // The last event can trail the documents: it is sent after the missing blocks are counted.
    await eventually(() => progress.at(-1)?.missing === 0, 5000, 'the last sync:progress')
    expect(progress.at(-1)).toMatchObject({ fetched: 31, missing: 0, documents: 30 })
    expect(progress.every((p, i) => i === 0 || p.fetched >= progress[i - 1].fetched)).toBe(true)
    await b.close()
    hub.leave('B')
    await eventually(() => left.includes('B'), 5000, 'peer:leave')
  })
})

describe('incremental live queries', () => {
  it('a live query without skip or limit always equals find, through random writes, deletes and drops', async () => {
    const fc = (await import('fast-check')).default
    const op = fc.oneof(
      fc.record({ kind: fc.constant('put' as const), id: fc.integer({ min: 0, max: 7 }), n: fc.integer({ min: 0, max: 9 }), tag: fc.constantFrom('a', 'b') }),
      fc.record({ kind: fc.constant('del' as const), id: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('inc' as const), n: fc.integer({ min: -3, max: 3 }) }),
      fc.record({ kind: fc.constant('drop' as const) })
    )
    await fc.assert(fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 8 }), async batches => {
      const db = await KiteDB.init('incremental', { storage: new MemoryStorageProvider() })
      let c = await db.initCollection('c')
      const query = { n: { $gte: 3 } }
      const options = { sort: { tag: 1 as const, n: -1 as const }, projection: { n: 1 as const, tag: 1 as const } }
      let seen: unknown[] | undefined
      let stop = c.observe(query, docs => { seen = docs }, options)
      for (const batch of batches) {
        for (const o of batch) {
          if (o.kind === 'put') await c.updateOne({ _id: `d${o.id}` }, { $set: { n: o.n, tag: o.tag } }, { upsert: true })
          else if (o.kind === 'del') await c.deleteOne({ _id: `d${o.id}` })
          else if (o.kind === 'inc') await c.updateMany({}, { $inc: { n: o.n } })
          else {
            stop()
            await db.dropCollection('c')
            c = await db.initCollection('c')
            stop = c.observe(query, docs => { seen = docs }, options)
          }
        }
        const expected = JSON.stringify(await c.find(query, options.projection, { sort: options.sort }))
        await eventually(() => JSON.stringify(seen) === expected, 2000, 'the live result to equal find')
      }
      stop()
      await db.close()
    }), { numRuns: 40 })
  })
})
