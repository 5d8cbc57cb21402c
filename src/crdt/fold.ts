/**
 * Folding ops into states: the pure steps of the block log. A block's ops applied to the states of
 * the documents and collections it touches (`applyBlockOps`); a snapshot's states joined into the
 * local ones, or put in their place by a repair (`joinSnapshotStates`); the states a set of blocks
 * folds to (`Fold`), which the audit of a snapshot join compares with a replica's own
 * (`sameDocState`, `sameCollState`). The merge rules they apply are in `merge.ts`
 * (docs/design.md, "Merge rules").
 *
 * Document states are kept in maps by `docKey` (`coll NUL id`: collection names hold no NUL),
 * collection states by name.
 */
import { type Block } from './block.js'
import { type Doc } from './json.js'
import { type Op, isDocOp } from './ops.js'
import { type CollState, type DocState, applyCollOp, applyOp, joinCollStates, joinStates, materialise, stampOf } from './merge.js'

/** Identifies one document. */
export interface DocKey { coll: string, id: string }

/** The map key of a document: `coll + NUL + id`. */
export function docKey (coll: string, id: string): string {
  return `${coll}\u0000${id}`
}

/** The document a `docKey` names. */
export function parseDocKey (key: string): DocKey {
  const at = key.indexOf('\u0000')
  return { coll: key.slice(0, at), id: key.slice(at + 1) }
}

/** (collection, id) order, by UTF-16 code units: negative if `a` comes first, 0 if equal, positive if `b` does. */
export function compareDocKeys (a: DocKey, b: DocKey): number {
  return a.coll < b.coll ? -1 : a.coll > b.coll ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** New states, and the documents as they now materialise (`null`: absent): what a merge hands to storage. */
export interface MergedStates {
  docs: Array<DocKey & { state: DocState, doc: Doc | null }>
  colls: Array<{ coll: string, state: CollState }>
}

/**
 * What a block's ops touch: the documents they write (each once, in op order), the collections
 * they name, and those they drop (whose every document a drop may hide).
 */
export function touchedBy (ops: readonly Op[]): { keys: DocKey[], colls: string[], dropped: string[] } {
  const keys: DocKey[] = []
  const seen = new Set<string>()
  const colls = new Set<string>()
  const dropped = new Set<string>()
  for (const op of ops) {
    colls.add(op.coll)
    if (op.op === 'drop') dropped.add(op.coll)
    if (!isDocOp(op)) continue
    const k = docKey(op.coll, op.id)
    if (!seen.has(k)) {
      seen.add(k)
      keys.push({ coll: op.coll, id: op.id })
    }
  }
  return { keys, colls: [...colls], dropped: [...dropped] }
}

/**
 * Apply every op of block `cid` (its whole op list, chunks assembled) to `docs` (by `docKey`) and
 * `colls` (by name), in place: op `i` is stamped `stampOf(block.hlc, cid, i)`. Applying a block
 * twice changes nothing the second time (see `applyOp`), but only `Fold` remembers which it
 * applied.
 */
export function foldBlock (docs: Map<string, DocState | undefined>, colls: Map<string, CollState | undefined>, block: Pick<Block, 'hlc' | 'ops'>, cid: string): void {
  block.ops.forEach((op, i) => {
    const stamp = stampOf(block.hlc, cid, i)
    if (isDocOp(op)) {
      const k = docKey(op.coll, op.id)
      docs.set(k, applyOp(docs.get(k), op, stamp))
    } else {
      colls.set(op.coll, applyCollOp(colls.get(op.coll), op, stamp))
    }
  })
}

/**
 * What block `cid` makes of the states it touches. `docs` holds, by `docKey`, the state of every
 * document the block writes and of every document of a collection it drops (`undefined` when
 * new); `colls` the state of every collection it touches. Returns the new state of each of those
 * documents with the document it now shows (under its collection's new drop stamp), and the
 * collection states the block changed. The inputs are not modified.
 */
export function applyBlockOps (
  docs: ReadonlyMap<string, DocState | undefined>, colls: ReadonlyMap<string, CollState | undefined>, block: Pick<Block, 'hlc' | 'ops'>, cid: string
): MergedStates {
  const states = new Map(docs)
  const collNext = new Map(colls)
  foldBlock(states, collNext, block, cid)
  const out: MergedStates = { docs: [], colls: [] }
  for (const [k, state] of states) {
    if (state === undefined) continue
    const { coll, id } = parseDocKey(k)
    out.docs.push({ coll, id, state, doc: materialise(state, collNext.get(coll)?.dropped) })
  }
  for (const [coll, state] of collNext) if (state !== undefined && state !== colls.get(coll)) out.colls.push({ coll, state })
  return out
}

/**
 * States `given` (a snapshot's, or the fold of blocks it did not cover) put into the local ones:
 * joined (`'join'`: the CRDT join, so local effects stay) or put in their place (`'replace'`: the
 * repair of states found to disagree with the history). `docs` holds, by `docKey`, the local state
 * of every document of `givenDocs` (`undefined` when absent here) and of every local document of
 * a collection whose drop stamp may change; `colls` the local state of every collection of
 * `givenColls` or holding a document of `givenDocs`. Returns the new state of each document of
 * `docs` that has one, with the document it now shows, and the collection states that changed.
 * The inputs are not modified.
 */
export function joinSnapshotStates (
  docs: ReadonlyMap<string, DocState | undefined>, colls: ReadonlyMap<string, CollState | undefined>,
  givenDocs: ReadonlyMap<string, DocState>, givenColls: ReadonlyMap<string, CollState>, mode: 'join' | 'replace'
): MergedStates {
  const collNext = new Map(colls)
  for (const [coll, state] of givenColls) collNext.set(coll, mode === 'join' ? joinCollStates(colls.get(coll), state) : state)
  const out: MergedStates = { docs: [], colls: [] }
  for (const [k, state] of docs) {
    const given = givenDocs.get(k)
    const next = given === undefined ? state : mode === 'join' ? joinStates(state, given) : given
    if (next === undefined) continue
    const { coll, id } = parseDocKey(k)
    out.docs.push({ coll, id, state: next, doc: materialise(next, collNext.get(coll)?.dropped) })
  }
  for (const [coll, state] of collNext) if (state !== undefined && state !== colls.get(coll)) out.colls.push({ coll, state })
  return out
}

/** The states that a set of blocks folds to (`foldBlock` over each block once). */
export class Fold {
  /** document states by `docKey` */
  readonly docs = new Map<string, DocState>()
  /** collection states by name */
  readonly colls = new Map<string, CollState>()
  private readonly folded = new Set<string>()

  /** Fold the ops of block `cid` (its whole op list, chunks assembled); a block folded before is skipped. */
  add (cid: string, block: Pick<Block, 'hlc' | 'ops'>): void {
    if (this.folded.has(cid)) return
    this.folded.add(cid)
    foldBlock(this.docs, this.colls, block, cid)
  }

  /** Whether block `cid` was folded. */
  has (cid: string): boolean { return this.folded.has(cid) }

  /** The document states as a list, in the order their documents were first written. */
  docList (): Array<DocKey & { state: DocState }> {
    return [...this.docs].map(([k, state]) => ({ ...parseDocKey(k), state }))
  }

  /** The collection states as a list. */
  collList (): Array<{ coll: string, state: CollState }> {
    return [...this.colls].map(([coll, state]) => ({ coll, state }))
  }
}

/** A value with every map's keys sorted (undefined members dropped), as JSON text: equal states give equal text. */
function canonical (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) out[k] = (v as Record<string, unknown>)[k]
    return out
  })
}

/** Whether two document states are the same state (an absent state is the empty one). */
export function sameDocState (a: DocState | undefined, b: DocState | undefined): boolean {
  return canonical(a ?? { f: {} }) === canonical(b ?? { f: {} })
}

/** Whether two collection states are the same state (an absent state is the empty one). */
export function sameCollState (a: CollState | undefined, b: CollState | undefined): boolean {
  return canonical(a ?? {}) === canonical(b ?? {})
}
