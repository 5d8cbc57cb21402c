/**
 * Tabs in step: two `Database` objects over one IndexedDB (two tabs of one origin) see each other's
 * changes — written in either, or received by either from the network — in their live queries and
 * `update` events. Here the "tabs" are two providers over one fake-indexeddb factory, talking over
 * Node's BroadcastChannel, as two tabs' providers over one origin's IndexedDB do.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { DexieStorageProvider, KiteDB, MemoryStorageProvider, type Database } from '../../src/index.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

const open: Database[] = []
afterEach(async () => { for (const db of open.splice(0)) await db.close() })

/** Two tabs' providers: one IndexedDB, each its own provider object (its own page). */
function origin (channel = `origin-${Math.random()}`): () => DexieStorageProvider {
  const indexedDB = new IDBFactory()
  return () => new DexieStorageProvider({ indexedDB, IDBKeyRange, channel })
}

const ids = (docs: Array<{ _id: string }>): string[] => docs.map(d => d._id).sort()

describe('tabs of one origin', () => {
  it('a write in one tab reaches the other tab\'s live query and update event', async () => {
    const tab = origin()
    const a = await KiteDB.init('list', { storage: tab() })
    open.push(a)
    const b = await KiteDB.open(a.address, { storage: tab() })
    open.push(b)
    const ta = await a.initCollection('todos')
    const tb = await b.initCollection('todos')
    const seen: string[][] = []
    const updates: string[] = []
    tb.observe({}, docs => { seen.push(ids(docs)) })
    b.on('update', changes => { updates.push(...changes.map(c => `${c.id}:${c.after === null ? 'deleted' : 'set'}`)) })
    await ta.insertOne({ _id: 'x', title: 'from tab A' })
    await eventually(async () => seen.at(-1)?.includes('x') === true, 5000, 'tab B to see the insert')
    await ta.deleteOne({ _id: 'x' })
    await eventually(async () => seen.at(-1)?.length === 0, 5000, 'tab B to see the delete')
    expect(updates).toEqual(['x:set', 'x:deleted'])
    // and back: B writes on top of what A wrote, with a clock past A's, so its write wins
    await ta.insertOne({ _id: 'y', v: 1 })
    await eventually(async () => (await tb.findOne({ _id: 'y' }))?.v === 1, 5000, 'B to read it')
    await tb.updateOne({ _id: 'y' }, { $set: { v: 2 } })
    await eventually(async () => (await ta.findOne({ _id: 'y' }))?.v === 2, 5000, 'A to see B\'s write')
    expect((await a.syncState()).heads).toEqual((await b.syncState()).heads)
  })

  it('a block one tab receives from the network reaches the other tab, which already finds it stored', async () => {
    const net = new MemoryHub()
    const tab = origin()
    const remote = await KiteDB.init('shared', { storage: new MemoryStorageProvider(), transport: net.join('remote'), encrypt: false, access: { write: ['*'] } })
    open.push(remote)
    // both tabs replicate (each runs its own network node)
    const a = await KiteDB.open(remote.address, { storage: tab(), transport: net.join('tab-a') })
    open.push(a)
    const b = await KiteDB.open(remote.address, { storage: tab(), transport: net.join('tab-b') })
    open.push(b)
    const seenA: string[][] = []
    const seenB: string[][] = []
    ;(await a.openCollection('todos', { create: true })).observe({}, docs => { seenA.push(ids(docs)) })
    ;(await b.openCollection('todos', { create: true })).observe({}, docs => { seenB.push(ids(docs)) })
    const tr = await remote.initCollection('todos')
    for (const id of ['1', '2', '3']) await tr.insertOne({ _id: id })
    await eventually(async () => seenA.at(-1)?.length === 3 && seenB.at(-1)?.length === 3, 10_000, 'both tabs to show all three')
  })

  it('storage private to a page (memory) tells no other page', async () => {
    const memory = new MemoryStorageProvider()
    expect((memory as { channel?: string }).channel).toBeUndefined()
    expect(new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange }).channel).toBeUndefined()
    expect(new DexieStorageProvider().channel).toBe('indexeddb')
  })
})
