import { describe, expect, it } from 'vitest'
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import {
  KiteDB, DatabaseClosedError, DuplicateKeyError, InvalidAddressError, ValidationError, KiteError,
  MemoryStorageProvider, DexieStorageProvider, parseShareLink
} from '../../src/index.js'

async function fresh (): Promise<Awaited<ReturnType<typeof KiteDB.init>>> {
  return await KiteDB.init('test', { storage: new MemoryStorageProvider() })
}

describe('KiteDB and Database', () => {
  it('init creates a database with a /kite/<cid> address and reopens it by name', async () => {
    const storage = new MemoryStorageProvider()
    const db = await KiteDB.init('todos', { storage })
    expect(db.address).toMatch(/^\/kite\/bafy[a-z2-7]+$/)
    expect(db.name).toBe('todos')
    expect(db.networkStatus).toBe('local')
    const todos = await db.initCollection('todos')
    await todos.insertOne({ _id: 'a', title: 'x' })
    await db.close()
    const again = await KiteDB.init('todos', { storage })
    expect(again.address).toBe(db.address)
    expect(await (await again.initCollection('todos')).findById('a')).toEqual({ _id: 'a', title: 'x' })
    expect(await KiteDB.listDatabases({ storage })).toEqual([{ name: 'todos', address: db.address }])
    // A different device creating "todos" gets a different database.
    expect((await KiteDB.init('todos', { storage: new MemoryStorageProvider() })).address).not.toBe(db.address)
  })

  it('open joins by address; the same address reopens the same local replica', async () => {
    const storage = new MemoryStorageProvider()
    const db = await KiteDB.init('x', { storage })
    await (await db.initCollection('c')).insertOne({ _id: '1' })
    const joined = await KiteDB.open(db.address, { storage })
    expect(await (await joined.initCollection('c')).find()).toEqual([{ _id: '1' }])
    await expect(KiteDB.open('/kite/not-a-cid', { storage })).rejects.toBeInstanceOf(InvalidAddressError)
  })

  it('persists in IndexedDB across close and reopen', async () => {
    const storage = new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange })
    const db = await KiteDB.init('todos', { storage })
    await (await db.initCollection('todos')).insert([{ title: 'a' }, { title: 'b' }])
    await db.close()
    const again = await KiteDB.init('todos', { storage })
    expect(again.address).toBe(db.address)
    expect((await (await again.initCollection('todos')).find({}, { _id: 0 })).map(d => d.title)).toEqual(['a', 'b'])
  })

  it('rejects bad names and options with ValidationError', async () => {
    await expect(KiteDB.init('', { storage: 'memory' })).rejects.toBeInstanceOf(ValidationError)
    await expect(KiteDB.init('x', { storage: 'memory', relays: ['not a multiaddr'] })).rejects.toBeInstanceOf(ValidationError)
    await expect(KiteDB.init('x', { storage: 'memory', relays: ['/ip4/127.0.0.1/tcp/1/ws'] })).rejects.toThrow(/p2p/)
    await expect(KiteDB.init('x', { storage: 'nope' as 'memory' })).rejects.toBeInstanceOf(ValidationError)
    const db = await fresh()
    await expect(db.initCollection('')).rejects.toBeInstanceOf(ValidationError)
    await expect(db.initCollection('a$b')).rejects.toBeInstanceOf(ValidationError)
  })

  it('share links carry the address, the key (of an encrypted database, the default) and relays', async () => {
    const db = await fresh()
    const link = db.shareLink('https://example.test/app/?x=1#old')
    expect(link.startsWith(`https://example.test/app/?x=1#db=${db.address}`)).toBe(true)
    expect(parseShareLink(link)).toEqual({ address: db.address, relays: [], key: expect.stringMatching(/^[\w-]{43}$/) as unknown })
    const plain = await KiteDB.init('plain', { storage: new MemoryStorageProvider(), encrypt: false })
    expect(parseShareLink(plain.shareLink('https://example.test/'))).toEqual({ address: plain.address, relays: [] })
    // the short form: the same address and key, in one base32 fragment
    const short = db.shareLink('https://example.test/app/#old', { short: true })
    expect(short).toMatch(/^https:\/\/example\.test\/app\/#E[A-Z2-7]+$/)
    expect(parseShareLink(short)).toEqual(parseShareLink(link))
  })

  it('lists collections, and a closed database throws DatabaseClosedError', async () => {
    const db = await fresh()
    const c = await db.initCollection('b')
    await (await db.initCollection('a')).insertOne({})
    expect(await db.listCollections()).toEqual(['a', 'b'])
    await db.close()
    await db.close() // idempotent
    await expect(c.find()).rejects.toBeInstanceOf(DatabaseClosedError)
    await expect(db.initCollection('z')).rejects.toBeInstanceOf(DatabaseClosedError)
    expect(() => db.shareLink('http://x/')).toThrow(DatabaseClosedError)
  })
})

describe('Collection', () => {
  it('insertOne keeps a caller _id or generates a 24-hex time-ordered one', async () => {
    const c = await (await fresh()).initCollection('c')
    expect(await c.insertOne({ _id: 'mine', a: 1 })).toEqual({ _id: 'mine', a: 1 })
    const gen = await c.insertOne({ a: 2 })
    const gen2 = await c.insertOne({ a: 3 })
    expect(gen._id).toMatch(/^[0-9a-f]{24}$/)
    expect(gen2._id > gen._id).toBe(true)
  })

  it('insert writes all documents or none; duplicates throw DuplicateKeyError', async () => {
    const c = await (await fresh()).initCollection('c')
    const out = await c.insert([{ _id: 'a', n: 1 }, { _id: 'b', n: 2 }])
    expect(out).toEqual([{ _id: 'a', n: 1 }, { _id: 'b', n: 2 }])
    await expect(c.insert([{ _id: 'c' }, { _id: 'a' }])).rejects.toBeInstanceOf(DuplicateKeyError)
    await expect(c.insert([{ _id: 'd' }, { _id: 'd' }])).rejects.toBeInstanceOf(DuplicateKeyError)
    expect((await c.find()).map(d => d._id)).toEqual(['a', 'b'])
    expect(await c.insert([])).toEqual([])
  })

  it('validates documents: a rejected call writes nothing', async () => {
    const c = await (await fresh()).initCollection('c')
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const bad: unknown[] = [
      null, [], 'x', new Date(), { f: () => 1 }, { u: undefined }, { n: Number.NaN }, { n: Infinity },
      cyclic, { _id: '' }, { _id: 5 }, { $x: 1 }, { 'a.b': 1 }, { d: new Date() }, { big: 'x'.repeat(2 * 1024 * 1024) }
    ]
    for (const doc of bad) {
      const err = await c.insertOne(doc as never).catch((e: unknown) => e)
      expect(err, JSON.stringify(String(doc))).toBeInstanceOf(ValidationError)
      expect((err as KiteError).code).toBe('ERR_VALIDATION')
    }
    expect(await c.find()).toEqual([])
    // The caller's object is copied, not kept.
    const doc = { _id: 'k', tags: ['a'] }
    await c.insertOne(doc)
    doc.tags.push('b')
    expect(await c.findById('k')).toEqual({ _id: 'k', tags: ['a'] })
  })

  it('find supports Mongo queries, projection, sort, skip and limit', async () => {
    const c = await (await fresh()).initCollection('c')
    await c.insert([
      { _id: '1', name: 'ann', age: 31, tags: ['a', 'b'], addr: { city: 'Oslo' } },
      { _id: '2', name: 'bob', age: 25, tags: ['b'], addr: { city: 'Rome' } },
      { _id: '3', name: 'cid', age: 40, tags: [], addr: { city: 'Oslo' } }
    ])
    expect((await c.find({ age: { $gt: 30 } })).map(d => d._id)).toEqual(['1', '3'])
    expect((await c.find({ 'addr.city': 'Oslo', tags: 'a' })).map(d => d._id)).toEqual(['1'])
    expect((await c.find({ $or: [{ name: /^b/ }, { tags: { $size: 0 } }] })).map(d => d._id)).toEqual(['2', '3'])
    expect(await c.find({ age: { $gt: 30 } }, { name: 1, _id: 0 })).toEqual([{ name: 'ann' }, { name: 'cid' }])
    expect((await c.find({}, undefined, { sort: { age: -1 }, skip: 1, limit: 1 })).map(d => d._id)).toEqual(['1'])
    expect(await c.find({ name: 'zed' })).toEqual([])
    expect(await c.findOne({ name: 'zed' })).toBeNull()
    expect((await c.findOne({ age: { $lt: 30 } }))?._id).toBe('2')
    expect(await c.findById('nope')).toBeUndefined()
    await expect(c.find({ age: { $bogus: 1 } })).rejects.toBeInstanceOf(ValidationError)
  })

  it('updateOne applies update operators and returns the updated document or null', async () => {
    const c = await (await fresh()).initCollection('c')
    await c.insertOne({ _id: 'a', n: 1, tags: ['x'], o: { p: 1, q: 2 }, gone: true })
    expect(await c.updateOne({ _id: 'a' }, { $set: { title: 't', 'o.p': 5 }, $inc: { n: 2 }, $push: { tags: 'y' }, $unset: { gone: '' } }))
      .toEqual({ _id: 'a', n: 3, tags: ['x', 'y'], o: { p: 5, q: 2 }, title: 't' })
    expect(await c.findById('a')).toEqual({ _id: 'a', n: 3, tags: ['x', 'y'], o: { p: 5, q: 2 }, title: 't' })
    expect(await c.updateOne({ _id: 'zzz' }, { $set: { a: 1 } })).toBeNull()
    // @ts-expect-error a replacement document is not an update (types catch it; so does validation)
    await expect(c.updateOne({ _id: 'a' }, { title: 'replace' })).rejects.toBeInstanceOf(ValidationError)
    await expect(c.updateOne({ _id: 'a' }, { $set: { _id: 'b' } })).rejects.toBeInstanceOf(ValidationError)
    // @ts-expect-error unknown operator
    await expect(c.updateOne({ _id: 'a' }, { $bogus: { x: 1 } })).rejects.toBeInstanceOf(ValidationError)
    const upserted = await c.updateOne({ name: 'new' }, { $set: { n: 1 } }, { upsert: true })
    expect(upserted).toMatchObject({ name: 'new', n: 1 })
    expect(await c.findOne({ name: 'new' })).toEqual(upserted)
  })

  it('deleteOne returns the deleted document or null', async () => {
    const c = await (await fresh()).initCollection('c')
    await c.insert([{ _id: 'a', k: 1 }, { _id: 'b', k: 1 }])
    expect(await c.deleteOne({ k: 1 })).toEqual({ _id: 'a', k: 1 })
    expect(await c.deleteOne({ k: 9 })).toBeNull()
    expect(await c.find()).toEqual([{ _id: 'b', k: 1 }])
    // A deleted _id can be inserted again.
    await c.insertOne({ _id: 'a', k: 2 })
    expect(await c.findById('a')).toEqual({ _id: 'a', k: 2 })
  })

  it('observe calls back with the sorted result set now and after every change, until unsubscribed', async () => {
    const c = await (await fresh()).initCollection('c')
    await c.insertOne({ _id: 'a', n: 2 })
    const calls: string[][] = []
    const stop = c.observe({ n: { $gte: 1 } }, docs => { calls.push(docs.map(d => d._id)) }, { sort: { n: 1 } })
    const settle = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 20)) }
    await settle()
    await c.insertOne({ _id: 'b', n: 1 })
    await settle()
    await c.insertOne({ _id: 'z', n: 0 }) // does not match: no call
    await settle()
    await c.updateOne({ _id: 'b' }, { $set: { n: 3 } })
    await settle()
    await c.deleteOne({ _id: 'a' })
    await settle()
    stop()
    await c.insertOne({ _id: 'c', n: 5 })
    await settle()
    expect(calls).toEqual([['a'], ['b', 'a'], ['a', 'b'], ['b']])
  })
})
