/**
 * A document's CRDT state packed to sit beside its materialised document in one stored row: each
 * distinct stamp is listed once (a document written by one op has one), and a register whose value
 * the document shows as it is keeps only its stamp's index. A document inserted with ten fields
 * packs to one stamp and ten small numbers instead of ten registers with ten copies of the stamp.
 * Pure; `unpackState(packState(s, d), d)` equals `s` for every state and the document it shows.
 */
import { type Doc, type DocState, type JsonValue, type Register, type Stamp, dictOf, jsonEqual, ownValue } from '../crdt/index.js'

/** A register whose value is not taken from the document, its stamps as indexes into `PackedState.t`. */
export interface PackedRegister {
  s: number
  v?: JsonValue
  u?: true
  inc?: Record<string, { n: number, s: number }>
}

/** A packed `DocState` (see the file's doc). */
export interface PackedState {
  /** the distinct stamps */
  t: Stamp[]
  /** per field: a stamp index (the value is the document's), or a register */
  f: Record<string, number | PackedRegister>
  /** index of the tombstone's stamp */
  x?: number
}

/** Distinct stamps `packState` compares one by one before it switches to a map. */
const INTERN_SCAN = 8

/**
 * Pack `state`, stored beside `doc` (what it materialises to, or `null`). Values equal to the
 * document's are not repeated, so `unpackState` needs the same document.
 */
export function packState (state: DocState, doc: Doc | null): PackedState {
  const t: Stamp[] = []
  // A document usually has one to three distinct stamps: compare with those listed; past
  // `INTERN_SCAN` of them, look up a text key instead (a snapshot install packs 10,000 states).
  let at: Map<string, number> | undefined
  const keyOf = (s: Stamp): string => `${s[0]} ${s[1]} ${s[2]} ${s[3]} ${s[4]}`
  const intern = (s: Stamp): number => {
    if (at === undefined) {
      for (let i = 0; i < t.length; i++) {
        const u = t[i]
        if (u === s || (u[0] === s[0] && u[1] === s[1] && u[2] === s[2] && u[3] === s[3] && u[4] === s[4])) return i
      }
      t.push(s)
      if (t.length > INTERN_SCAN) at = new Map(t.map((u, i) => [keyOf(u), i]))
      return t.length - 1
    }
    const key = keyOf(s)
    let i = at.get(key)
    if (i === undefined) {
      at.set(key, i = t.length)
      t.push(s)
    }
    return i
  }
  const f = dictOf<number | PackedRegister>()
  for (const [field, reg] of Object.entries(state.f)) {
    const s = intern(reg.s)
    const shown = doc === null ? undefined : ownValue(doc, field)
    if (reg.u !== true && reg.inc === undefined && shown !== undefined && (shown === reg.v || jsonEqual(shown, reg.v))) {
      f[field] = s
      continue
    }
    const packed: PackedRegister = { s }
    if (reg.v !== undefined) packed.v = reg.v
    if (reg.u === true) packed.u = true
    if (reg.inc !== undefined) packed.inc = Object.fromEntries(Object.entries(reg.inc).map(([k, i]) => [k, { n: i.n, s: intern(i.s) }]))
    f[field] = packed
  }
  const out: PackedState = { t, f }
  if (state.tomb !== undefined) out.x = intern(state.tomb)
  return out
}

/** The state `packed` was made from, given the document it was stored beside. */
export function unpackState (packed: PackedState, doc: Doc | null): DocState {
  const stamp = (i: number): Stamp => packed.t[i]
  const f = dictOf<Register>()
  for (const [field, e] of Object.entries(packed.f)) {
    if (typeof e === 'number') {
      f[field] = { s: stamp(e), v: (doc as Doc)[field] }
      continue
    }
    const reg: Register = { s: stamp(e.s) }
    if (e.v !== undefined) reg.v = e.v
    if (e.u === true) reg.u = true
    if (e.inc !== undefined) reg.inc = Object.fromEntries(Object.entries(e.inc).map(([k, i]) => [k, { n: i.n, s: stamp(i.s) }]))
    f[field] = reg
  }
  const state: DocState = { f }
  if (packed.x !== undefined) state.tomb = stamp(packed.x)
  return state
}
