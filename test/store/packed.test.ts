/**
 * Packed states (src/store/packed.ts): packing a state beside the document it shows and unpacking
 * it again gives the state back, for states made by random ops, with the document as computed or
 * as read back from storage (a structured clone).
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { type DocState, type JsonValue, type Stamp, applyOp, isDocOp, materialise, stampOf } from '../../src/crdt/index.js'
import { packState, unpackState } from '../../src/store/packed.js'
import { opArbitrary } from '../helpers/arbitraries.js'

const value: fc.Arbitrary<JsonValue> = fc.oneof(fc.integer({ min: -2, max: 3 }), fc.constantFrom('s', ''), fc.constant(null), fc.constant<JsonValue>({ deep: [1, { x: 'two' }] }), fc.constant<JsonValue>([]))

describe('packed states', () => {
  it('unpack(pack(state, doc), doc) is the state, for states of random ops', () => {
    const ops = fc.array(fc.tuple(opArbitrary(value), fc.integer({ min: 1, max: 4 })), { minLength: 1, maxLength: 12 })
    fc.assert(fc.property(ops, fc.option(fc.integer({ min: 1, max: 5 })), fc.boolean(), (list, dropAt, cloned) => {
      let state: DocState | undefined
      list.forEach(([op, t], i) => {
        if (!isDocOp(op)) return
        state = applyOp(state, { ...op, id: 'x' }, stampOf({ t, c: i % 2, r: 'r' }, `cid${i % 3}`, i))
      })
      if (state === undefined) return
      const dropped: Stamp | undefined = dropAt === null ? undefined : [dropAt, 0, 'r', 'cid9', 0]
      const doc = materialise(state, dropped)
      const packed = packState(state, doc)
      const stored = cloned ? structuredClone({ packed, doc }) : { packed, doc }
      expect(unpackState(stored.packed, stored.doc)).toEqual(state)
    }), { numRuns: 2000 })
  })

  it('a document with many distinct stamps (past the linear scan) packs each stamp once', () => {
    let state: DocState | undefined
    for (let i = 0; i < 20; i++) state = applyOp(state, { op: 'put', coll: 'c', id: 'a', set: { [`f${i % 15}`]: i } }, stampOf({ t: i + 1, c: 0, r: 'r' }, `cid${i}`, 0))
    const doc = materialise(state)
    const packed = packState(state as DocState, doc)
    expect(packed.t.length).toBe(new Set(Object.values((state as DocState).f).map(r => r.s.join(' '))).size)
    expect(unpackState(structuredClone(packed), doc)).toEqual(state)
  })

  it('a document written by one op packs to one stamp and no repeated values', () => {
    const state = applyOp(undefined, { op: 'put', coll: 'c', id: 'a', set: { name: 'ada', age: 36, tags: ['x'], nested: { city: 'London' } } }, stampOf({ t: 5, c: 0, r: 'r' }, 'bafyblock', 0))
    const packed = packState(state, materialise(state))
    expect(packed).toEqual({ t: [[5, 0, 'r', 'bafyblock', 0]], f: { _id: 0, name: 0, age: 0, tags: 0, nested: 0 } })
    expect(JSON.stringify(packed).length).toBeLessThan(JSON.stringify(state).length / 2)
  })
})
