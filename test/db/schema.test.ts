/**
 * Collection schemas: local writes that do not fit throw `SchemaError` naming the path and write
 * nothing; documents written by a replica without the schema are listed by `invalid()`.
 */
import { describe, expect, it } from 'vitest'
import { KiteDB, MemoryStorageProvider, SchemaError, ValidationError } from '../../src/index.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

const schema = {
  type: 'object',
  properties: { title: { type: 'string', minLength: 1 }, done: { type: 'boolean' }, tags: { type: 'array', items: { type: 'string' } } },
  required: ['title', 'done']
}

describe('collection schemas', () => {
  it('local inserts, updates, upserts and imports that do not fit throw SchemaError with the path, and write nothing', async () => {
    const db = await KiteDB.init('schema', { storage: new MemoryStorageProvider() })
    const todos = await db.initCollection<{ title: string, done: boolean, tags?: string[] }>('todos', { schema })
    await todos.insertOne({ _id: 'ok', title: 'fits', done: false })
    const heads = (await db.syncState()).heads
    const attempts: Array<[string, () => Promise<unknown>, string]> = [
      ['insert without a required field', async () => await todos.insert([{ _id: 'a', title: 'x', done: false }, { _id: 'b', title: 'y' } as never]), '/done'],
      ['insert of a wrong type', async () => await todos.insertOne({ title: 'x', done: 'yes' } as never), '/done'],
      ['update making a field invalid', async () => await todos.updateOne({ _id: 'ok' }, { $set: { title: '' } }), '/title'],
      ['update of an item of an array', async () => await todos.updateMany({}, { $push: { tags: 3 as never } }), '/tags/0'],
      ['upsert seeding an invalid document', async () => await todos.updateOne({ _id: 'new' }, { $set: { title: 'x' } }, { upsert: true }), '/done'],
      ['import', async () => await todos.import([{ _id: 'i', title: 7, done: true } as never]), '/title']
    ]
    for (const [what, attempt, path] of attempts) {
      const err = await attempt().then(() => undefined, (e: unknown) => e)
      expect(err, what).toBeInstanceOf(SchemaError)
      expect(err, what).toBeInstanceOf(ValidationError)
      expect((err as SchemaError).problems.map(p => p.path), what).toContain(path)
    }
    expect((await db.syncState()).heads).toEqual(heads) // nothing was written
    expect(await todos.find()).toEqual([{ _id: 'ok', title: 'fits', done: false }])
    await db.close()
  })

  it('an invalid schema is refused before the collection is created', async () => {
    const db = await KiteDB.init('bad-schema', { storage: new MemoryStorageProvider() })
    await expect(db.initCollection('c', { schema: { type: 'no such type' } })).rejects.toBeInstanceOf(ValidationError)
    expect(await db.listCollections()).toEqual([])
    await db.close()
  })

  it('documents a replica without the schema wrote arrive, and invalid() lists them with why', async () => {
    const hub = new MemoryHub()
    const a = await KiteDB.init('mixed', { storage: new MemoryStorageProvider(), transport: hub.join('a'), encrypt: false, access: { write: ['*'] } })
    const b = await KiteDB.open(a.address, { storage: new MemoryStorageProvider(), transport: hub.join('b') })
    const mine = await a.initCollection('todos', { schema })
    const theirs = await b.initCollection('todos') // no schema here
    await mine.insertOne({ _id: 'good', title: 'fits', done: true })
    await theirs.insertOne({ _id: 'bad', title: 42 })
    await eventually(async () => (await mine.find()).length === 2, 5000, 'B\'s document to arrive at A')
    expect(await mine.invalid()).toEqual([{ doc: { _id: 'bad', title: 42 }, problems: expect.arrayContaining([{ path: '/title', message: 'must be string' }, { path: '/done', message: "must have required property 'done'" }]) as unknown }])
    expect(await theirs.invalid()).toEqual([])
    await a.close()
    await b.close()
  })
})
