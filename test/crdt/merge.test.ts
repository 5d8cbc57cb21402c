import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  type Block, type Doc, type DocOp, type DocState, type Stamp,
  applyOp, cidOf, encode, joinStates, materialise, stampOf
} from '../../src/crdt/index.js'
import { modelState } from '../helpers/merge-model.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const DOCS = ['d1', 'd2', 'd3']
const FIELDS = ['a', 'b', 'c']

const opArb: fc.Arbitrary<DocOp> = fc.oneof(
  fc.record({
    op: fc.constant('put' as const),
    coll: fc.constant('c'),
    id: fc.constantFrom(...DOCS),
    set: fc.dictionary(fc.constantFrom(...FIELDS), fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constantFrom('x', 'y')), { maxKeys: 2 })
  }),
  fc.record({ op: fc.constant('put' as const), coll: fc.constant('c'), id: fc.constantFrom(...DOCS), inc: fc.dictionary(fc.constantFrom(...FIELDS), fc.integer({ min: -3, max: 3 }), { minKeys: 1, maxKeys: 2 }) }),
  fc.record({ op: fc.constant('put' as const), coll: fc.constant('c'), id: fc.constantFrom(...DOCS), unset: fc.uniqueArray(fc.constantFrom(...FIELDS), { minLength: 1, maxLength: 2 }) }),
  fc.record({ op: fc.constant('del' as const), coll: fc.constant('c'), id: fc.constantFrom(...DOCS) })
)

const blockArb: fc.Arbitrary<Block> = fc.record({
  v: fc.constant(1 as const),
  db: fc.constant(DB),
  parents: fc.constant([]),
  // Small time and counter domains make equal HLCs across replicas likely: the replica id and CID must break ties.
  hlc: fc.record({ t: fc.integer({ min: 1, max: 4 }), c: fc.nat(2), r: fc.constantFrom('r1', 'r2', 'r3') }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 4 })
})

interface Write { stamp: Stamp, op: DocOp }

function writesOf (blocks: Block[]): Write[] {
  const out: Write[] = []
  for (const b of blocks) {
    const cid = cidOf(encode(b)).toString() // any distinct CID per block will do for stamps
    b.ops.forEach((op, i) => out.push({ stamp: stampOf(b.hlc, cid, i), op: op as DocOp }))
  }
  return out
}

/** Fold writes into per-document states with the implementation under test. */
function fold (writes: Write[]): Map<string, Doc | null> {
  const states = new Map<string, DocState>()
  for (const w of writes) states.set(w.op.id, applyOp(states.get(w.op.id), w.op, w.stamp))
  return new Map(DOCS.map(id => [id, materialise(states.get(id))]))
}

/** The reference model's documents (test/helpers/merge-model.ts, which shares no code with src/crdt) for these blocks. */
function reference (blocks: Block[]): Map<string, Doc | null> {
  const state = modelState(blocks.map(b => ({ hlc: b.hlc, cid: cidOf(encode(b)).toString(), ops: b.ops })))
  const docs = state.docs.get('c') ?? []
  return new Map(DOCS.map(id => [id, (docs.find(d => d._id === id) as Doc | undefined) ?? null]))
}

describe('merge rules', () => {
  it('any order, any duplication, gives the same documents as the reference rules', () => {
    fc.assert(fc.property(
      fc.array(blockArb, { minLength: 1, maxLength: 12 }).chain(blocks => {
        const writes = writesOf(blocks)
        return fc.tuple(fc.constant(blocks), fc.constant(writes), fc.shuffledSubarray(writes, { minLength: 0, maxLength: writes.length }), fc.infiniteStream(fc.nat()))
      }),
      ([blocks, writes, dupes, seeds]) => {
        const expected = reference(blocks)
        // Shuffle the writes plus some duplicates into another order.
        const shuffled = [...writes, ...dupes]
        const it = seeds[Symbol.iterator]()
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = (it.next().value as number) % (i + 1)
          ;[shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]]
        }
        expect(fold(writes)).toEqual(expected)
        expect(fold(shuffled)).toEqual(expected)
      }), { numRuns: 1000 })
  })

  it('joining the states of two overlapping sets of writes gives the states of their union', () => {
    fc.assert(fc.property(
      fc.array(blockArb, { minLength: 1, maxLength: 10 }).chain(blocks => {
        const writes = writesOf(blocks)
        return fc.tuple(fc.constant(blocks), fc.constant(writes), fc.subarray(writes), fc.subarray(writes))
      }),
      ([blocks, writes, left, right]) => {
        // Every write is in left or right (some in both): left ∪ right = writes.
        const rest = writes.filter(w => !left.includes(w))
        const states = (ws: Write[]): Map<string, DocState> => {
          const out = new Map<string, DocState>()
          for (const w of ws) out.set(w.op.id, applyOp(out.get(w.op.id), w.op, w.stamp))
          return out
        }
        const a = states(left)
        const b = states([...right, ...rest])
        const joined = new Map(DOCS.map(id => {
          const sb = b.get(id)
          const state = sb === undefined ? a.get(id) : joinStates(a.get(id), sb)
          return [id, materialise(state)]
        }))
        expect(joined).toEqual(reference(blocks))
      }), { numRuns: 1000 })
  })

  const s = (t: number, i = 0): Stamp => [t, 0, 'r', 'cid', i]

  it('last writer wins per field, not per document', () => {
    let st = applyOp(undefined, { op: 'put', coll: 'c', id: 'x', set: { a: 1, b: 1 } }, s(1))
    st = applyOp(st, { op: 'put', coll: 'c', id: 'x', set: { b: 2 } }, s(3))
    st = applyOp(st, { op: 'put', coll: 'c', id: 'x', set: { a: 9, b: 9 } }, s(2))
    expect(materialise(st)).toEqual({ _id: 'x', a: 9, b: 2 })
  })

  it('concurrent increments all count, each once', () => {
    const inc = (): DocOp => ({ op: 'put', coll: 'c', id: 'x', inc: { n: 1 } })
    let st = applyOp(undefined, { op: 'put', coll: 'c', id: 'x', set: { n: 10 } }, s(1))
    st = applyOp(st, inc(), [2, 0, 'r1', 'cidA', 0])
    st = applyOp(st, inc(), [2, 0, 'r2', 'cidB', 0])
    st = applyOp(st, inc(), [2, 0, 'r2', 'cidB', 0]) // duplicate delivery
    expect(materialise(st)).toEqual({ _id: 'x', n: 12 })
    // A later $set resets the base and absorbs earlier increments.
    st = applyOp(st, { op: 'put', coll: 'c', id: 'x', set: { n: 0 } }, s(5))
    expect(materialise(st)).toEqual({ _id: 'x', n: 0 })
  })

  it('a delete hides earlier writes; a later write revives the document with only its fields', () => {
    let st = applyOp(undefined, { op: 'put', coll: 'c', id: 'x', set: { a: 1, b: 2 } }, s(1))
    st = applyOp(st, { op: 'del', coll: 'c', id: 'x' }, s(2))
    expect(materialise(st)).toBeNull()
    const revived = applyOp(st, { op: 'put', coll: 'c', id: 'x', set: { b: 3 } }, s(3))
    expect(materialise(revived)).toEqual({ _id: 'x', b: 3 })
    // A write that lost the race with the delete stays hidden.
    const late = applyOp(st, { op: 'put', coll: 'c', id: 'x', set: { b: 4 } }, [1, 5, 'r', 'cid', 0])
    expect(materialise(late)).toBeNull()
  })

  it('never mutates the state it is given', () => {
    const st = applyOp(undefined, { op: 'put', coll: 'c', id: 'x', set: { a: 1 } }, s(1))
    const copy = structuredClone(st)
    applyOp(st, { op: 'put', coll: 'c', id: 'x', set: { a: 2 }, inc: { n: 1 } }, s(2))
    applyOp(st, { op: 'del', coll: 'c', id: 'x' }, s(3))
    expect(st).toEqual(copy)
  })
})
