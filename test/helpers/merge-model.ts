/**
 * A reference model of KiteDB's merge rules, written from their statement in docs/design.md
 * ("Merge rules") and sharing no code with src/crdt, so a property that compares the implementation
 * with it can fail when the implementation's order, tie-break or counter rule is wrong.
 *
 * It is a fold over the whole set of writes, not an incremental merge: for each document it looks
 * at every write to it at once.
 *
 * - A write's stamp is `(t, c, r, block CID, op index)`, compared in that order (numbers as
 *   numbers, strings by UTF-16 code units): no two writes tie.
 * - A document's tombstone is its latest delete or its collection's latest drop, whichever is later.
 * - A document exists when a put to it is stamped after its tombstone.
 * - A field's register is its latest set or unset; it shows its value when that was a set stamped
 *   after the tombstone.
 * - Increments of a field stamped after its register and after the tombstone add to the register's
 *   value (0 when it is not a number); increments before the register were absorbed by it.
 * - A collection exists when its latest create is later than its latest drop, or a document in it exists.
 */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** The ops the model understands (the shapes of src/crdt's ops, restated). */
export type ModelOp =
  | { op: 'put', coll: string, id: string, set?: Record<string, Json>, unset?: string[], inc?: Record<string, number> }
  | { op: 'del', coll: string, id: string }
  | { op: 'coll', coll: string }
  | { op: 'drop', coll: string }

/** One block: its HLC, its CID (text) and its ops. */
export interface ModelBlock {
  hlc: { t: number, c: number, r: string }
  cid: string
  ops: ModelOp[]
}

type Key = [number, number, string, string, number]

function compare (a: Key, b: Key): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    const y = b[i]
    if (x < y) return -1
    if (x > y) return 1
  }
  return 0
}

interface Write { key: Key, op: ModelOp }

function latest (writes: Write[]): Write | undefined {
  let best: Write | undefined
  for (const w of writes) if (best === undefined || compare(w.key, best.key) > 0) best = w
  return best
}

const laterThan = (key: Key, than: Key | undefined): boolean => than === undefined || compare(key, than) > 0

/** The documents and collections that `blocks` (a set: duplicates are ignored by CID) make. */
export function modelState (blocks: ModelBlock[]): { collections: string[], docs: Map<string, Array<Record<string, Json>>> } {
  const unique = new Map<string, ModelBlock>()
  for (const b of blocks) unique.set(b.cid, b)
  const writes: Write[] = []
  for (const b of unique.values()) b.ops.forEach((op, i) => writes.push({ key: [b.hlc.t, b.hlc.c, b.hlc.r, b.cid, i], op }))

  const colls = new Set<string>()
  const ids = new Map<string, Set<string>>()
  for (const { op } of writes) {
    colls.add(op.coll)
    if (op.op === 'put' || op.op === 'del') {
      let s = ids.get(op.coll)
      if (s === undefined) ids.set(op.coll, s = new Set())
      s.add(op.id)
    }
  }

  const docs = new Map<string, Array<Record<string, Json>>>()
  const existing: string[] = []
  for (const coll of [...colls].sort()) {
    const drop = latest(writes.filter(w => w.op.op === 'drop' && w.op.coll === coll))?.key
    const create = latest(writes.filter(w => w.op.op === 'coll' && w.op.coll === coll))?.key
    const out: Array<Record<string, Json>> = []
    for (const id of [...ids.get(coll) ?? []].sort()) {
      const mine = writes.filter(w => (w.op.op === 'put' || w.op.op === 'del') && w.op.coll === coll && w.op.id === id)
      const del = latest(mine.filter(w => w.op.op === 'del'))?.key
      const tomb = del === undefined ? drop : drop === undefined ? del : compare(del, drop) > 0 ? del : drop
      const puts = mine.filter(w => w.op.op === 'put') as Array<{ key: Key, op: Extract<ModelOp, { op: 'put' }> }>
      const lastPut = latest(puts)
      if (lastPut === undefined || !laterThan(lastPut.key, tomb)) continue
      const doc: Record<string, Json> = { _id: id }
      const fields = new Set<string>()
      for (const { op } of puts) for (const f of [...Object.keys(op.set ?? {}), ...op.unset ?? [], ...Object.keys(op.inc ?? {})]) fields.add(f)
      for (const f of [...fields].sort()) {
        if (f === '_id') continue
        const register = latest(puts.filter(w => Object.hasOwn(w.op.set ?? {}, f) || (w.op.unset ?? []).includes(f)))
        const set = register !== undefined && Object.hasOwn((register.op as { set?: Record<string, Json> }).set ?? {}, f)
        let value: Json | undefined = set && laterThan(register.key, tomb) ? (register.op as { set: Record<string, Json> }).set[f] : undefined
        const incs = puts.filter(w => Object.hasOwn(w.op.inc ?? {}, f) && laterThan(w.key, tomb) && (register === undefined || laterThan(w.key, register.key)))
        if (incs.length > 0) {
          let sum = typeof value === 'number' ? value : 0
          for (const w of incs) sum += (w.op.inc as Record<string, number>)[f]
          value = sum
        }
        if (value !== undefined) doc[f] = value
      }
      out.push(doc)
    }
    docs.set(coll, out)
    if ((create !== undefined && laterThan(create, drop)) || out.length > 0) existing.push(coll)
  }
  return { collections: existing, docs }
}
