/**
 * Ops: the changes a block carries — a document's `put` and `del`, a collection's `coll` and
 * `drop` — and the rules every op must meet (names, ids, values), checked when a block is made
 * and when one is received. The merge rules that apply them are in `merge.ts`; blocks that carry
 * them, in `block.ts`.
 */
import { InvalidBlockError } from '../errors.js'
import { type JsonValue, assertJsonValue, isPlainObject, reservedKeyProblem } from './json.js'

/**
 * Write fields of one document: `set` writes LWW registers, `unset` removes fields, `inc` adds
 * to counters. A put also (re)asserts the document's existence, so it revives a deleted document
 * when its HLC is later than the delete.
 */
export interface PutOp {
  op: 'put'
  /** collection name */
  coll: string
  /** document `_id` */
  id: string
  set?: Record<string, JsonValue>
  unset?: string[]
  inc?: Record<string, number>
}

/** Delete one document: a tombstone at the block's HLC. */
export interface DelOp {
  op: 'del'
  coll: string
  id: string
}

/** Create a collection (so it exists, and is listed, on every replica before any document is written). */
export interface CollOp {
  op: 'coll'
  coll: string
}

/**
 * Drop a collection: a tombstone for the whole collection at the block's HLC. Every document
 * write stamped at or before it is hidden; later writes revive only what they write.
 */
export interface DropOp {
  op: 'drop'
  coll: string
}

/** One change: to one document (`put`, `del`) or to one collection (`coll`, `drop`). */
export type Op = PutOp | DelOp | CollOp | DropOp

/** Ops that change one document. */
export type DocOp = PutOp | DelOp

/** Whether an op changes one document (rather than a whole collection). */
export function isDocOp (op: Op): op is DocOp {
  return op.op === 'put' || op.op === 'del'
}

/**
 * Why `name` cannot be a field a put writes, or `undefined` when it can: field names are 1–1024
 * characters, not `_id`, without a leading `$`, a `.` or NUL, and not among `RESERVED_KEYS`.
 */
export function fieldNameProblem (name: string): string | undefined {
  if (typeof name !== 'string' || name.length === 0 || name.length > 1024) return 'field names are 1–1024 characters'
  if (name === '_id') return '_id is not a field an op writes'
  if (name.startsWith('$')) return 'field names cannot start with "$" (operators do)'
  if (name.includes('.')) return 'field names cannot contain "." (it separates the parts of a path)'
  if (name.includes('\0')) return 'field names cannot contain NUL'
  return reservedKeyProblem(name)
}

/** Field names a put may write: see `fieldNameProblem`. */
export function isValidFieldName (name: string): boolean {
  return fieldNameProblem(name) === undefined
}

/** Collection names: 1–128 characters, no `$`, no NUL. */
export function isValidCollectionName (name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= 128 && !name.includes('$') && !name.includes('\0')
}

/** Document ids: non-empty strings of at most 1024 characters. */
export function isValidDocId (id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= 1024
}

/**
 * Check op number `i` of a block: a map of a known kind naming a valid collection (and for a
 * document op a valid id), a put writing each field once under a valid name, values JSON-like
 * (unless `valuesChecked`: the caller checked them), increments finite numbers. Throws
 * `InvalidBlockError` naming the op and the problem.
 */
export function validateOp (op: Op, i: number, valuesChecked = false): void {
  const where = `ops[${i}]`
  if (!isPlainObject(op)) throw new InvalidBlockError(`${where} is not a map`)
  if (!isValidCollectionName(op.coll)) throw new InvalidBlockError(`${where}.coll is not a collection name`)
  if (op.op === 'coll' || op.op === 'drop') {
    if (Object.keys(op).length !== 2) throw new InvalidBlockError(`${where} has unexpected fields`)
    return
  }
  if (!isValidDocId(op.id)) throw new InvalidBlockError(`${where}.id is not a document id`)
  if (op.op === 'del') return
  if (op.op !== 'put') throw new InvalidBlockError(`${where}.op is ${String((op as { op: unknown }).op)}`)
  const written = new Set<string>()
  if (op.set !== undefined) {
    if (!isPlainObject(op.set)) throw new InvalidBlockError(`${where}.set is not a map`)
    for (const [k, v] of Object.entries(op.set)) {
      const bad = fieldNameProblem(k)
      if (bad !== undefined) throw new InvalidBlockError(`${where}.set has bad field name ${JSON.stringify(k)}: ${bad}`)
      if (!valuesChecked) {
        try {
          assertJsonValue(v, `${where}.set.${k}`)
        } catch (err) {
          throw new InvalidBlockError((err as Error).message)
        }
      }
      written.add(k)
    }
  }
  if (op.unset !== undefined) {
    if (!Array.isArray(op.unset)) throw new InvalidBlockError(`${where}.unset is not a list`)
    for (const k of op.unset) {
      if (typeof k !== 'string' || !isValidFieldName(k)) throw new InvalidBlockError(`${where}.unset has bad field name ${JSON.stringify(k)}`)
      if (written.has(k)) throw new InvalidBlockError(`${where} writes field ${k} twice`)
      written.add(k)
    }
  }
  if (op.inc !== undefined) {
    if (!isPlainObject(op.inc)) throw new InvalidBlockError(`${where}.inc is not a map`)
    for (const [k, v] of Object.entries(op.inc)) {
      const bad = fieldNameProblem(k)
      if (bad !== undefined) throw new InvalidBlockError(`${where}.inc has bad field name ${JSON.stringify(k)}: ${bad}`)
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidBlockError(`${where}.inc.${k} is not a finite number`)
      if (written.has(k)) throw new InvalidBlockError(`${where} writes field ${k} twice`)
    }
  }
}
