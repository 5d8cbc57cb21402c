/** Every query and update operator docs/api.md lists, with MongoDB semantics (through mingo). */
import { describe, expect, it } from 'vitest'
import { KiteDB, MemoryStorageProvider, ValidationError, type Collection } from '../../src/index.js'

async function people (): Promise<Collection> {
  const c = await (await KiteDB.init('ops', { storage: new MemoryStorageProvider() })).initCollection('people')
  await c.insert([
    { _id: 'a', name: 'Ann', age: 31, tags: ['x', 'y'], addr: { city: 'Oslo' }, scores: [{ s: 5 }, { s: 9 }], n: 10 },
    { _id: 'b', name: 'bob', age: 25, tags: ['y'], addr: { city: 'Rome' }, scores: [{ s: 1 }], n: 'ten' },
    { _id: 'c', name: 'Cid', age: 40, tags: [], addr: { city: 'Oslo', zip: '0150' }, scores: [], n: null },
    { _id: 'd', name: 'dee', tags: ['x', 'y', 'z'] }
  ])
  return c
}

const ids = async (c: Collection, q: Record<string, unknown>): Promise<string[]> => (await c.find(q)).map(d => d._id)

describe('query operators', () => {
  const cases: Array<[string, Record<string, unknown>, string[]]> = [
    ['$eq', { age: { $eq: 31 } }, ['a']],
    ['$ne', { age: { $ne: 31 } }, ['b', 'c', 'd']],
    ['$gt', { age: { $gt: 30 } }, ['a', 'c']],
    ['$gte', { age: { $gte: 31 } }, ['a', 'c']],
    ['$lt', { age: { $lt: 31 } }, ['b']],
    ['$lte', { age: { $lte: 31 } }, ['a', 'b']],
    ['$in', { age: { $in: [25, 40, 99] } }, ['b', 'c']],
    ['$nin', { age: { $nin: [25, 40] } }, ['a', 'd']],
    ['$and', { $and: [{ age: { $gt: 20 } }, { 'addr.city': 'Oslo' }] }, ['a', 'c']],
    ['$or', { $or: [{ age: 25 }, { name: 'dee' }] }, ['b', 'd']],
    ['$nor', { $nor: [{ age: 25 }, { name: 'dee' }] }, ['a', 'c']],
    ['$not', { age: { $not: { $gt: 30 } } }, ['b', 'd']],
    ['$exists', { age: { $exists: false } }, ['d']],
    ['$type', { n: { $type: 'string' } }, ['b']],
    ['$regex', { name: { $regex: '^[a-c]', $options: 'i' } }, ['a', 'b', 'c']],
    ['RegExp value', { name: /^[A-Z]/ }, ['a', 'c']],
    ['$elemMatch', { scores: { $elemMatch: { s: { $gt: 6 } } } }, ['a']],
    ['$size', { tags: { $size: 2 } }, ['a']],
    ['$all', { tags: { $all: ['x', 'y'] } }, ['a', 'd']],
    ['$mod', { age: { $mod: [5, 0] } }, ['b', 'c']],
    ['dotted path', { 'addr.zip': '0150' }, ['c']],
    ['array element equality', { tags: 'z' }, ['d']],
    ['null matches missing', { age: null }, ['d']]
  ]
  for (const [name, query, expected] of cases) {
    it(name, async () => { expect(await ids(await people(), query)).toEqual(expected) })
  }

  it('rejects an unknown operator with ValidationError', async () => {
    await expect((await people()).find({ age: { $near: 3 } })).rejects.toBeInstanceOf(ValidationError)
  })

  it('sorts dotted paths and mixed types in MongoDB type order, with skip and limit', async () => {
    const c = await people()
    expect((await c.find({}, undefined, { sort: { 'addr.city': 1, _id: -1 } })).map(d => d._id)).toEqual(['d', 'c', 'a', 'b'])
    // null/missing < numbers < strings
    expect((await c.find({}, undefined, { sort: { n: 1 } })).map(d => d._id)).toEqual(['c', 'd', 'a', 'b'])
    expect((await c.find({}, undefined, { sort: { n: -1 }, skip: 1, limit: 2 })).map(d => d._id)).toEqual(['a', 'c'])
  })
})

describe('update operators', () => {
  const cases: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
    ['$set', { $set: { name: 'ANN', 'addr.zip': '0001' } }, { name: 'ANN', addr: { city: 'Oslo', zip: '0001' } }],
    ['$unset', { $unset: { tags: '' } }, { tags: undefined }],
    ['$inc', { $inc: { age: 2, fresh: 1 } }, { age: 33, fresh: 1 }],
    ['$mul', { $mul: { age: 2 } }, { age: 62 }],
    ['$min', { $min: { age: 20 } }, { age: 20 }],
    ['$max', { $max: { age: 20 } }, { age: 31 }],
    ['$rename', { $rename: { name: 'fullName' } }, { name: undefined, fullName: 'Ann' }],
    ['$push', { $push: { tags: 'w' } }, { tags: ['x', 'y', 'w'] }],
    ['$push $each $sort $slice', { $push: { tags: { $each: ['b', 'a'], $sort: 1, $slice: 3 } } }, { tags: ['a', 'b', 'x'] }],
    ['$push $position', { $push: { tags: { $each: ['first'], $position: 0 } } }, { tags: ['first', 'x', 'y'] }],
    ['$pull', { $pull: { scores: { s: { $gt: 6 } } } }, { scores: [{ s: 5 }] }],
    ['$pullAll', { $pullAll: { tags: ['x', 'q'] } }, { tags: ['y'] }],
    ['$addToSet', { $addToSet: { tags: { $each: ['y', 'new'] } } }, { tags: ['x', 'y', 'new'] }],
    ['$pop', { $pop: { tags: -1 } }, { tags: ['y'] }]
  ]
  for (const [name, update, expected] of cases) {
    it(name, async () => {
      const c = await people()
      const updated = await c.updateOne({ _id: 'a' }, update) as Record<string, unknown>
      for (const [k, v] of Object.entries(expected)) expect(updated[k], k).toEqual(v)
      expect(await c.findById('a')).toEqual(updated)
    })
  }

  it('updateMany of several documents (one mingo call) equals updating each alone, for every operator above', async () => {
    const updatable = ['a', 'c'] // 'b' and 'd' lack fields some operators need
    for (const [name, update] of cases) {
      const together = await people()
      const alone = await people()
      await together.updateMany({ _id: { $in: updatable } }, update)
      for (const id of updatable) await alone.updateOne({ _id: id }, update)
      expect(await together.find({}), name).toEqual(await alone.find({}))
    }
  })

  it('documents updated together do not share the values taken from the update', async () => {
    const c = await people()
    const docs = await c.updateMany({}, { $set: { meta: { seen: [1] } }, $push: { tags: { k: 1 } } }) as Array<Record<string, unknown>>
    expect(docs).toHaveLength(4)
    for (let i = 1; i < docs.length; i++) {
      expect(docs[i].meta).toEqual(docs[0].meta)
      expect(docs[i].meta).not.toBe(docs[0].meta)
      expect((docs[i].tags as unknown[]).at(-1)).not.toBe((docs[0].tags as unknown[]).at(-1))
    }
  })

  it('$currentDate stores an ISO 8601 string (documents are JSON-like)', async () => {
    const c = await people()
    const before = Date.now()
    const updated = await c.updateOne({ _id: 'a' }, { $currentDate: { seen: true } })
    expect(typeof updated?.seen).toBe('string')
    expect(Date.parse(updated?.seen as string)).toBeGreaterThanOrEqual(before - 1000)
  })

  it('a bad update is rejected even when nothing matches, and nothing is written', async () => {
    const c = await people()
    const head = await c.getHeadHash()
    await expect(c.updateMany({ age: 999 }, { $inc: { age: 'x' } })).rejects.toBeInstanceOf(ValidationError)
    await expect(c.updateOne({ _id: 'a' }, { $inc: { name: 1 } })).rejects.toBeInstanceOf(ValidationError)
    expect(await c.getHeadHash()).toBe(head)
  })
})
