/**
 * Documents the app receives are its own: changing them (as apps do, e.g. a view model edited in
 * place) changes nothing stored, on IndexedDB, whose write path keeps states and rows in memory
 * between writes.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { DexieStorageProvider, KiteDB, type Database, type Collection } from '../../src/index.js'

type Item = { _id: string, nested?: { n: number }, tags?: string[], [k: string]: unknown }

const open: Database[] = []
afterEach(async () => { for (const db of open.splice(0)) await db.close() })

async function collection (): Promise<Collection<Item>> {
  const db = await KiteDB.init('own', { storage: new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange, channel: `own-${Math.random()}` }) })
  open.push(db)
  return await db.initCollection<Item>('items')
}

describe('documents handed to the app', () => {
  it('changed in an observe callback or an update event, they do not leak into the next write', async () => {
    const items = await collection()
    let seen: Item[] = []
    items.observe({}, docs => { seen = docs })
    let eventDocs: Array<Item | null> = []
    open[0].on('update', changes => { eventDocs = changes.flatMap(c => [c.before as Item | null, c.after as Item | null]) })
    await items.insertOne({ _id: 'a', nested: { n: 1 }, tags: ['x'] })
    await expect.poll(() => seen.length).toBe(1)
    seen[0].nested = { n: 99 }
    ;(seen[0].tags as string[]).push('from observe')
    for (const d of eventDocs) if (d !== null) (d.nested as { n: number }).n = 98
    await items.updateOne({ _id: 'a' }, { $set: { y: 1 } })
    expect(await items.findById('a')).toEqual({ _id: 'a', nested: { n: 1 }, tags: ['x'], y: 1 })
    for (const d of eventDocs) if (d !== null) (d.tags as string[]).push('from an event')
    await items.updateOne({ _id: 'a' }, { $set: { y: 2 } })
    expect(await items.findById('a')).toEqual({ _id: 'a', nested: { n: 1 }, tags: ['x'], y: 2 })
  })
})
