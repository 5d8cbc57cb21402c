/**
 * The DAG bookkeeping (src/crdt/dag.ts): whatever order blocks arrive in, and whatever snapshot is
 * installed over them, the heads are the blocks present that no present block names, and
 * `missing` the parents named by stored blocks that are not present.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { dagUpdate, snapshotDagUpdate } from '../../src/crdt/index.js'

/** A random DAG: block `i` names some of the blocks before it as parents. */
const dagArb = fc.integer({ min: 1, max: 12 }).chain(n => fc.tuple(...Array.from({ length: n }, (_, i) =>
  fc.uniqueArray(fc.integer({ min: 0, max: Math.max(0, i - 1) }), { maxLength: i === 0 ? 0 : 3 }).map(ps => ps.map(p => `b${p}`))
))).map(parents => new Map(parents.map((ps, i) => [`b${i}`, ps])))

/** A storage's DAG state, kept with `dagUpdate` and `snapshotDagUpdate` as the storages keep theirs. */
class Dag {
  readonly stored = new Set<string>()
  readonly covered = new Set<string>()
  heads = new Set<string>()
  readonly missing = new Set<string>()

  add (cid: string, parents: string[]): void {
    if (this.stored.has(cid) || this.covered.has(cid)) return
    const update = dagUpdate(cid, parents, c => this.stored.has(c) || this.covered.has(c), this.missing.has(cid))
    this.stored.add(cid)
    for (const p of update.removeHeads) this.heads.delete(p)
    if (update.addHead) this.heads.add(cid)
    this.missing.delete(cid)
    for (const p of update.addMissing) this.missing.add(p)
  }

  install (snapshotHeads: string[], covered: string[]): void {
    const update = snapshotDagUpdate({
      heads: [...this.heads], snapshotHeads, covered, isStored: c => this.stored.has(c) || this.covered.has(c), isMissing: c => this.missing.has(c)
    })
    expect(update.heads).toEqual([...update.heads].sort())
    for (const h of update.store) this.stored.add(h)
    for (const c of update.cover) this.covered.add(c)
    for (const c of update.found) this.missing.delete(c)
    this.heads = new Set(update.heads)
  }
}

/** What heads and missing must be, given what is stored and covered. */
function expected (dag: Map<string, string[]>, stored: Set<string>, covered: Set<string>): { heads: string[], missing: string[] } {
  const present = new Set([...stored, ...covered])
  const named = new Set([...present].flatMap(c => dag.get(c) ?? []))
  return {
    heads: [...present].filter(c => !named.has(c)).sort(),
    missing: [...new Set([...stored].flatMap(c => dag.get(c) ?? []))].filter(c => !present.has(c)).sort()
  }
}

/** The blocks at or below `cids`. */
function below (dag: Map<string, string[]>, cids: string[]): Set<string> {
  const out = new Set<string>()
  const walk = (c: string): void => {
    if (out.has(c)) return
    out.add(c)
    for (const p of dag.get(c) ?? []) walk(p)
  }
  for (const c of cids) walk(c)
  return out
}

describe('dagUpdate', () => {
  it('blocks added in any order leave as heads the stored blocks no stored block names, and as missing the parents not stored', () => {
    fc.assert(fc.property(dagArb.chain(dag => fc.tuple(fc.constant(dag), fc.shuffledSubarray([...dag.keys()]))), ([dag, order]) => {
      const state = new Dag()
      for (const c of order) state.add(c, dag.get(c) ?? [])
      const want = expected(dag, state.stored, state.covered)
      expect([...state.heads].sort()).toEqual(want.heads)
      expect([...state.missing].sort()).toEqual(want.missing)
    }), { numRuns: 500 })
  })
})

describe('snapshotDagUpdate', () => {
  it('a snapshot installed over any blocks, and blocks added after it, keep heads and missing right', () => {
    fc.assert(fc.property(
      dagArb.chain(dag => fc.tuple(fc.constant(dag), fc.shuffledSubarray([...dag.keys()]), fc.subarray([...dag.keys()], { minLength: 1 }), fc.shuffledSubarray([...dag.keys()]))),
      ([dag, before, tips, after]) => {
        const state = new Dag()
        for (const c of before) state.add(c, dag.get(c) ?? [])
        // A snapshot is taken at a replica's heads: the maximal blocks of a down-closed set.
        const covered = below(dag, tips)
        const named = new Set([...covered].flatMap(c => dag.get(c) ?? []))
        const heads = [...covered].filter(c => !named.has(c)).sort()
        state.install(heads, [...covered].sort())
        for (const h of heads) expect(state.stored.has(h)).toBe(true)
        let want = expected(dag, state.stored, state.covered)
        expect([...state.heads].sort()).toEqual(want.heads)
        expect([...state.missing].sort()).toEqual(want.missing)
        for (const c of after) state.add(c, dag.get(c) ?? [])
        want = expected(dag, state.stored, state.covered)
        expect([...state.heads].sort()).toEqual(want.heads)
        expect([...state.missing].sort()).toEqual(want.missing)
      }), { numRuns: 500 })
  })

  it('stores the snapshot heads it lacks, records the rest as covered, and finds what was missing', () => {
    const update = snapshotDagUpdate({
      heads: ['a', 'z'],
      snapshotHeads: ['c', 'm'],
      covered: ['a', 'b', 'c', 'm'],
      isStored: cid => cid === 'a' || cid === 'z' || cid === 'c',
      isMissing: cid => cid === 'b' || cid === 'm'
    })
    // 'a' is below the snapshot; 'z' is not; 'c' was stored and no head; 'm' is named by a stored block.
    expect(update).toEqual({ heads: ['z'], store: ['m'], cover: ['b'], found: ['b', 'm'] })
  })
})
