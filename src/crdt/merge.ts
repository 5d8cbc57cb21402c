/**
 * The merge rules (docs/design.md, "Merge rules"): a state-based CRDT per document.
 *
 * - Each top-level field is a last-writer-wins register keyed by a `Stamp`
 *   `[t, c, r, blockCid, opIndex]` — the block's HLC, then the block CID and op index so that no
 *   two writes ever tie.
 * - `inc` makes a field a counter: its value is the register's base (0 if unset or not a number)
 *   plus every increment stamped after the base, each keyed by `blockCid:opIndex` so it counts once.
 *   A later `set`/`unset` resets the base and absorbs the increments before it.
 * - `del` writes a tombstone: every register and increment stamped at or before it is hidden. A
 *   put stamped after the tombstone revives the document with the fields that put (or later ones) wrote.
 *
 * `applyOp` is idempotent, commutative and associative over ops of distinct stamps, so blocks can
 * be applied in any order, any number of times, even before their parents arrive.
 */
import { type Hlc } from './hlc.js'
import { type Doc, type JsonValue, dictOf, ownValue } from './json.js'
import { type CollOp, type DocOp, type DropOp } from './ops.js'

/** Total order key of one write: HLC, then block CID string, then op index in the block. */
export type Stamp = readonly [t: number, c: number, r: string, cid: string, opIndex: number]

/** One LWW register. `v` undefined with `u: true` means the field was unset. */
export interface Register {
  /** stamp of the last set/unset */
  s: Stamp
  /** the value written (absent when unset) */
  v?: JsonValue
  /** true when the last write was an unset */
  u?: true
  /** counter increments stamped after `s`, keyed by `blockCid:opIndex` */
  inc?: Record<string, { n: number, s: Stamp }>
}

/**
 * The CRDT state of one document: its field registers and its latest tombstone. The functions
 * here make `f` prototype-free (`dictOf`) and read it by own keys only, so a field name can never
 * hit an inherited property, also in states read back from storage as ordinary objects.
 */
export interface DocState {
  /** registers by top-level field name; `_id` is the existence register every put refreshes */
  f: Record<string, Register>
  /** stamp of the latest delete, if any */
  tomb?: Stamp
}

/** The stamp of op `opIndex` of the block with CID `cid` and HLC `hlc`. */
export function stampOf (hlc: Hlc, cid: string, opIndex: number): Stamp {
  return [hlc.t, hlc.c, hlc.r, cid, opIndex]
}

/** Total order on stamps: negative if `a < b`, 0 if equal, positive if `a > b`. */
export function compareStamp (a: Stamp, b: Stamp): number {
  for (let i = 0; i < 5; i++) {
    const x = a[i]
    const y = b[i]
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

/**
 * Apply one op to a document's state and return the new state (the input is not modified).
 * `stamp` must be `stampOf(block.hlc, blockCid, opIndex)` of the op.
 */
export function applyOp (state: DocState | undefined, op: DocOp, stamp: Stamp): DocState {
  const next: DocState = { f: dictOf(state?.f) }
  if (state?.tomb !== undefined) next.tomb = state.tomb
  if (op.op === 'del') {
    if (next.tomb === undefined || compareStamp(stamp, next.tomb) > 0) next.tomb = stamp
    return next
  }
  writeRegister(next, '_id', { s: stamp, v: op.id })
  for (const [field, value] of Object.entries(op.set ?? {})) writeRegister(next, field, { s: stamp, v: value })
  for (const field of op.unset ?? []) writeRegister(next, field, { s: stamp, u: true })
  const incKey = `${stamp[3]}:${stamp[4]}`
  for (const [field, n] of Object.entries(op.inc ?? {})) {
    const reg = next.f[field] // next.f is prototype-free: no inherited value
    if (reg === undefined) {
      // A counter never set: its base is "unset" at the lowest stamp, so every increment counts.
      next.f[field] = { s: ZERO_STAMP, u: true, inc: { [incKey]: { n, s: stamp } } }
    } else if (compareStamp(stamp, reg.s) > 0 && reg.inc?.[incKey] === undefined) {
      next.f[field] = { ...reg, inc: { ...(reg.inc ?? {}), [incKey]: { n, s: stamp } } }
    }
  }
  return next
}

const ZERO_STAMP: Stamp = [0, 0, '', '', 0]

function writeRegister (state: DocState, field: string, reg: Register): void {
  const cur = state.f[field] // state.f is prototype-free (see applyOp)
  if (cur !== undefined && compareStamp(reg.s, cur.s) <= 0) return
  if (cur?.inc !== undefined) {
    // Increments stamped after the new base survive it; earlier ones are absorbed by it.
    const kept = Object.entries(cur.inc).filter(([, i]) => compareStamp(i.s, reg.s) > 0)
    if (kept.length > 0) reg = { ...reg, inc: Object.fromEntries(kept) }
  }
  state.f[field] = reg
}

/** The CRDT state of one collection: latest create and latest drop (an LWW pair, like a document's `_id` and tombstone). */
export interface CollState {
  /** stamp of the latest create */
  created?: Stamp
  /** stamp of the latest drop: a tombstone over every document write at or before it */
  dropped?: Stamp
}

/** Apply a collection op and return the new state (the input is not modified). */
export function applyCollOp (state: CollState | undefined, op: CollOp | DropOp, stamp: Stamp): CollState {
  const next: CollState = { ...(state ?? {}) }
  const key = op.op === 'coll' ? 'created' : 'dropped'
  const cur = next[key]
  if (cur === undefined || compareStamp(stamp, cur) > 0) next[key] = stamp
  return next
}

/** Whether a collection exists by its own ops: created after its latest drop. */
export function collectionCreated (state: CollState | undefined): boolean {
  return state?.created !== undefined && (state.dropped === undefined || compareStamp(state.created, state.dropped) > 0)
}

/** The later of two optional stamps. */
export function maxStamp (a: Stamp | undefined, b: Stamp | undefined): Stamp | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return compareStamp(a, b) >= 0 ? a : b
}

/**
 * The document a state shows: `null` when it does not exist (never written, or deleted or its
 * collection dropped, and not revived); otherwise `_id` plus every visible field, keys in sorted
 * order so equal states give equal documents. `collDropped` is the collection's drop stamp.
 */
export function materialise (state: DocState | undefined, collDropped?: Stamp): Doc | null {
  if (state === undefined) return null
  const tomb = maxStamp(state.tomb, collDropped)
  const idReg = ownValue(state.f, '_id')
  if (idReg === undefined || (tomb !== undefined && compareStamp(idReg.s, tomb) <= 0)) return null
  const doc: Doc = { _id: idReg.v as string }
  for (const field of Object.keys(state.f).sort()) {
    if (field === '_id') continue
    const value = fieldValue(state.f[field], tomb)
    if (value !== undefined) doc[field] = value
  }
  return doc
}

function fieldValue (reg: Register, tomb: Stamp | undefined): JsonValue | undefined {
  const baseVisible = reg.u !== true && (tomb === undefined || compareStamp(reg.s, tomb) > 0)
  if (reg.inc === undefined) return baseVisible ? reg.v : undefined // most fields: no counter
  const incs = Object.values(reg.inc).filter(i => tomb === undefined || compareStamp(i.s, tomb) > 0)
  if (incs.length === 0) return baseVisible ? reg.v : undefined
  const base = baseVisible && typeof reg.v === 'number' ? reg.v : 0
  // Sum in a fixed order so floating-point rounding is the same on every replica.
  incs.sort((a, b) => compareStamp(a.s, b.s))
  return incs.reduce((sum, i) => sum + i.n, base)
}

/**
 * The state of the union of the ops behind two states (the CRDT join): a document's state is a
 * function of the set of ops applied to it — per field, the register of the latest set/unset (or
 * the "never set" base) and the increments stamped after it; the latest tombstone — so joining
 * takes, per field, the later register and the increments of both stamped after it, and the later
 * tombstone. Used to install a snapshot over a replica that already has some blocks. The inputs
 * are not modified.
 */
export function joinStates (a: DocState | undefined, b: DocState): DocState {
  if (a === undefined) return b
  const next: DocState = { f: dictOf(a.f) }
  const tomb = maxStamp(a.tomb, b.tomb)
  if (tomb !== undefined) next.tomb = tomb
  for (const [field, reg] of Object.entries(b.f)) {
    const cur = next.f[field]
    if (cur === undefined) {
      next.f[field] = reg
      continue
    }
    const base = compareStamp(reg.s, cur.s) >= 0 ? reg : cur
    const inc: Record<string, { n: number, s: Stamp }> = {}
    for (const side of [cur.inc, reg.inc]) {
      for (const [key, i] of Object.entries(side ?? {})) if (compareStamp(i.s, base.s) > 0) inc[key] = i
    }
    const joined: Register = { s: base.s }
    if (base.v !== undefined) joined.v = base.v
    if (base.u === true) joined.u = true
    if (Object.keys(inc).length > 0) joined.inc = inc
    next.f[field] = joined
  }
  return next
}

/** The join of two collection states: the later create and the later drop. */
export function joinCollStates (a: CollState | undefined, b: CollState): CollState {
  const next: CollState = {}
  const created = maxStamp(a?.created, b.created)
  const dropped = maxStamp(a?.dropped, b.dropped)
  if (created !== undefined) next.created = created
  if (dropped !== undefined) next.dropped = dropped
  return next
}
