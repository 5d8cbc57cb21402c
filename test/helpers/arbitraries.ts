/**
 * fast-check arbitraries shared by the property tests of replication: random ops over a few
 * collections, documents and fields, so that concurrent writes collide often.
 */
import fc from 'fast-check'
import { type JsonValue, type Op } from '../../src/crdt/index.js'

export const COLLS = ['a', 'b']
export const IDS = ['x', 'y', 'z']
export const FIELDS = ['f', 'g', 'n']

/** Random ops (puts, increments, unsets, deletes, drops and creates) whose set values come from `values`. */
export function opArbitrary (values: fc.Arbitrary<JsonValue>): fc.Arbitrary<Op> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('put' as const), coll: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS), set: fc.dictionary(fc.constantFrom(...FIELDS), values, { minKeys: 1, maxKeys: 2 }) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('put' as const), coll: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS), inc: fc.record({ n: fc.integer({ min: -3, max: 3 }) }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('put' as const), coll: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS), unset: fc.constant(['f'] as string[]) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('del' as const), coll: fc.constantFrom(...COLLS), id: fc.constantFrom(...IDS) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('drop' as const), coll: fc.constantFrom(...COLLS) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('coll' as const), coll: fc.constantFrom(...COLLS) }) }
  )
}
