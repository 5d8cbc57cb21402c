/**
 * The pure steps of the block log (src/crdt/fold.ts): applying a block's ops to the states it
 * touches, joining a snapshot's states into local ones, and folding a set of blocks, checked
 * against the reference model of the merge rules (test/helpers/merge-model.ts).
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  type Block, type CollState, type Doc, type DocState, type JsonValue, Fold, applyBlockOps, cidOf, compareDocKeys, docKey, encode,
  isDocOp, joinSnapshotStates, materialise, parseDocKey, sameCollState, sameDocState, touchedBy
} from '../../src/crdt/index.js'
import { modelState } from '../helpers/merge-model.js'
import { opArbitrary } from '../helpers/arbitraries.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'

const blockArb: fc.Arbitrary<Block> = fc.record({
  v: fc.constant(1 as const),
  db: fc.constant(DB),
  parents: fc.constant([]),
  // Small time and counter domains make equal HLCs likely: the replica id, CID and op index break ties.
  hlc: fc.record({ t: fc.integer({ min: 1, max: 4 }), c: fc.nat(2), r: fc.constantFrom('r1', 'r2') }),
  ops: fc.array(opArbitrary(fc.oneof(fc.integer({ min: -5, max: 5 }), fc.constantFrom('x', 'y')) as fc.Arbitrary<JsonValue>), { minLength: 1, maxLength: 4 })
})

const cidOfBlock = (b: Block): string => cidOf(encode(b)).toString()

/** States as a storage keeps them: documents by `docKey`, collections by name. */
interface States { docs: Map<string, DocState>, colls: Map<string, CollState> }

/**
 * Apply `block` to `states` as a storage does with `applyBlockOps`: it loads the states of the
 * documents the block writes and of every document of a collection it drops, and writes back what
 * the merge returns.
 */
function applyAsStorage (states: States, block: Block, cid: string): void {
  const docs = new Map<string, DocState | undefined>()
  const colls = new Map<string, CollState | undefined>()
  for (const op of block.ops) {
    colls.set(op.coll, states.colls.get(op.coll))
    if (isDocOp(op)) docs.set(docKey(op.coll, op.id), states.docs.get(docKey(op.coll, op.id)))
    else if (op.op === 'drop') for (const [k, s] of states.docs) if (parseDocKey(k).coll === op.coll) docs.set(k, s)
  }
  const frozen = JSON.stringify([...docs, ...colls])
  const out = applyBlockOps(docs, colls, block, cid)
  expect(JSON.stringify([...docs, ...colls])).toBe(frozen) // the inputs are not modified
  for (const c of out.colls) states.colls.set(c.coll, c.state)
  for (const d of out.docs) {
    states.docs.set(docKey(d.coll, d.id), d.state)
    // each document as it shows under its collection's state after the block
    expect(d.doc).toEqual(materialise(d.state, states.colls.get(d.coll)?.dropped))
  }
}

/** The existing documents of `states`, by collection, in `_id` order. */
function documents (states: States): Map<string, Doc[]> {
  const out = new Map<string, Doc[]>()
  for (const [k, state] of [...states.docs].sort(([a], [b]) => a < b ? -1 : 1)) {
    const { coll } = parseDocKey(k)
    const doc = materialise(state, states.colls.get(coll)?.dropped)
    if (doc === null) continue
    out.set(coll, [...out.get(coll) ?? [], doc])
  }
  return out
}

/** The reference model's documents of `blocks`, by collection (collections with none left out). */
function reference (blocks: Block[]): Map<string, Doc[]> {
  const { docs } = modelState(blocks.map(b => ({ hlc: b.hlc, cid: cidOfBlock(b), ops: b.ops })))
  return new Map([...docs].filter(([, list]) => list.length > 0).map(([coll, list]) => [coll, list as Doc[]]))
}

const fresh = (): States => ({ docs: new Map(), colls: new Map() })

describe('applyBlockOps', () => {
  it('blocks applied in any order, some twice, give the reference rules\' documents', () => {
    fc.assert(fc.property(
      fc.array(blockArb, { minLength: 1, maxLength: 8 }).chain(blocks => fc.tuple(fc.constant(blocks), fc.shuffledSubarray([...blocks, ...blocks], { minLength: blocks.length * 2 }))),
      ([blocks, order]) => {
        const states = fresh()
        for (const b of order) applyAsStorage(states, b, cidOfBlock(b))
        expect(documents(states)).toEqual(reference(blocks))
      }), { numRuns: 500 })
  })

  it('returns every loaded document and the states of the collections the block touched', () => {
    const state = applyBlockOps(new Map(), new Map(), { hlc: { t: 1, c: 0, r: 'r' }, ops: [{ op: 'coll', coll: 'a' }, { op: 'put', coll: 'a', id: 'x', set: { n: 1 } }] }, 'b1')
    expect(state.docs).toEqual([{ coll: 'a', id: 'x', state: expect.anything() as unknown, doc: { _id: 'x', n: 1 } }])
    expect(state.colls.map(c => c.coll)).toEqual(['a'])
    const colls = new Map<string, CollState | undefined>([['a', state.colls[0]?.state]])
    const docs = new Map<string, DocState | undefined>([[docKey('a', 'x'), state.docs[0]?.state]])
    // An older create leaves the state as it was; a newer drop hides the document it did not write.
    expect(applyBlockOps(docs, colls, { hlc: { t: 0, c: 0, r: 'r' }, ops: [{ op: 'coll', coll: 'a' }] }, 'b0').colls).toEqual([{ coll: 'a', state: colls.get('a') }])
    const dropped = applyBlockOps(docs, colls, { hlc: { t: 2, c: 0, r: 'r' }, ops: [{ op: 'drop', coll: 'a' }] }, 'b2')
    expect(dropped.docs.map(d => d.doc)).toEqual([null])
    expect(dropped.colls.map(c => c.coll)).toEqual(['a'])
  })
})

describe('touchedBy', () => {
  it('names each document written once, in op order, every collection named, and those dropped', () => {
    expect(touchedBy([
      { op: 'put', coll: 'a', id: 'x', set: { n: 1 } }, { op: 'del', coll: 'b', id: 'y' }, { op: 'put', coll: 'a', id: 'x', inc: { n: 1 } },
      { op: 'drop', coll: 'c' }, { op: 'coll', coll: 'a' }
    ])).toEqual({ keys: [{ coll: 'a', id: 'x' }, { coll: 'b', id: 'y' }], colls: ['a', 'b', 'c'], dropped: ['c'] })
  })
})

describe('joinSnapshotStates', () => {
  /** The fold of `blocks` as a storage's states. */
  function statesOf (blocks: Block[]): States {
    const states = fresh()
    for (const b of blocks) applyAsStorage(states, b, cidOfBlock(b))
    return states
  }

  /** Join (or replace) `given` into `local` as a storage does: it loads the states of every document of `given` and of every local document of a collection `given` has a state for. */
  function install (local: States, given: States, mode: 'join' | 'replace'): void {
    const docs = new Map<string, DocState | undefined>()
    for (const k of given.docs.keys()) docs.set(k, local.docs.get(k))
    for (const [k, s] of local.docs) if (given.colls.has(parseDocKey(k).coll)) docs.set(k, s)
    const colls = new Map<string, CollState | undefined>()
    for (const c of [...given.colls.keys(), ...[...given.docs.keys()].map(k => parseDocKey(k).coll)]) colls.set(c, local.colls.get(c))
    const out = joinSnapshotStates(docs, colls, given.docs, given.colls, mode)
    for (const d of out.docs) local.docs.set(docKey(d.coll, d.id), d.state)
    for (const c of out.colls) local.colls.set(c.coll, c.state)
  }

  it('joining the states of two overlapping sets of blocks gives the documents of their union', () => {
    fc.assert(fc.property(
      fc.array(blockArb, { minLength: 1, maxLength: 10 }).chain(blocks => fc.tuple(fc.constant(blocks), fc.subarray(blocks), fc.subarray(blocks))),
      ([, a, b]) => {
        const local = statesOf(a)
        install(local, statesOf(b), 'join')
        expect(documents(local)).toEqual(reference([...a, ...b]))
      }), { numRuns: 500 })
  })

  it('replacing puts the given states in place of the local ones', () => {
    fc.assert(fc.property(
      fc.array(blockArb, { minLength: 1, maxLength: 10 }).chain(blocks => fc.tuple(fc.subarray(blocks), fc.subarray(blocks))),
      ([a, b]) => {
        const local = statesOf(a)
        const given = statesOf(b)
        install(local, given, 'replace')
        for (const [k, s] of given.docs) expect(sameDocState(local.docs.get(k), s)).toBe(true)
        for (const [c, s] of given.colls) expect(sameCollState(local.colls.get(c), s)).toBe(true)
      }), { numRuns: 300 })
  })
})

describe('Fold', () => {
  it('folds each block once and lists its states', () => {
    fc.assert(fc.property(fc.array(blockArb, { minLength: 1, maxLength: 8 }), blocks => {
      const fold = new Fold()
      for (const b of [...blocks, ...blocks]) fold.add(cidOfBlock(b), b)
      for (const b of blocks) expect(fold.has(cidOfBlock(b))).toBe(true)
      const states: States = { docs: new Map(fold.docList().map(d => [docKey(d.coll, d.id), d.state])), colls: new Map(fold.collList().map(c => [c.coll, c.state])) }
      expect(documents(states)).toEqual(reference(blocks))
    }), { numRuns: 300 })
  })
})

describe('document keys and state comparison', () => {
  it('parseDocKey undoes docKey; compareDocKeys orders by collection, then id', () => {
    expect(parseDocKey(docKey('c', 'a\u0000b'))).toEqual({ coll: 'c', id: 'a\u0000b' })
    const keys = [{ coll: 'b', id: 'a' }, { coll: 'a', id: 'z' }, { coll: 'a', id: 'b' }]
    expect(keys.sort(compareDocKeys)).toEqual([{ coll: 'a', id: 'b' }, { coll: 'a', id: 'z' }, { coll: 'b', id: 'a' }])
    expect(compareDocKeys({ coll: 'a', id: 'x' }, { coll: 'a', id: 'x' })).toBe(0)
  })

  it('sameDocState ignores key order; an absent state is the empty one', () => {
    const s: DocState = { f: { _id: { s: [1, 0, 'r', 'b', 0], v: 'x' }, a: { s: [1, 0, 'r', 'b', 0], v: 1 } } }
    const reordered: DocState = { f: { a: { v: 1, s: [1, 0, 'r', 'b', 0] }, _id: { v: 'x', s: [1, 0, 'r', 'b', 0] } } }
    expect(sameDocState(s, reordered)).toBe(true)
    expect(sameDocState(undefined, { f: {} })).toBe(true)
    expect(sameDocState(s, { ...s, tomb: [2, 0, 'r', 'c', 0] })).toBe(false)
    expect(sameCollState(undefined, {})).toBe(true)
    expect(sameCollState({ created: [1, 0, 'r', 'b', 0] }, {})).toBe(false)
  })
})
