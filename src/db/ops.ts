/**
 * From API calls to CRDT ops: id generation, document validation, and turning a Mongo-style
 * update (evaluated locally by mingo, docs/design.md "Merge rules") into the field values that
 * replicate — never the operators themselves, except `$inc`, which replicates as a counter delta.
 */
import { ValidationError } from '../errors.js'
import {
  type Doc, type JsonValue, type PutOp, assertJsonValue, copyJsonValue, fieldNameProblem, isPlainObject, isValidDocId, jsonEqual, ownValue
} from '../crdt/index.js'
import { randomHex } from '../sync/index.js'
import { checkPath, checkValue, runMingoUpdate } from './query.js'

let counter = Math.floor(Math.random() * 0xffffff)
const processPart = randomHex(5)

/**
 * A new 24-hex-digit id in MongoDB ObjectId layout: 4 bytes of Unix seconds, 5 random bytes fixed
 * per page/process, 3 bytes of a counter. Ids generated later sort later (to the second).
 */
export function newObjectId (): string {
  const seconds = Math.floor(Date.now() / 1000).toString(16).padStart(8, '0')
  counter = (counter + 1) % 0x1000000
  return seconds + processPart + counter.toString(16).padStart(6, '0')
}

/**
 * Validate a document given to an insert and return a copy with its `_id` (generated when absent).
 * Throws `ValidationError`: not a plain object, `_id` not a non-empty string, a field name that is
 * empty, starts with `$`, contains `.` or is a property name of `Object.prototype` (at any depth:
 * see `RESERVED_KEYS`), or a value that is not JSON-like (function, undefined, NaN, cycle, class
 * instance…).
 */
export function prepareInsert (doc: unknown): Doc {
  if (!isPlainObject(doc)) throw new ValidationError('a document must be a plain object')
  const out: Record<string, JsonValue> = {}
  for (const [k, v] of Object.entries(doc)) {
    if (k === '_id') continue
    const bad = fieldNameProblem(k)
    if (bad !== undefined) throw new ValidationError(`invalid field name ${JSON.stringify(k)}: ${bad}`)
    out[k] = copyJsonValue(v, k)
  }
  let id: unknown = ownValue(doc, '_id')
  if (id === undefined) id = newObjectId()
  if (!isValidDocId(id)) throw new ValidationError('_id must be a non-empty string of at most 1024 characters')
  return { _id: id, ...out }
}

/** The op that writes a whole new document. */
export function insertOp (coll: string, doc: Doc): PutOp {
  const { _id, ...fields } = doc
  return { op: 'put', coll, id: _id, set: fields }
}

/** The op that replaces `existing` (or nothing) by `doc`: sets every field, unsets the ones it lacks. */
export function replaceOp (coll: string, existing: Doc | null, doc: Doc): PutOp {
  const op = insertOp(coll, doc)
  const unset = existing === null ? [] : Object.keys(existing).filter(k => k !== '_id' && ownValue(doc, k) === undefined)
  if (unset.length > 0) op.unset = unset
  return op
}

/** Dates are not JSON-like: `$currentDate` and friends store ISO 8601 strings (which sort by time). */
function datesToStrings (value: unknown): unknown {
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.map(datesToStrings)
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, datesToStrings(v)]))
  return value
}

const NUMERIC_OPERATORS = ['$inc', '$mul']
const ARRAY_OPERATORS = ['$push', '$addToSet', '$pull', '$pullAll', '$pop']

/**
 * MongoDB refuses `$inc`/`$mul` on a field holding a non-number and array operators on a field
 * holding a non-array; mingo silently does nothing. Check first, so a bad update is an error.
 */
function checkOperandTypes (doc: Doc, update: Record<string, unknown>): void {
  for (const [op, fields] of Object.entries(update)) {
    const numeric = NUMERIC_OPERATORS.includes(op)
    if ((!numeric && !ARRAY_OPERATORS.includes(op)) || !isPlainObject(fields)) continue
    for (const path of Object.keys(fields)) {
      const current = valueAtPath(doc, path)
      if (current === undefined || current === null && !numeric) continue
      if (numeric && typeof current !== 'number') throw new ValidationError(`cannot apply ${op} to "${path}": it holds a non-number`)
      if (!numeric && !Array.isArray(current)) throw new ValidationError(`cannot apply ${op} to "${path}": it holds a non-array`)
    }
  }
}

/** The value at a dotted path through nested objects (`undefined` when missing or behind an array). */
function valueAtPath (doc: Doc, path: string): unknown {
  let value: unknown = doc
  for (const part of path.split('.')) {
    if (!isPlainObject(value)) return undefined
    value = ownValue(value, part)
  }
  return value
}

/**
 * Every path an update names (and every `$rename` target) must be a valid path (`checkPath`), and
 * its operand valid data (`checkValue`): an update of `toString`, or a value holding a `__proto__`
 * key, would otherwise be silently dropped by mingo, which confuses such names with what objects
 * inherit. Throws `ValidationError`.
 */
function checkUpdatePaths (update: Record<string, unknown>): void {
  for (const [op, fields] of Object.entries(update)) {
    if (!isPlainObject(fields)) continue
    for (const [path, arg] of Object.entries(fields)) {
      checkPath(path, `${op} path`)
      if (op === '$rename') checkPath(arg, '$rename target')
      checkValue(arg, `${op}.${path}`)
    }
  }
}

/** Throw `ValidationError` unless `update` is a valid update document (checked on an empty document). */
export function checkUpdate (update: unknown): void {
  applyUpdate('check', { _id: 'check' }, update)
}

/**
 * Apply a Mongo update document (`{$set: …, $inc: …}`) to `before` with mingo and return the
 * resulting document and the op that replicates it; see `applyUpdates`.
 */
export function applyUpdate (coll: string, before: Doc, update: unknown): { after: Doc, op: PutOp | undefined } {
  return applyUpdates(coll, [before], update)[0]
}

/**
 * Apply a Mongo update document (`{$set: …, $inc: …}`) to each of `befores` with mingo (one call
 * for all) and return, per document in order, the resulting document and the op that replicates
 * it: changed top-level fields in `set`, removed ones in `unset`, and top-level `$inc` fields as
 * counter deltas in `inc`; `op: undefined` when nothing changes. Throws `ValidationError` for an
 * update that is not an operator document, uses an unknown operator, changes `_id`, or produces a
 * non-JSON value (in any document: then none is returned).
 */
export function applyUpdates (coll: string, befores: Doc[], update: unknown): Array<{ after: Doc, op: PutOp | undefined }> {
  if (!isPlainObject(update) || Object.keys(update).length === 0) throw new ValidationError('an update must be a non-empty object of update operators like {$set: {…}}')
  for (const key of Object.keys(update)) {
    if (!key.startsWith('$')) throw new ValidationError(`update key "${key}" is not an update operator (use {$set: {${key}: …}})`)
  }
  checkUpdatePaths(update)
  for (const before of befores) checkOperandTypes(before, update)
  const afters = befores.map(before => copyJsonValue(before) as Record<string, unknown>)
  try {
    runMingoUpdate(afters, update)
  } catch (err) {
    throw new ValidationError(`invalid update: ${(err as Error).message}`, { cause: err })
  }
  const touched = touchedFields(update)
  return befores.map((before, i) => opOf(coll, before, afters[i], update, touched))
}

/**
 * The top-level fields an update document names (each path's first segment, and `$rename`
 * targets'): an update operator changes nothing else, so no other field of a copy of a stored
 * document needs checking or comparing.
 */
function touchedFields (update: Record<string, unknown>): Set<string> {
  const touched = new Set<string>()
  const add = (path: unknown): void => { if (typeof path === 'string') touched.add(path.split('.')[0]) }
  for (const [op, fields] of Object.entries(update)) {
    if (!isPlainObject(fields)) continue
    for (const [path, arg] of Object.entries(fields)) {
      add(path)
      if (op === '$rename') add(arg)
    }
  }
  return touched
}

/**
 * The checked document `after` an update of `before`, and the op that replicates it (see
 * `applyUpdates`); `touched`: the top-level fields the update names (`touchedFields`).
 */
function opOf (coll: string, before: Doc, after: Record<string, unknown>, update: Record<string, unknown>, touched: Set<string>): { after: Doc, op: PutOp | undefined } {
  if (after._id !== before._id) throw new ValidationError('an update cannot change _id')
  for (const [k, v] of Object.entries(after)) {
    if (k === '_id' || !touched.has(k)) continue
    after[k] = datesToStrings(v)
    const bad = fieldNameProblem(k)
    if (bad !== undefined) throw new ValidationError(`invalid field name ${JSON.stringify(k)}: ${bad}`)
    assertJsonValue(after[k], k)
  }
  const incFields = new Set<string>()
  const inc: Record<string, number> = {}
  if (isPlainObject(update.$inc)) {
    for (const [path, delta] of Object.entries(update.$inc)) {
      // Only a top-level numeric field replicates as a counter; a nested path rewrites its top-level field.
      if (!path.includes('.') && typeof delta === 'number' && (ownValue(before, path) === undefined || typeof ownValue(before, path) === 'number')) {
        incFields.add(path)
        inc[path] = delta
      }
    }
  }
  const set: Record<string, JsonValue> = {}
  const unset: string[] = []
  for (const k of touched) {
    if (k === '_id' || incFields.has(k) || !Object.prototype.hasOwnProperty.call(after, k)) continue
    const v = after[k] as JsonValue
    if (!jsonEqual(ownValue(before, k), v)) set[k] = v
  }
  for (const k of touched) if (k !== '_id' && ownValue(before, k) !== undefined && !Object.prototype.hasOwnProperty.call(after, k)) unset.push(k)
  const changed = Object.keys(set).length > 0 || unset.length > 0 || Object.values(inc).some(n => n !== 0)
  if (!changed) return { after: after as Doc, op: undefined }
  const op: PutOp = { op: 'put', coll, id: before._id }
  if (Object.keys(set).length > 0) op.set = set
  if (unset.length > 0) op.unset = unset
  if (Object.keys(inc).length > 0) op.inc = inc
  return { after: after as Doc, op }
}
