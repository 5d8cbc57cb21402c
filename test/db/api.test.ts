/** Every method of the database and collection API and its return shape, on both storages. */
import { describe, expect, it } from 'vitest'
import {
  KiteDB, CollectionExistsError, CollectionNotFoundError, DatabaseClosedError, DatabaseExistsError, NotFoundError,
  ValidationError, type Collection, type Database
} from '../../src/index.js'
import { storageKinds } from '../helpers/storages.js'

const tick = async (ms = 20): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

describe.each(storageKinds)('API on %s storage', (_kind, makeProvider) => {
  const open = async (): Promise<Database> => await KiteDB.init('db', { storage: makeProvider() })

  describe('database level', () => {
    it('create throws DatabaseExistsError for an existing name; listDatabases and drop', async () => {
      const storage = makeProvider()
      const db = await KiteDB.create('one', { storage })
      await expect(KiteDB.create('one', { storage })).rejects.toBeInstanceOf(DatabaseExistsError)
      await (await db.initCollection('c')).insertOne({ _id: 'x' })
      await KiteDB.init('two', { storage })
      expect((await KiteDB.listDatabases({ storage })).map(d => d.name)).toEqual(['one', 'two'])
      await KiteDB.drop('one', { storage })
      expect(db.isClosed).toBe(true)
      expect((await KiteDB.listDatabases({ storage })).map(d => d.name)).toEqual(['two'])
      // Re-creating the name gives a new, empty database.
      const again = await KiteDB.create('one', { storage })
      expect(again.address).not.toBe(db.address)
      expect(await again.listCollections()).toEqual([])
      await expect(KiteDB.drop('nope', { storage })).rejects.toBeInstanceOf(NotFoundError)
    })

    it('drop by address removes the local data', async () => {
      const storage = makeProvider()
      const db = await KiteDB.init('x', { storage })
      await (await db.initCollection('c')).insertOne({ _id: 'a' })
      const address = db.address
      await KiteDB.drop(address, { storage })
      const reopened = await KiteDB.open(address, { storage })
      expect(await reopened.listCollections()).toEqual([])
    })

    it('initCollection, createCollection, openCollection, collection, listCollections, dropCollection', async () => {
      const db = await open()
      const a = await db.initCollection('a')
      expect(await db.initCollection('a')).toBe(a)
      expect(await db.listCollections()).toEqual(['a']) // created, though empty
      await expect(db.createCollection('a')).rejects.toBeInstanceOf(CollectionExistsError)
      const b = await db.createCollection('b')
      await expect(db.openCollection('zzz')).rejects.toBeInstanceOf(CollectionNotFoundError)
      expect(await db.openCollection('b')).toBe(b)
      await db.openCollection('c', { create: true })
      expect(db.collection('b')).toBe(b)
      expect(() => db.collection('never')).toThrow(CollectionNotFoundError)
      expect(await db.listCollections()).toEqual(['a', 'b', 'c'])
      await b.insert([{ _id: '1' }, { _id: '2' }])
      await db.dropCollection('b')
      expect(await db.listCollections()).toEqual(['a', 'c'])
      expect(await b.find()).toEqual([])
      await expect(db.dropCollection('b')).rejects.toBeInstanceOf(CollectionNotFoundError)
      // Writing after a drop brings the collection back with only the new documents.
      await b.insertOne({ _id: '3' })
      expect(await b.find()).toEqual([{ _id: '3' }])
      expect(await db.listCollections()).toEqual(['a', 'b', 'c'])
    })

    it('initCollection declares indexes and reports build progress', async () => {
      const db = await open()
      const c = await db.initCollection('people')
      await c.insert(Array.from({ length: 2500 }, (_, i) => ({ age: i % 90 })))
      const progress: Array<[string, number, number]> = []
      await db.initCollection('people', { indexes: ['age', ['age', 'name']], onIndexProgress: (name, p) => { progress.push([name, p.done, p.total]) } })
      expect((await c.listIndexes()).map(i => [i.name, i.ready])).toEqual([['age', true], ['age+name', true]])
      expect(progress.filter(p => p[0] === 'age').map(p => p[1])).toEqual([0, 1000, 2000, 2500])
      expect(progress.every(p => p[2] === 2500)).toBe(true)
      await expect(db.initCollection('people', { indexes: ['$bad'] })).rejects.toBeInstanceOf(ValidationError)
    })

    it('every call on a closed database throws DatabaseClosedError', async () => {
      const db = await open()
      const c = await db.initCollection('c')
      await db.close()
      for (const call of [
        async () => await c.insertOne({}), async () => await c.find(), async () => await c.updateMany({}, { $set: { a: 1 } }),
        async () => await c.deleteMany({}), async () => await c.countDocuments(), async () => await db.listCollections(),
        async () => await db.initCollection('d'), async () => await db.getHeadHash(), async () => c.observe({}, () => {})
      ]) await expect(call()).rejects.toBeInstanceOf(DatabaseClosedError)
    })
  })

  describe('collection methods', () => {
    const seed = async (): Promise<Collection> => {
      const c = await (await open()).initCollection('people')
      await c.insert([
        { _id: 'a', name: 'ann', age: 31, city: 'Oslo', tags: ['x', 'y'], n: 1 },
        { _id: 'b', name: 'bob', age: 25, city: 'Rome', tags: ['y'], n: 2 },
        { _id: 'c', name: 'cid', age: 40, city: 'Oslo', tags: [], n: 3 }
      ])
      return c
    }

    it('findByIdAndUpdate / findByIdAndDelete: the document, or undefined', async () => {
      const c = await seed()
      expect(await c.findByIdAndUpdate('a', { $inc: { n: 10 } })).toMatchObject({ _id: 'a', n: 11 })
      expect(await c.findByIdAndUpdate('zz', { $inc: { n: 1 } })).toBeUndefined()
      expect(await c.findByIdAndDelete('b')).toMatchObject({ _id: 'b', name: 'bob' })
      expect(await c.findByIdAndDelete('b')).toBeUndefined()
      expect(await c.countDocuments()).toBe(2)
    })

    it('findOneAndUpdate returns after (default) or before; upserts; null when none', async () => {
      const c = await seed()
      expect(await c.findOneAndUpdate({ name: 'ann' }, { $set: { age: 32 } })).toMatchObject({ _id: 'a', age: 32 })
      expect(await c.findOneAndUpdate({ name: 'ann' }, { $set: { age: 33 } }, { returnDocument: 'before' })).toMatchObject({ _id: 'a', age: 32 })
      expect(await c.findOneAndUpdate({ name: 'zed' }, { $set: { age: 1 } })).toBeNull()
      expect(await c.findOneAndUpdate({ name: 'zed' }, { $set: { age: 1 } }, { upsert: true })).toMatchObject({ name: 'zed', age: 1 })
      expect(await c.countDocuments({ name: 'zed' })).toBe(1)
    })

    it('findOneAndDelete returns the deleted document or null', async () => {
      const c = await seed()
      expect(await c.findOneAndDelete({ city: 'Oslo' })).toMatchObject({ _id: 'a' })
      expect(await c.findOneAndDelete({ city: 'Paris' })).toBeNull()
    })

    it('update changes the first match, or all with multi; updateMany all, as one block', async () => {
      const c = await seed()
      expect((await c.update({ city: 'Oslo' }, { $inc: { n: 1 } })).map(d => d._id)).toEqual(['a'])
      expect((await c.update({ city: 'Oslo' }, { $inc: { n: 1 } }, { multi: true })).map(d => [d._id, d.n])).toEqual([['a', 3], ['c', 4]])
      expect(await c.update({ city: 'Paris' }, { $inc: { n: 1 } })).toEqual([])
      expect((await c.update({ city: 'Paris' }, { $set: { n: 9 } }, { upsert: true }))[0]).toMatchObject({ city: 'Paris', n: 9 })
      const before = await c.getHeadHash()
      const changed = await c.updateMany({ age: { $lt: 35 } }, { $set: { young: true } })
      expect(changed.map(d => d._id)).toEqual(['a', 'b'])
      expect(await c.getHeadHash()).not.toBe(before)
      expect(await c.updateMany({ age: { $gt: 100 } }, { $set: { old: true } })).toEqual([])
      expect(await c.countDocuments({ young: true })).toBe(2)
    })

    it('updateOne that changes nothing writes no block', async () => {
      const c = await seed()
      const head = await c.getHeadHash()
      expect(await c.updateOne({ _id: 'a' }, { $set: { age: 31 } })).toMatchObject({ _id: 'a', age: 31 })
      expect(await c.getHeadHash()).toBe(head)
    })

    it('deleteMany returns the deleted documents ([] when none)', async () => {
      const c = await seed()
      expect((await c.deleteMany({ city: 'Oslo' })).map(d => d._id)).toEqual(['a', 'c'])
      expect(await c.deleteMany({ city: 'Oslo' })).toEqual([])
      expect((await c.find()).map(d => d._id)).toEqual(['b'])
    })

    it('distinct: unique values in first-seen order, dotted keys, arrays unwound', async () => {
      const c = await seed()
      await c.insertOne({ _id: 'd', city: 'Rome', address: { zip: '001' }, tags: ['z', 'x'] })
      expect(await c.distinct('city')).toEqual(['Oslo', 'Rome'])
      expect(await c.distinct('tags')).toEqual(['x', 'y', 'z'])
      expect(await c.distinct('address.zip')).toEqual(['001'])
      expect(await c.distinct('city', { age: { $gt: 30 } })).toEqual(['Oslo'])
      expect(await c.distinct('nothing')).toEqual([])
    })

    it('countDocuments with and without a query', async () => {
      const c = await seed()
      expect(await c.countDocuments()).toBe(3)
      expect(await c.countDocuments({ city: 'Oslo' })).toBe(2)
      expect(await c.countDocuments({ city: 'Nowhere' })).toBe(0)
    })

    it('export gives plain JSON documents; import inserts or replaces, with progress', async () => {
      const c = await seed()
      const exported = await c.export({ query: { city: 'Oslo' } })
      expect(exported.map(d => d._id)).toEqual(['a', 'c'])
      expect(JSON.parse(JSON.stringify(exported))).toEqual(exported)
      const other = await (await open()).initCollection('people')
      const progress: number[] = []
      const docs = [...await c.export(), ...Array.from({ length: 1200 }, (_, i) => ({ _id: `gen${i}`, i }))]
      expect(await other.import(docs, { onProgress: p => { progress.push(p.done) } })).toBe(1203)
      expect(progress).toEqual([500, 1000, 1203])
      expect(await other.countDocuments()).toBe(1203)
      // Importing again replaces: fields missing from the imported document are removed.
      await other.import([{ _id: 'a', name: 'ANN' }])
      expect(await other.findById('a')).toEqual({ _id: 'a', name: 'ANN' })
      await expect(other.import([{ ok: 1 }, { bad: () => 1 } as never])).rejects.toBeInstanceOf(ValidationError)
      expect(await other.countDocuments()).toBe(1203)
    })

    it('getHeadHash names the state; syncFromHeadHash resolves at once for a state already here', async () => {
      const c = await seed()
      const h1 = await c.getHeadHash()
      expect(h1).toMatch(/^bafyrei/)
      await c.insertOne({ _id: 'z' })
      const h2 = await c.getHeadHash()
      expect(h2).not.toBe(h1)
      await c.syncFromHeadHash(h1)
      await c.syncFromHeadHash(h2)
      await expect(c.syncFromHeadHash('nope')).rejects.toBeInstanceOf(ValidationError)
    })

    it('observe: callback with the sorted window, async iterator, and observable', async () => {
      const c = await seed()
      const seen: string[][] = []
      const stop = c.observe({ age: { $gte: 30 } }, docs => { seen.push(docs.map(d => d._id)) }, { sort: { age: -1 }, limit: 2, projection: { name: 1 } })
      await tick()
      await c.insertOne({ _id: 'd', age: 50 })
      await tick()
      await c.updateOne({ _id: 'a' }, { $set: { age: 60 } })
      await tick()
      await c.insertOne({ _id: 'e', age: 20 }) // outside the window: no call
      await tick()
      stop()
      await c.insertOne({ _id: 'f', age: 99 })
      await tick()
      expect(seen).toEqual([['c', 'a'], ['d', 'c'], ['a', 'd']])

      const live = c.observe({ city: 'Rome' })
      const it = live[Symbol.asyncIterator]()
      expect((await it.next()).value?.map(d => d._id)).toEqual(['b'])
      await c.insertOne({ _id: 'g', city: 'Rome' })
      expect((await it.next()).value?.map(d => d._id)).toEqual(['b', 'g'])
      await it.return?.()

      const values: number[] = []
      let completed = false
      const sub = c.observe({}).subscribe({ next: docs => values.push(docs.length), complete: () => { completed = true } })
      await tick()
      await c.deleteOne({ _id: 'g' })
      await tick()
      sub.unsubscribe()
      expect(sub.closed).toBe(true)
      expect(completed).toBe(true)
      expect(values).toEqual([7, 6])
      const observableKey = Object.getOwnPropertySymbols(Object.getPrototypeOf(live)).find(s => s.description?.includes('observable'))
      expect(observableKey).toBeDefined()
    })

    it('observe sees a dropped collection become empty', async () => {
      const db = await open()
      const c = await db.initCollection('x')
      await c.insert([{ _id: '1' }, { _id: '2' }])
      const seen: number[] = []
      const stop = c.observe({}, docs => { seen.push(docs.length) })
      await tick()
      await db.dropCollection('x')
      await tick()
      stop()
      expect(seen).toEqual([2, 0])
    })
  })
})
