/**
 * Secondary-index keys. A key is an IndexedDB key (an array) that orders values in MongoDB's
 * type order (null < numbers < strings < objects < arrays < booleans), so IndexedDB's own
 * ordering answers equality and range predicates with Mongo's type bracketing.
 *
 * One index over paths `[p1, p2, …]` stores, for each document, one key `[part(p1), part(p2), …]`
 * per combination of values (multikey: arrays along a path are unwound, as MongoDB does; a missing
 * field indexes as null). Keys are a superset of what a query can match: results are always
 * filtered again by the query itself, so an extra key costs time, never correctness.
 */
import { type Doc, type JsonValue, isPlainObject, ownValue } from '../crdt/index.js'

/** One component of an index key: `[rank]` or `[rank, value]`. */
export type KeyPart = [number] | [number, number | string]
/** A full index key: one part per indexed path. */
export type IndexKey = KeyPart[]

/** Type ranks, in MongoDB's sort order. */
export const RANK = {
  /** an empty array sorts before null in MongoDB */
  emptyArray: 5,
  null: 10,
  number: 20,
  string: 30,
  object: 40,
  array: 50,
  boolean: 60,
  /** above every rank: an upper bound for "anything after this prefix" */
  max: 999
} as const

/** The key part of one scalar or nested value. */
export function encodeValue (value: JsonValue | undefined): KeyPart {
  if (value === null || value === undefined) return [RANK.null]
  if (typeof value === 'number') return [RANK.number, value]
  if (typeof value === 'string') return [RANK.string, value]
  if (typeof value === 'boolean') return [RANK.boolean, value ? 1 : 0]
  if (Array.isArray(value)) return value.length === 0 ? [RANK.emptyArray] : [RANK.array, JSON.stringify(value)]
  return [RANK.object, JSON.stringify(value)]
}

/**
 * The values at a dotted path, MongoDB style: arrays met on the way are traversed element by
 * element; a branch where the path is missing yields `undefined`.
 */
export function valuesAt (doc: JsonValue | undefined, path: string): Array<JsonValue | undefined> {
  const parts = path.split('.')
  const out: Array<JsonValue | undefined> = []
  const walk = (value: JsonValue | undefined, i: number): void => {
    if (i === parts.length) { out.push(value); return }
    if (Array.isArray(value)) {
      if (value.length === 0) out.push(undefined)
      for (const el of value) walk(el, i)
      return
    }
    if (isPlainObject(value)) {
      walk(ownValue(value as Record<string, JsonValue>, parts[i]), i + 1)
      return
    }
    out.push(undefined)
  }
  walk(doc, 0)
  return out
}

/** The key parts a document contributes for one path (deduplicated). */
export function keyPartsAt (doc: Doc, path: string): KeyPart[] {
  // The usual case, a top-level field holding a scalar or an object: its one part, without
  // walking the path (the walk and the dedupe took about 35 ms of a 10,000-document bulk insert's
  // main thread in Chromium; in Node, the keys of 10,000 documents for two indexes 13.5 → 1.8 ms).
  if (!path.includes('.')) {
    const v = ownValue(doc, path)
    if (!Array.isArray(v)) return [encodeValue(v)]
  }
  const parts: KeyPart[] = []
  for (const v of valuesAt(doc, path)) {
    if (Array.isArray(v) && v.length > 0) {
      for (const el of v) parts.push(encodeValue(el))
    } else {
      parts.push(encodeValue(v))
    }
  }
  return dedupe(parts)
}

/** Every index key of `doc` for an index over `paths` (the cartesian product of its parts). */
export function indexKeys (doc: Doc, paths: string[]): IndexKey[] {
  let keys: IndexKey[] = [[]]
  for (const path of paths) {
    const parts = keyPartsAt(doc, path)
    const next: IndexKey[] = []
    for (const k of keys) for (const p of parts) next.push([...k, p])
    keys = next
  }
  return dedupe(keys)
}

/**
 * Whether a document makes an index over `paths` multikey: more than one value at some path. On a
 * multikey index, bounds of a range cannot be intersected (MongoDB matches `{a: {$gte: 0, $lt: 2}}`
 * on `a: [2, -1]`: one element meets each bound), so the planner uses one bound.
 */
export function isMultikey (doc: Doc, paths: string[]): boolean {
  return paths.some(p => keyPartsAt(doc, p).length > 1)
}

/** IndexedDB key order (numbers < strings < arrays; arrays element-wise, shorter prefix first). */
export function compareKeys (a: unknown, b: unknown): number {
  const ta = keyType(a)
  const tb = keyType(b)
  if (ta !== tb) return ta - tb
  if (ta === 2) {
    const x = a as unknown[]
    const y = b as unknown[]
    const n = Math.min(x.length, y.length)
    for (let i = 0; i < n; i++) {
      const c = compareKeys(x[i], y[i])
      if (c !== 0) return c
    }
    return x.length - y.length
  }
  return (a as number | string) < (b as number | string) ? -1 : (a as number | string) > (b as number | string) ? 1 : 0
}

function keyType (v: unknown): number {
  return typeof v === 'number' ? 0 : typeof v === 'string' ? 1 : 2
}

function dedupe<T> (items: T[]): T[] {
  if (items.length < 2) return items
  const seen = new Set<string>()
  return items.filter(i => {
    const k = JSON.stringify(i)
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}

/** A range over full index keys, as IndexedDB's `IDBKeyRange`: bounds inclusive unless `…Open`. */
export interface KeyRange {
  lower: IndexKey
  upper: IndexKey
  lowerOpen?: boolean
  upperOpen?: boolean
}

/** Whether `key` lies in `range`. */
export function inRange (key: IndexKey, range: KeyRange): boolean {
  const lo = compareKeys(key, range.lower)
  const hi = compareKeys(key, range.upper)
  return (range.lowerOpen === true ? lo > 0 : lo >= 0) && (range.upperOpen === true ? hi < 0 : hi <= 0)
}
