/**
 * Queries run no code, refuse odd keys with typed errors, and match regular expressions in linear
 * time wherever a query or update can hold one (strings other peers wrote are the subjects).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ValidationError } from '../../src/errors.js'
import { KiteDB, type Collection, type Database, type LooseFilter } from '../../src/index.js'
import { MemoryStorageProvider } from '../../src/store/index.js'
import { MAX_REGEX_LENGTH, linearRegExp } from '../../src/db/query.js'

let db: Database
let c: Collection
beforeEach(async () => {
  db = await KiteDB.init(`q-${Math.random()}`, { storage: new MemoryStorageProvider() })
  c = await db.initCollection('c')
  await c.insert([{ _id: 'a', s: 'a'.repeat(5000) + 'b', arr: ['a'.repeat(5000) + 'b', 'x'], objs: [{ t: 'a'.repeat(5000) + 'b' }, { t: 'aaa' }] }, { _id: 'b', s: 'aaa', arr: ['aaa'], objs: [] }])
})
afterEach(async () => { await db.close() })

const refused = async (call: () => Promise<unknown>, reason: RegExp): Promise<void> => {
  const err = await call().then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ValidationError)
  expect((err as Error).message).toMatch(reason)
}

describe('no code runs', () => {
  it('$where, $function and $accumulator are refused, and what they hold never runs', async () => {
    let ran = false
    const fn = function (): boolean { ran = true; return true }
    await refused(async () => await c.find({ $where: fn }), /runs JavaScript/)
    await refused(async () => await c.find({ $where: 'this.s.length > 0' }), /runs JavaScript/)
    await refused(async () => await c.find({ $expr: { $function: { body: fn, args: [], lang: 'js' } } }), /runs JavaScript/)
    await refused(async () => await c.find({ $and: [{ $where: fn }] }), /runs JavaScript/)
    await refused(async () => await c.find({ s: { $elemMatch: { $where: fn } } }), /runs JavaScript/)
    await refused(async () => await c.find({ s: fn }), /function/)
    await refused(async () => await c.updateMany({ $where: fn }, { $set: { x: 1 } }), /runs JavaScript/)
    await refused(async () => await c.deleteMany({ $where: fn }), /runs JavaScript/)
    expect(() => c.observe({ $where: fn }, () => {})).toThrow(ValidationError)
    expect(ran).toBe(false)
    expect(await c.countDocuments()).toBe(2)
  })

  it('operators outside the documented set are refused by name', async () => {
    for (const q of [{ $text: { $search: 'a' } }, { $jsonSchema: {} }, { s: { $foo: 1 } }, { $foo: 1 }, { s: { $regex: 'a', $where: 'x' } }]) {
      await refused(async () => await c.find(q), /unsupported operator|runs JavaScript/)
    }
  })
})

describe('odd keys', () => {
  it('a query whose only key is __proto__ (or any Object.prototype name) is refused, not read as {} that matches everything', async () => {
    for (const name of Object.getOwnPropertyNames(Object.prototype)) {
      await refused(async () => await c.find(JSON.parse(`{"${name}": {"s": "nothing"}}`) as LooseFilter), /Object\.prototype/)
      await refused(async () => await c.find({ $or: [JSON.parse(`{"${name}": 1}`)] }), /Object\.prototype/)
      await refused(async () => await c.deleteMany(JSON.parse(`{"${name}": 1}`) as LooseFilter), /Object\.prototype/)
    }
    expect(await c.countDocuments()).toBe(2)
  })

  it('empty paths and empty path parts are refused', async () => {
    for (const path of ['', '.s', 's.', 's..t']) await refused(async () => await c.find({ [path]: 1 }), /path/)
    await refused(async () => await c.find({}, { '': 1 } as never), /path/)
    await refused(async () => await c.find({}, undefined, { sort: { 'a..b': 1 } as never }), /path/)
  })
})

describe('regular expressions run in linear time', () => {
  const evil = /^(a+)+$/
  it('a catastrophic pattern over a long string peers wrote answers at once, wherever the query holds it', async () => {
    expect((await c.find({ s: evil })).map(d => d._id)).toEqual(['b'])
    expect((await c.find({ s: { $regex: '^(a+)+$' } })).map(d => d._id)).toEqual(['b'])
    expect((await c.find({ s: { $regex: evil.source, $options: 'i' } })).map(d => d._id)).toEqual(['b'])
    expect((await c.find({ s: { $in: [evil, 'zzz'] } })).map(d => d._id)).toEqual(['b'])
    expect((await c.find({ s: { $nin: [evil] } })).map(d => d._id)).toEqual(['a'])
    expect((await c.find({ s: { $not: evil } })).map(d => d._id)).toEqual(['a'])
    expect((await c.find({ arr: { $all: [evil] } })).map(d => d._id)).toEqual(['b'])
    expect((await c.find({ arr: { $all: [evil, 'aaa'] } })).map(d => d._id)).toEqual(['b'])
    expect((await c.find({ arr: { $elemMatch: { $regex: '^(a+)+$' } } })).map(d => d._id)).toEqual(['b'])
    expect((await c.find({ $or: [{ s: evil }, { arr: { $in: [evil] } }] })).map(d => d._id)).toEqual(['b'])
    expect((await c.find({}, { objs: { $elemMatch: { t: evil } } } as never)).map(d => d.objs)).toEqual([[{ t: 'aaa' }], undefined])
    await c.updateMany({}, { $pull: { arr: evil } })
    expect((await c.findById('a'))?.arr).toHaveLength(2)
    expect((await c.findById('b'))?.arr).toEqual([])
  })

  it('patterns a linear-time engine cannot run (backreferences, lookaround), or over the length limit, are refused', async () => {
    for (const q of [
      { s: /(a)\1/ }, { s: { $regex: '(?=a)a' } }, { s: { $in: [/(?<!x)a/] } }, { s: { $not: /(a)\1/ } },
      { arr: { $all: [/(a)\1/] } }, { arr: { $elemMatch: { $regex: '(a)\\1' } } }, { s: { $regex: 'a'.repeat(MAX_REGEX_LENGTH + 1) } },
      { $expr: { $regexMatch: { input: '$s', regex: 'a' } } }
    ]) {
      await refused(async () => await c.find(q), /linear time|limit|not supported/)
    }
    await refused(async () => await c.updateMany({}, { $pull: { arr: /(a)\1/ } }), /linear time/)
  })

  it('matches as JavaScript does on ordinary patterns', () => {
    const atom = fc.constantFrom('a', 'b', '.', '[ab]', '[^a]', '\\d', '\\w', '\\s', '(?:ab)', '(a|b)', 'A')
    const piece = fc.tuple(atom, fc.constantFrom('', '?', '*', '+', '{1,2}', '*?')).map(([a, q]) => a + q)
    const pattern = fc.tuple(fc.constantFrom('', '^'), fc.array(piece, { minLength: 1, maxLength: 4 }), fc.constantFrom('', '$')).map(([s, p, e]) => s + p.join('') + e)
    fc.assert(fc.property(pattern, fc.constantFrom('', 'i', 'm', 's'), fc.string({ unit: fc.constantFrom('a', 'b', 'A', '1', ' ', '\n', 'é'), maxLength: 12 }), (source, flags, subject) => {
      const re = new RegExp(source, flags)
      expect(linearRegExp(re).test(subject)).toBe(re.test(subject))
    }), { numRuns: 2000 })
  })
})
