/**
 * Reading the dag-cbor messages of KiteDB's protocols (the replication protocol, wire.ts; the
 * keep protocol, keep-wire.ts) totally: the message map and the fields every protocol shares.
 * Each reader returns the value or throws `InvalidMessageError`.
 */
import { InvalidMessageError } from '../errors.js'
import { decode, isPlainObject } from '../crdt/index.js'

/** A message's map: dag-cbor of at most `max` bytes, a map, version 1. */
export function decodeMap (bytes: Uint8Array, max: number): Record<string, unknown> {
  if (!(bytes instanceof Uint8Array)) throw new InvalidMessageError('not bytes')
  if (bytes.byteLength > max) throw new InvalidMessageError(`${bytes.byteLength} bytes, over the ${max}-byte limit`)
  let raw: unknown
  try {
    raw = decode(bytes)
  } catch (err) {
    throw new InvalidMessageError('not dag-cbor', { cause: err })
  }
  if (!isPlainObject(raw)) throw new InvalidMessageError('not a map')
  if (raw.v !== 1) throw new InvalidMessageError(`unknown version ${String(raw.v)}`)
  return raw
}

/** A database id: a string of 1 to 200 characters. */
export function dbId (value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) throw new InvalidMessageError('db is not a database id')
  return value
}

/** A list of byte strings (`what` names the field in the error). */
export function bytesList (value: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(value)) throw new InvalidMessageError(`${what} is not a list`)
  if (!value.every(v => v instanceof Uint8Array)) throw new InvalidMessageError(`${what} holds a non-byte-string`)
  return value
}
