/**
 * A keeper's quotas and expiry (docs/keepers.md, "Bounds"): what it will store, for whom, and for
 * how long. Every limit is an option (`kitedb-relay --keep-…` flags) with a default meant for a
 * small public keeper. The store checks them inside its write queue, so a write that would go
 * over one is refused whole, with a typed reason the client surfaces (`KeeperFullError`).
 */
import { ValidationError } from '../errors.js'
import { type KeepError } from '../sync/keep-wire.js'

/** What a keeper keeps at most. */
export interface KeepLimits {
  /** bytes one database may take: blocks, chunks, snapshot nodes and manifest (default 256 MiB; `--keep-quota`) */
  quotaBytes: number
  /** databases kept in all (default 10,000; `--keep-max`) */
  maxDatabases: number
  /** bytes kept in all (default 16 GiB; `--keep-total`) */
  totalBytes: number
  /**
   * databases one peer may ask to keep (default 64; `--keep-per-peer`): with `quotaBytes`, it
   * bounds what one peer id can make the keeper store
   */
  maxPerPeer: number
  /** a database nobody handed anything to or fetched from for this long is deleted, ms (default 90 days; `--keep-idle-days`) */
  idleMs: number
  /** how often idle databases are looked for, ms (default one hour) */
  sweepMs: number
  /** keep requests handled at once; more are refused as `busy` (default 32) */
  maxConcurrent: number
}

export const DEFAULT_KEEP_LIMITS: Readonly<KeepLimits> = Object.freeze({
  quotaBytes: 256 * 1024 * 1024,
  maxDatabases: 10_000,
  totalBytes: 16 * 1024 ** 3,
  maxPerPeer: 64,
  idleMs: 90 * 24 * 60 * 60 * 1000,
  sweepMs: 60 * 60 * 1000,
  maxConcurrent: 32
})

/** `DEFAULT_KEEP_LIMITS` with `options` applied. Throws `ValidationError` for an unknown key or a value that is not a positive number. */
export function resolveKeepLimits (options: Partial<KeepLimits> = {}): KeepLimits {
  const out: KeepLimits = { ...DEFAULT_KEEP_LIMITS }
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue
    if (!(key in DEFAULT_KEEP_LIMITS)) throw new ValidationError(`unknown keep limit "${key}"; options: ${Object.keys(DEFAULT_KEEP_LIMITS).join(', ')}`)
    if (typeof value !== 'number' || !(value > 0)) throw new ValidationError(`keep limit ${key} must be a positive number, not ${String(value)}`)
    out[key as keyof KeepLimits] = value
  }
  return out
}

/** What one kept database takes, as its record says. */
export interface KeptUsage {
  bytes: number
}

/** What the keeper takes in all. */
export interface KeeperUsage {
  databases: number
  bytes: number
}

/** The refusal of adding `adding` bytes to a database using `db`, or undefined when it fits every quota. */
export function bytesProblem (limits: KeepLimits, db: KeptUsage, all: KeeperUsage, adding: number): KeepError | undefined {
  if (adding <= 0) return undefined
  if (db.bytes + adding > limits.quotaBytes) {
    return { code: 'full', message: `the database would take ${db.bytes + adding} bytes, over this keeper's ${limits.quotaBytes}-byte quota per database` }
  }
  if (all.bytes + adding > limits.totalBytes) {
    return { code: 'full', message: `this keeper holds ${all.bytes} bytes, and ${adding} more would pass its ${limits.totalBytes}-byte total` }
  }
  return undefined
}

/** The refusal of a new database asked by a peer already keeping `peerDatabases`, or undefined. */
export function newDatabaseProblem (limits: KeepLimits, all: KeeperUsage, peerDatabases: number, isNew: boolean): KeepError | undefined {
  if (peerDatabases >= limits.maxPerPeer) {
    return { code: 'full', message: `this peer already asked this keeper to keep ${peerDatabases} databases, its most (${limits.maxPerPeer})` }
  }
  if (isNew && all.databases >= limits.maxDatabases) {
    return { code: 'full', message: `this keeper keeps ${all.databases} databases, its most (${limits.maxDatabases})` }
  }
  return undefined
}
