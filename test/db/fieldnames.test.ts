/**
 * Field names: every name the API accepts round-trips — insert, update operators, find,
 * projection, sort, indexes, replication (block replay and snapshot join) and both storages — and
 * the names it refuses (the property names of `Object.prototype`, at any depth) are refused with a
 * typed error and a reason, locally and in blocks from peers, without disturbing the replica.
 */
import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { InvalidBlockError, ValidationError } from '../../src/errors.js'
import { KiteDB, type AnyDoc, type Database, type JsonValue } from '../../src/index.js'
import { type Signer, cidOf, encode, generateSigner, isValidFieldName, jsonEqual, RESERVED_KEYS } from '../../src/crdt/index.js'
import { MemoryStorageProvider } from '../../src/store/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { Replica, Replicator, encodeHeadsMessage, topicOf } from '../../src/sync/index.js'
import { setLogLevel } from '../../src/log.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'
import { storageKinds } from '../helpers/storages.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
/** Every property name of Object.prototype in this engine, `__proto__` included. */
const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype)
const open: Database[] = []
afterEach(async () => {
  for (const db of open.splice(0)) await db.close()
  setLogLevel('warn')
})

/** `{[name]: value}` as an own property, `__proto__` included (as `JSON.parse` makes it). */
function withField (name: string, value: JsonValue, rest: Record<string, JsonValue> = {}): Record<string, JsonValue> {
  const o: Record<string, JsonValue> = { ...rest }
  Object.defineProperty(o, name, { value, enumerable: true, configurable: true, writable: true })
  return o
}

/** A signed block with the given ops, not checked by `encodeBlock`: what a hostile peer can send. */
async function rawBlock (signer: Signer, ops: unknown[]): Promise<{ cid: ReturnType<typeof cidOf>, bytes: Uint8Array }> {
  const body = encode({ db: DB, parents: [], hlc: [Date.now(), 0, 'evil'], ops })
  const bytes = encode({ v: 1, body, w: signer.publicKey, s: await signer.sign(body) })
  return { cid: cidOf(bytes), bytes }
}

describe('refused field names', () => {
  it('the reserved set is exactly the property names of Object.prototype', () => {
    expect([...RESERVED_KEYS].sort()).toEqual([...PROTO_NAMES].sort())
  })

  it('a remote block writing one, at the top or nested, is refused with a typed error and changes nothing', async () => {
    const signer = generateSigner()
    for (const name of PROTO_NAMES) {
      const replica = await Replica.open(new MemoryStorage(), DB)
      await replica.commit([{ op: 'put', coll: 'c', id: 'x', set: { ok: 1 } }])
      const before = JSON.stringify([await replica.heads(), await replica.missing(), await replica.storage.getDocs('c')])
      for (const op of [
        { op: 'put', coll: 'c', id: 'x', set: withField(name, 'evil') },
        { op: 'put', coll: 'c', id: 'x', set: { nested: withField(name, 'evil') } },
        { op: 'put', coll: 'c', id: 'x', inc: withField(name, 1) },
        { op: 'put', coll: 'c', id: 'x', unset: [name] }
      ]) {
        const block = await rawBlock(signer, [op])
        await expect(replica.receive(block.bytes), `${name}: ${JSON.stringify(Object.keys(op))}`).rejects.toBeInstanceOf(InvalidBlockError)
      }
      expect(JSON.stringify([await replica.heads(), await replica.missing(), await replica.storage.getDocs('c')])).toBe(before)
      expect((await replica.commit([{ op: 'put', coll: 'c', id: 'x', set: { ok: 2 } }]))?.applied).toBe(true)
    }
  })

  it('a replicator fetching such blocks logs and drops them, and keeps replicating (no unhandled rejection)', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const victim = new Replicator(await Replica.open(new MemoryStorage(), DB), hub.join('victim'), { republishMs: 50 })
    const honest = new Replicator(await Replica.open(new MemoryStorage(), DB), hub.join('honest'), { republishMs: 50 })
    victim.start()
    honest.start()
    try {
      // The hostile peer serves its blocks when asked, and announces them heads-only and inline.
      const evil = hub.join('evil')
      const blocks = await Promise.all(PROTO_NAMES.map(async name => await rawBlock(generateSigner(), [{ op: 'put', coll: 'c', id: name, set: withField(name, 1) }])))
      evil.handle('/kitedb/1/blocks', async () => (await import('../../src/sync/index.js')).encodeBlocksResponse({ blocks: blocks.map(b => b.bytes) }))
      await evil.publish(topicOf(DB), encodeHeadsMessage({ heads: blocks.map(b => b.cid), blocks: [] }))
      for (const b of blocks) await evil.publish(topicOf(DB), encodeHeadsMessage({ heads: [b.cid], blocks: [b.bytes] }))
      const applied = await honest.replica.commit([{ op: 'put', coll: 'c', id: 'h', set: { v: 1 } }])
      if (applied !== undefined) await honest.publishLocal(applied)
      await eventually(async () => (await victim.replica.storage.getDocs('c')).length === 1, 5000, 'the honest block')
      await new Promise(resolve => setTimeout(resolve, 200))
      expect(await victim.replica.storage.getDocs('c')).toEqual([{ _id: 'h', v: 1 }])
    } finally {
      victim.stop()
      honest.stop()
    }
  })

  it('the API refuses them with a ValidationError giving the reason: documents, nested values, updates, queries, projections, sorts, indexes', async () => {
    const db = await KiteDB.init(`names-${Math.random()}`, { storage: new MemoryStorageProvider() })
    open.push(db)
    const c = await db.initCollection('c')
    await c.insertOne({ _id: 'a', n: 1, tags: ['x'] })
    const refused = async (what: string, call: () => Promise<unknown>): Promise<void> => {
      const err = await call().then(() => undefined, (e: unknown) => e)
      expect(err, what).toBeInstanceOf(ValidationError)
      expect((err as Error).message, what).toMatch(/Object\.prototype/)
    }
    for (const name of PROTO_NAMES) {
      await refused(`insert ${name}`, async () => await c.insertOne(withField(name, 'x')))
      await refused(`insert JSON ${name}`, async () => await c.insertOne(JSON.parse(`{"${name}": "x"}`) as AnyDoc))
      await refused(`insert nested ${name}`, async () => await c.insertOne({ deep: { list: [withField(name, 1)] } }))
      for (const op of ['$set', '$inc', '$push', '$addToSet', '$max', '$min', '$mul', '$unset', '$currentDate', '$pop', '$pull']) {
        await refused(`${op} ${name}`, async () => await c.updateOne({ _id: 'a' }, { [op]: withField(name, op === '$currentDate' ? true : 1) }))
        await refused(`${op} nested ${name}`, async () => await c.updateOne({ _id: 'a' }, { [op]: { [`n2.${name}`]: op === '$currentDate' ? true : 1 } }))
      }
      await refused(`$rename to ${name}`, async () => await c.updateOne({ _id: 'a' }, { $rename: { n: name } }))
      await refused(`$set nested value ${name}`, async () => await c.updateOne({ _id: 'a' }, { $set: { n3: withField(name, 1) } }))
      await refused(`query ${name}`, async () => await c.find(withField(name, 'x')))
      await refused(`query JSON ${name}`, async () => await c.find(JSON.parse(`{"${name}": {"a": 5}}`) as AnyDoc))
      await refused(`query path ${name}`, async () => await c.find({ [`n.${name}`]: 1 }))
      await refused(`projection ${name}`, async () => await c.find({}, withField(name, 1) as never))
      await refused(`sort ${name}`, async () => await c.find({}, undefined, { sort: withField(name, 1) as never }))
      await refused(`index ${name}`, async () => await c.createIndex(name))
      await refused(`distinct ${name}`, async () => await c.distinct(name))
    }
    expect(await c.find()).toEqual([{ _id: 'a', n: 1, tags: ['x'] }])
  })
})

/** Names to try: random strings and ones that mean something to JavaScript without being reserved. */
const names = fc.oneof(
  fc.string({ minLength: 1, maxLength: 10 }),
  fc.constantFrom('then', 'toJSON', 'prototype', 'length', 'name', 'call', 'apply', 'bind', '__proto', 'proto__', '0', '1e3', ' ', 'ñ', '💥', '\u2028', 'hasOwn', 'caller', 'arguments')
).filter(isValidFieldName)

describe('accepted field names round-trip', () => {
  for (const [kind, provider] of storageKinds) {
    it(`through inserts, updates, queries, projections, sorts and indexes (${kind})`, async () => {
      await fc.assert(fc.asyncProperty(fc.uniqueArray(names, { minLength: 1, maxLength: 4 }), async fields => {
        const db = await KiteDB.init(`rt-${Math.random()}`, { storage: provider() })
        open.push(db)
        const c = await db.initCollection('c')
        const doc = Object.fromEntries(fields.map((f, i) => [f, i]))
        await c.insertOne({ _id: 'a', ...doc, nested: Object.fromEntries(fields.map(f => [f, f])) })
        await c.insertOne({ _id: 'b', ...Object.fromEntries(fields.map((f, i) => [f, i + 10])) })
        const first = fields[0]
        await c.createIndex(first)
        expect(await c.findById('a')).toEqual({ _id: 'a', ...doc, nested: Object.fromEntries(fields.map(f => [f, f])) })
        expect((await c.find({ [first]: 0 })).map(d => d._id)).toEqual(['a'])
        // (a path part of digits may index an array: the planner leaves such paths to a scan)
        expect((await c.explain({ [first]: 0 })).strategy).toBe(/^\d+$/.test(first) ? 'scan' : 'index')
        expect((await c.find({ [`nested.${first}`]: first })).map(d => d._id)).toEqual(['a'])
        expect(await c.find({ _id: 'a' }, { [first]: 1, _id: 0 })).toEqual([{ [first]: 0 }])
        expect((await c.find({}, undefined, { sort: { [first]: -1 } })).map(d => d._id)).toEqual(['b', 'a'])
        await c.updateOne({ _id: 'a' }, { $inc: { [first]: 5 }, $set: { [`nested.${first}`]: 'changed' } })
        await c.updateOne({ _id: 'b' }, { $unset: { [first]: '' } })
        expect((await c.findById('a'))?.[first]).toBe(5)
        expect(((await c.findById('a'))?.nested as Record<string, unknown>)[first]).toBe('changed')
        expect(Object.prototype.hasOwnProperty.call(await c.findById('b'), first)).toBe(false)
        expect((await c.find({ [first]: 5 })).map(d => d._id)).toEqual(['a'])
        await c.updateOne({ _id: 'a' }, { $rename: { [first]: 'renamed' } })
        expect((await c.findById('a'))?.renamed).toBe(5)
        await db.close()
      }), { numRuns: kind === 'memory' ? 40 : 10 })
    }, 120_000)
  }

  it('through replication: block replay and snapshot join', async () => {
    await fc.assert(fc.asyncProperty(fc.uniqueArray(names, { minLength: 1, maxLength: 4 }), async fields => {
      const hub = new MemoryHub()
      const replication = { republishMs: 50, snapshotMinBlocks: 1, snapshotWarmMs: Infinity }
      const a = await KiteDB.init(`rep-${Math.random()}`, { encrypt: false, storage: new MemoryStorageProvider(), transport: hub.join('A'), replication })
      open.push(a)
      const c = await a.initCollection('c')
      const doc = { _id: 'a', ...Object.fromEntries(fields.map((f, i) => [f, i])), nested: Object.fromEntries(fields.map(f => [f, { [f]: [f] }])) }
      await c.insertOne(doc)
      await c.updateOne({ _id: 'a' }, { $inc: Object.fromEntries(fields.map(f => [f, 1])) })
      const expected = await c.find()
      const replay = await KiteDB.open(a.address, { storage: new MemoryStorageProvider(), transport: hub.join('B'), replication: { ...replication, snapshotJoin: false } })
      const joiner = await KiteDB.open(a.address, { storage: new MemoryStorageProvider(), transport: hub.join('C'), replication })
      open.push(replay, joiner)
      for (const db of [replay, joiner]) {
        const cc = await db.initCollection('c')
        await eventually(async () => jsonEqual(await cc.find() as never, expected as never), 5000, 'replication')
      }
      expect((await joiner.syncState()).snapshot).not.toBeNull()
      expect((await replay.syncState()).snapshot).toBeNull()
      for (const db of [a, replay, joiner]) await db.close()
    }), { numRuns: 8 })
  }, 120_000)
})
