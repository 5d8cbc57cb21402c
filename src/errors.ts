/**
 * Typed errors shared by every layer. This module imports nothing, so any layer (including the
 * pure `crdt/` layer) may use it without creating an import cycle.
 *
 * Every error KiteDB throws on purpose is a `KiteError` with a stable string `code`, so callers can
 * branch on `err.code` rather than on messages.
 */

/** Base class of every KiteDB error. `code` is stable across versions; `message` is for people. */
export class KiteError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'KiteError' // each subclass sets its own: class names do not survive minification
    this.code = code
  }
}

/** An argument from the API is malformed (not a plain object, bad `_id`, unknown operator…). */
export class ValidationError extends KiteError {
  override readonly name: string = 'ValidationError'
  constructor (message: string, options?: { cause?: unknown }) { super('ERR_VALIDATION', message, options) }
}

/** Where a document misses its collection's schema: a JSON Pointer into it, and what is wrong there. */
export interface SchemaProblem {
  /** JSON Pointer (RFC 6901) of the offending value, `''` for the document itself */
  path: string
  message: string
}

/** A local write's document does not fit its collection's JSON Schema; nothing was written. */
export class SchemaError extends ValidationError {
  override readonly name: string = 'SchemaError'
  /** the collection, the document's `_id`, and every problem found */
  constructor (readonly collection: string, readonly id: string, readonly problems: SchemaProblem[], message: string) {
    super(message)
  }
}

/**
 * The browser (or disk) refused to store more: the origin's storage quota is used up. The write
 * that met it was not applied, not even in part (each block is one transaction). Free space, or
 * ask for persistent storage (`KiteDB.persist()`), and write again.
 */
export class StorageFullError extends KiteError {
  override readonly name: string = 'StorageFullError'
  constructor (message = 'the storage quota is used up: nothing was written', options?: { cause?: unknown }) { super('ERR_STORAGE_FULL', message, options) }
}

/** Whether `err` (or what it wraps) is a storage quota error: IndexedDB's `QuotaExceededError`, through Dexie or not. */
export function isQuotaError (err: unknown): boolean {
  for (let e = err as { name?: string, inner?: unknown, cause?: unknown } | undefined, depth = 0; e !== undefined && e !== null && depth < 5; e = (e.inner ?? e.cause) as typeof e, depth++) {
    if (e.name === 'QuotaExceededError') return true
  }
  return false
}

/** An insert used an `_id` that already exists in the collection. Nothing was written. */
export class DuplicateKeyError extends KiteError {
  override readonly name: string = 'DuplicateKeyError'
  readonly id: string
  constructor (collection: string, id: string) {
    super('ERR_DUPLICATE_KEY', `a document with _id "${id}" already exists in collection "${collection}"`)
    this.id = id
  }
}

/** A named thing (database, collection, peer announcement) could not be found. */
export class NotFoundError extends KiteError {
  override readonly name: string = 'NotFoundError'
  constructor (message: string) { super('ERR_NOT_FOUND', message) }
}

/** The database (or KiteDB network) was closed; open it again to use it. */
export class DatabaseClosedError extends KiteError {
  override readonly name: string = 'DatabaseClosedError'
  constructor (name: string) { super('ERR_DATABASE_CLOSED', `database "${name}" is closed`) }
}

/** A block's bytes do not decode to a valid block, or do not match the CID they were sent as. */
export class InvalidBlockError extends KiteError {
  override readonly name: string = 'InvalidBlockError'
  constructor (reason: string, options?: { cause?: unknown }, code = 'ERR_INVALID_BLOCK') { super(code, `invalid block: ${reason}`, options) }
}

/**
 * A received block's HLC is further ahead of this replica's wall clock than the bound
 * (`MAX_CLOCK_AHEAD_MS`): it is not applied now. Not a verdict for good: the block is fetched
 * again later and accepted once this replica's clock is within the bound, so replicas converge.
 */
export class ClockSkewError extends InvalidBlockError {
  override readonly name: string = 'ClockSkewError'
  /** how far ahead of this replica's wall clock the block's HLC is, ms */
  readonly aheadMs: number
  constructor (aheadMs: number, boundMs: number) {
    super(`its HLC is ${aheadMs} ms ahead of this replica's clock, over the ${boundMs}-ms bound (held until the clock catches up)`, undefined, 'ERR_CLOCK_SKEW')
    this.aheadMs = aheadMs
  }
}

/** A message received from the network does not decode to a valid message of the wire protocol. */
export class InvalidMessageError extends KiteError {
  override readonly name: string = 'InvalidMessageError'
  constructor (reason: string, options?: { cause?: unknown }) { super('ERR_INVALID_MESSAGE', `invalid message: ${reason}`, options) }
}

/** A database address (`/kite/<cid>`) or share link could not be parsed. */
export class InvalidAddressError extends KiteError {
  override readonly name: string = 'InvalidAddressError'
  constructor (reason: string, options?: { cause?: unknown }) { super('ERR_INVALID_ADDRESS', reason, options) }
}

/** A network operation did not finish in time. */
export class TimeoutError extends KiteError {
  override readonly name: string = 'TimeoutError'
  constructor (message: string) { super('ERR_TIMEOUT', message) }
}

/** The network layer failed (cannot reach any relay, no peer has the data, …). */
export class NetworkError extends KiteError {
  override readonly name: string = 'NetworkError'
  constructor (message: string, options?: { cause?: unknown }) { super('ERR_NETWORK', message, options) }
}

/** `KiteDB.create` was given the name of a database that already exists on this device. */
export class DatabaseExistsError extends KiteError {
  override readonly name: string = 'DatabaseExistsError'
  constructor (name: string) { super('ERR_DATABASE_EXISTS', `a database named "${name}" already exists on this device`) }
}

/** `Database.openCollection` / `collection` named a collection that does not exist (or is not open). */
export class CollectionNotFoundError extends KiteError {
  override readonly name: string = 'CollectionNotFoundError'
  constructor (message: string) { super('ERR_COLLECTION_NOT_FOUND', message) }
}

/** `Database.createCollection` named a collection that already exists. */
export class CollectionExistsError extends KiteError {
  override readonly name: string = 'CollectionExistsError'
  constructor (name: string) { super('ERR_COLLECTION_EXISTS', `collection "${name}" already exists`) }
}

/**
 * Access was refused: this replica's key is not on the database's write list, the database is
 * encrypted and no (or the wrong) key was given, or its manifest has not arrived yet.
 */
export class AccessError extends KiteError {
  override readonly name: string = 'AccessError'
  constructor (message: string, options?: { cause?: unknown }) { super('ERR_ACCESS', message, options) }
}

/**
 * A snapshot this replica joined from disagreed with the history it summarises: the audit that
 * follows a snapshot join (docs/snapshots.md, "Audit") folded the blocks the snapshot covers and
 * found other states. The states were repaired to the history's; this reports who produced the
 * snapshot. Delivered as an `error` event; replication goes on.
 */
export class SnapshotMismatchError extends KiteError {
  override readonly name: string = 'SnapshotMismatchError'
  /** CID string of the snapshot's root */
  readonly root: string
  /** the producer's writer key (as `formatPublicKey` writes it), which signed the root */
  readonly producer: string
  /** the peer that served the snapshot */
  readonly peer: string
  /** documents and collections whose state differed */
  readonly differences: number
  constructor (root: string, producer: string, peer: string, differences: number) {
    super('ERR_SNAPSHOT_MISMATCH', `snapshot ${root} by writer ${producer} (served by ${peer}) disagreed with the history in ${differences} states; repaired to the history's`)
    this.root = root
    this.producer = producer
    this.peer = peer
    this.differences = differences
  }
}

/**
 * A keeper refused to keep what this replica holds because a quota is spent: the database's
 * (`--keep-quota`), the requesting peer's, or the keeper's in all (`--keep-max`, `--keep-total`).
 * Nothing that keeper acknowledged before is lost; what it refused stays on this device (and on
 * any other keeper). Delivered as the database's `error` event, by `keepers()`, and by `whenKept`
 * when no keeper keeps everything.
 */
export class KeeperFullError extends KiteError {
  /** peer id of the keeper */
  readonly keeper: string
  constructor (keeper: string, message: string) {
    super('ERR_KEEPER_FULL', `keeper ${keeper} is full: ${message}`)
    this.keeper = keeper
  }
}

/**
 * A keeper refused a request for another reason than a quota: the manifest could not be had,
 * the input was invalid, or the keeper is busy. `reason` is the keeper's code
 * (`'manifest-unavailable'`, `'refused'`, `'busy'`, `'not-kept'`).
 */
export class KeeperRefusedError extends KiteError {
  readonly keeper: string
  readonly reason: string
  constructor (keeper: string, reason: string, message: string) {
    super('ERR_KEEPER_REFUSED', `keeper ${keeper} refused (${reason}): ${message}`)
    this.keeper = keeper
    this.reason = reason
  }
}
