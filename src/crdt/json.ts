/**
 * Document values: the JSON-like subset KiteDB stores and replicates.
 */
import { ValidationError } from '../errors.js'

/** A JSON-like value: what document fields may hold. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** A document as the application sees it: a plain object with a string `_id`. */
export type Doc = { _id: string, [field: string]: JsonValue }

/** Deepest nesting of arrays/objects accepted in a value. */
export const MAX_DEPTH = 64

/**
 * Keys no document may hold, at any depth: the property names of JavaScript's `Object.prototype`
 * (ECMAScript's, fixed here rather than read from the running engine, so that every replica
 * accepts the same blocks whatever a page adds to its prototypes). A plain object mixes them up
 * with what it inherits — `{}.constructor` exists, `o.__proto__ = v` replaces the prototype and
 * `JSON.parse` keeps a `__proto__` key that spreading then drops — and so do the query and update
 * libraries documents pass through, so such a field could not round-trip. Every other key can.
 */
export const RESERVED_KEYS: ReadonlySet<string> = new Set([
  '__proto__', 'constructor', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', 'toString',
  'valueOf', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__'
])

/** Why `key` cannot be a key of a stored object (`undefined` when it can): one of `RESERVED_KEYS`. */
export function reservedKeyProblem (key: string): string | undefined {
  return RESERVED_KEYS.has(key)
    ? `"${key}" is a property name of JavaScript's Object.prototype: plain objects would confuse it with what they inherit, so it cannot be stored`
    : undefined
}

/**
 * A prototype-free copy of `record`'s own enumerable entries: a map keyed by user data in which no
 * key reads an inherited property and every key, `__proto__` included, is an ordinary entry.
 */
export function dictOf<V> (record?: Readonly<Record<string, V>>): Record<string, V> {
  const out = Object.create(null) as Record<string, V>
  if (record !== undefined) for (const k of Object.keys(record)) out[k] = record[k]
  return out
}

/** `record[key]` when `key` is an own property of `record`, else `undefined` (never an inherited value). */
export function ownValue<V> (record: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined
}

/**
 * Check that `value` is JSON-like: null, boolean, finite number, string, array or plain object of
 * those, no cycles, at most `MAX_DEPTH` deep, no key among `RESERVED_KEYS`. Throws
 * `ValidationError` naming the bad path and the reason.
 */
export function assertJsonValue (value: unknown, path = 'value'): asserts value is JsonValue {
  checkJson(value, path, 0, new Set(), false)
}

/**
 * A deep copy of `value`, checked as `assertJsonValue` checks it (same errors) in the same pass:
 * what the API keeps of a caller's object, so the caller changing it later changes nothing stored.
 * Primitives are returned as they are; arrays and plain objects are new ones.
 */
export function copyJsonValue (value: unknown, path = 'value'): JsonValue {
  return checkJson(value, path, 0, new Set(), true)
}

function checkJson (value: unknown, path: string, depth: number, seen: Set<object>, copy: boolean): JsonValue {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ValidationError(`${path} is ${value}: only finite numbers can be stored`)
    return value
  }
  if (typeof value !== 'object') throw new ValidationError(`${path} is a ${typeof value}: only JSON-like values can be stored`)
  if (depth >= MAX_DEPTH) throw new ValidationError(`${path} is nested deeper than ${MAX_DEPTH} levels`)
  if (seen.has(value)) throw new ValidationError(`${path} contains a cycle`)
  seen.add(value)
  let out: JsonValue
  if (Array.isArray(value)) {
    const items: JsonValue[] = copy ? new Array<JsonValue>(value.length) : value as JsonValue[]
    for (let i = 0; i < value.length; i++) {
      const item = checkJson(value[i], `${path}[${i}]`, depth + 1, seen, copy)
      if (copy) items[i] = item
    }
    out = items
  } else {
    if (!isPlainObject(value)) throw new ValidationError(`${path} is not a plain object (${Object.prototype.toString.call(value)})`)
    const fields: Record<string, JsonValue> = copy ? {} : value as Record<string, JsonValue>
    for (const k of Object.keys(value)) {
      const reserved = reservedKeyProblem(k)
      if (reserved !== undefined) throw new ValidationError(`${path} has the key ${k}: ${reserved}`)
      const v = checkJson(value[k], `${path}.${k}`, depth + 1, seen, copy)
      if (copy) fields[k] = v
    }
    out = fields
  }
  seen.delete(value)
  return out
}

/** True for `{}`-style objects (prototype `Object.prototype` or `null`). */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** Structural equality of two JSON values (key order of objects ignored). */
export function jsonEqual (a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bb = b as JsonValue[]
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]))
  }
  const ao = a as Record<string, JsonValue>
  const bo = b as Record<string, JsonValue>
  const ak = Object.keys(ao)
  if (ak.length !== Object.keys(bo).length) return false
  return ak.every(k => Object.prototype.hasOwnProperty.call(bo, k) && jsonEqual(ao[k], bo[k]))
}
