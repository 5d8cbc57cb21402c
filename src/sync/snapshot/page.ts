/**
 * The content of a snapshot page (docs/snapshots.md): document states in (collection, id) order
 * and collection states, as JSON text (parsed natively: several times faster than dag-cbor for
 * the joiner). A stamp `[t, c, r, blockCid, opIndex]` is written `[k, opIndex]`, `k` indexing the
 * page's `clocks` table of `[t, c, r, blockCid]`: every op of a block shares its HLC and CID, so a
 * page names each block once. A document is its values and its few stamps (`encodeDocEntry`).
 * `decodePage` is total: any bytes give a page or throw `InvalidBlockError`. The node that carries
 * a page, compressed, is in `format.ts`.
 */
import { InvalidBlockError } from '../../errors.js'
import {
  type CollState, type DocKey, type DocState, type JsonValue, type Register, type Stamp,
  assertJsonValue, compareDocKeys, isPlainObject, isValidCollectionName, isValidDocId, isValidFieldName
} from '../../crdt/index.js'

/** A page of document and collection states. */
export interface SnapshotPage {
  kind: 'page'
  docs: Array<DocKey & { state: DocState }>
  colls: Array<{ coll: string, state: CollState }>
}

/** Most entries of a page's clock table and of a document's stamps (and of a root's lists: `format.ts`). */
export const MAX_LIST = 100_000

/** A page's stamps as `[k, opIndex]` into its `clocks` table. */
class ClockTable {
  readonly clocks: Array<[number, number, string, string]> = []
  private readonly index = new Map<string, number>()

  ref (s: Stamp): [number, number] {
    const key = `${s[0]},${s[1]},${s[2]},${s[3]}`
    let k = this.index.get(key)
    if (k === undefined) {
      k = this.clocks.length
      this.index.set(key, k)
      this.clocks.push([s[0], s[1], s[2], s[3]])
    }
    return [k, s[4]]
  }
}

/**
 * A document's entry in a page: `[coll, id, v, t]` or `[coll, id, v, t, e]`. `v` holds the values
 * of its registers that have one, as a document would; `t` its distinct stamps as `[k, opIndex]`
 * into the page's `clocks`; a register of `v` is stamped `t[0]` unless `e.f` says otherwise:
 * `e.f[field]` is an index into `t`, or `{s, u?: 1, inc?: [[stampIndex, n]…]}` for an unset
 * register (not in `v`) or a counter; `e.x` indexes the tombstone's stamp. A document written by
 * one op is its values and one stamp: a register costs its value alone to encode and to parse.
 */
function encodeDocEntry (coll: string, id: string, state: DocState, table: ClockTable): unknown[] {
  const t: Array<[number, number]> = []
  // The registers an op wrote share one stamp array (as applyOp and unpackState leave them): a
  // stamp seen just before is not looked up again (a 100,000-document build spent a tenth of its
  // time making the clock table's keys).
  let last: Stamp | undefined
  let lastAt = 0
  const at = (s: Stamp): number => {
    if (s === last) return lastAt
    const [k, i] = table.ref(s)
    last = s
    for (let n = 0; n < t.length; n++) if (t[n][0] === k && t[n][1] === i) return (lastAt = n)
    return (lastAt = t.push([k, i]) - 1)
  }
  const v: Record<string, JsonValue> = {}
  const f: Record<string, unknown> = {}
  let exceptions = false
  for (const [field, reg] of Object.entries(state.f)) {
    const n = at(reg.s)
    if (reg.u !== true) v[field] = reg.v as JsonValue
    if (reg.u !== true && reg.inc === undefined) {
      if (n !== 0) { f[field] = n; exceptions = true }
      continue
    }
    const r: Record<string, unknown> = { s: n }
    if (reg.u === true) r.u = 1
    if (reg.inc !== undefined) r.inc = Object.values(reg.inc).map(i => [at(i.s), i.n])
    f[field] = r
    exceptions = true
  }
  const e: Record<string, unknown> = {}
  if (exceptions) e.f = f
  if (state.tomb !== undefined) e.x = at(state.tomb)
  return Object.keys(e).length > 0 ? [coll, id, v, t, e] : [coll, id, v, t]
}

function encodeCollState (state: CollState, table: ClockTable): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (state.created !== undefined) out.created = table.ref(state.created)
  if (state.dropped !== undefined) out.dropped = table.ref(state.dropped)
  return out
}

function encodePage (page: SnapshotPage): Record<string, unknown> {
  const table = new ClockTable()
  const docs = page.docs.map(d => encodeDocEntry(d.coll, d.id, d.state, table))
  const colls = page.colls.map(c => [c.coll, encodeCollState(c.state, table)])
  return { clocks: table.clocks, docs, colls }
}


/**
 * A page's content as bytes: JSON text, because the joiner parses it natively — `JSON.parse` of a
 * page is several times faster than a dag-cbor decoder, on the main thread of a replica that is
 * receiving the rest of the snapshot meanwhile. It holds exactly what dag-cbor would: JSON-like
 * values, with -0 written 0 (as dag-cbor blocks write it). The node's CID commits to the bytes.
 */
export function encodePageContent (page: SnapshotPage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(encodePage(page)))
}


/**
 * A page from its content's bytes (see `encodePageContent`): UTF-8 JSON of a map, stamps, names,
 * ids and values checked, documents in (collection, id) order. Throws `InvalidBlockError` (never
 * anything else) for any invalid input.
 */
export function decodePage (bytes: Uint8Array): SnapshotPage {
  return readPage(parseContent(bytes))
}

/** A page's content from its JSON text; `InvalidBlockError` when it is not UTF-8 JSON of a map. */
function parseContent (bytes: Uint8Array): Record<string, unknown> {
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (err) {
    throw new InvalidBlockError('page content is not JSON', { cause: err })
  }
  if (!isPlainObject(raw)) throw new InvalidBlockError('page content is not a map')
  return raw
}


/** The page a parsed content holds; `InvalidBlockError` when it is not one. */
function readPage (raw: Record<string, unknown>): SnapshotPage {
  if (!Array.isArray(raw.clocks) || raw.clocks.length > MAX_LIST) throw new InvalidBlockError('page.clocks is not a list')
  const clocks = raw.clocks.map(c => {
    if (!Array.isArray(c) || c.length !== 4) throw new InvalidBlockError('page clock is not [t, c, r, cid]')
    const [t, n, r, cid] = c as unknown[]
    if (!Number.isSafeInteger(t) || (t as number) < 0 || !Number.isSafeInteger(n) || (n as number) < 0) throw new InvalidBlockError('page clock time is not a non-negative integer')
    if (typeof r !== 'string' || r.length > 128 || typeof cid !== 'string' || cid.length > 200) throw new InvalidBlockError('page clock replica or CID is not a short string')
    return [t, n, r, cid] as [number, number, string, string]
  })
  // Equal stamps are one array (stamps are never modified): the registers an op wrote share it, as
  // after applyOp, so storing a state clones it once.
  const stamps: Array<Map<number, Stamp> | undefined> = []
  const stamp = (ref: unknown, what: string): Stamp => {
    if (!Array.isArray(ref) || ref.length !== 2) throw new InvalidBlockError(`${what} is not a stamp`)
    const [k, i] = ref as unknown[]
    const clock = Number.isInteger(k) ? clocks[k as number] : undefined
    if (clock === undefined || !Number.isSafeInteger(i) || (i as number) < 0) throw new InvalidBlockError(`${what} is not a stamp`)
    let byOp = stamps[k as number]
    if (byOp === undefined) stamps[k as number] = byOp = new Map()
    let s = byOp.get(i as number)
    if (s === undefined) byOp.set(i as number, s = [clock[0], clock[1], clock[2], clock[3], i as number])
    return s
  }
  if (!Array.isArray(raw.docs) || !Array.isArray(raw.colls)) throw new InvalidBlockError('page.docs or page.colls is not a list')
  let last: DocKey | undefined
  const docs = raw.docs.map((entry, n) => {
    const where = `page.docs[${n}]`
    if (!Array.isArray(entry) || (entry.length !== 4 && entry.length !== 5)) throw new InvalidBlockError(`${where} is not [coll, id, v, t, e?]`)
    const [coll, id] = entry as unknown[]
    if (!isValidCollectionName(coll) || !isValidDocId(id)) throw new InvalidBlockError(`${where} has a bad collection name or id`)
    if (last !== undefined && compareDocKeys(last, { coll, id }) >= 0) throw new InvalidBlockError(`${where} is out of (collection, id) order`)
    last = { coll, id }
    return { coll, id, state: decodeDocState(entry as unknown[], id, stamp, where) }
  })
  const names = new Set<string>()
  const colls = raw.colls.map((entry, n) => {
    const where = `page.colls[${n}]`
    if (!Array.isArray(entry) || entry.length !== 2) throw new InvalidBlockError(`${where} is not [coll, state]`)
    const [coll, state] = entry as unknown[]
    if (!isValidCollectionName(coll) || names.has(coll)) throw new InvalidBlockError(`${where} has a bad or repeated collection name`)
    names.add(coll)
    if (!isPlainObject(state) || Object.keys(state).some(k => k !== 'created' && k !== 'dropped')) throw new InvalidBlockError(`${where} is not a collection state`)
    const out: CollState = {}
    if (state.created !== undefined) out.created = stamp(state.created, `${where}.created`)
    if (state.dropped !== undefined) out.dropped = stamp(state.dropped, `${where}.dropped`)
    return { coll, state: out }
  })
  return { kind: 'page', docs, colls }
}

/** The state of a page's document entry `[coll, id, v, t, e?]` (see `encodeDocEntry`); `InvalidBlockError` when it is not one. */
function decodeDocState (entry: unknown[], id: string, stamp: (ref: unknown, what: string) => Stamp, where: string): DocState {
  const [, , v, t, e] = entry
  if (!isPlainObject(v) || !Array.isArray(t) || t.length > MAX_LIST) throw new InvalidBlockError(`${where} has no values or stamps`)
  const own = t.map((ref, n) => stamp(ref, `${where}.t[${n}]`))
  const at = (n: unknown, what: string): Stamp => {
    const s = Number.isInteger(n) ? own[n as number] : undefined
    if (s === undefined) throw new InvalidBlockError(`${what} is not a stamp index`)
    return s
  }
  let f: Record<string, unknown> = {}
  const state: DocState = { f: {} }
  if (e !== undefined) {
    if (!isPlainObject(e) || Object.keys(e).some(k => k !== 'f' && k !== 'x')) throw new InvalidBlockError(`${where}: bad extras`)
    if (e.f !== undefined) {
      if (!isPlainObject(e.f)) throw new InvalidBlockError(`${where}: bad registers`)
      f = e.f
    }
    if (e.x !== undefined) state.tomb = at(e.x, `${where}.x`)
  }
  const register = (field: string, value: unknown, hasValue: boolean): Register => {
    const path = `${where}.${field}`
    if (field !== '_id' && !isValidFieldName(field)) throw new InvalidBlockError(`${path}: bad field name`)
    const x = f[field]
    let reg: Register
    if (x === undefined || typeof x === 'number') {
      if (!hasValue) throw new InvalidBlockError(`${path} has no value`)
      reg = { s: at(x ?? 0, path) }
    } else {
      if (!isPlainObject(x)) throw new InvalidBlockError(`${path} is not a register`)
      for (const k in x) if (k !== 's' && k !== 'u' && k !== 'inc') throw new InvalidBlockError(`${path} is not a register`)
      reg = { s: at(x.s, `${path}.s`) }
      if ((x.u !== undefined) === hasValue || (x.u !== undefined && x.u !== 1)) throw new InvalidBlockError(`${path}: a register is either unset or has a value`)
      if (x.u === 1) reg.u = true
      if (x.inc !== undefined) {
        if (!Array.isArray(x.inc) || x.inc.length === 0) throw new InvalidBlockError(`${path}.inc is not a non-empty list`)
        const inc: NonNullable<Register['inc']> = {}
        for (const i of x.inc as unknown[]) {
          if (!Array.isArray(i) || i.length !== 2 || typeof i[1] !== 'number' || !Number.isFinite(i[1])) throw new InvalidBlockError(`${path}.inc holds a bad increment`)
          const s = at(i[0], `${path}.inc`)
          inc[`${s[3]}:${s[4]}`] = { n: i[1], s }
        }
        reg.inc = inc
      }
    }
    if (hasValue) {
      try {
        assertJsonValue(value, path)
      } catch (err) {
        throw new InvalidBlockError((err as Error).message)
      }
      reg.v = value
    }
    if (field === '_id' && (reg.u === true || reg.v !== id)) throw new InvalidBlockError(`${path} does not hold the document's id`)
    return reg
  }
  for (const field of Object.keys(v)) state.f[field] = register(field, v[field], true)
  for (const field of Object.keys(f)) if (!Object.prototype.hasOwnProperty.call(v, field)) state.f[field] = register(field, undefined, false)
  return state
}

