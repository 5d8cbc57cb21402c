/**
 * The storage seam: everything a replica persists, behind one interface with two implementations
 * (`MemoryStorage`, `DexieStorage`) that pass the same conformance suite (test/store-conformance.ts).
 *
 * A replica's storage holds: blocks by CID, the current heads, the set of CIDs that known blocks
 * name as parents but that are not stored yet (`missing`), the CRDT state and materialised
 * document of every document, and a small key-value `meta` table. Applying a block — storing it,
 * updating heads/missing and writing the documents it changes — is one atomic transaction.
 */
import { type Doc, type DocState } from '../crdt/index.js'

/** Identifies one document. */
export interface DocKey { coll: string, id: string }

/** A document's CRDT state with the document it materialises to (`null` when deleted). */
export interface DocRecord extends DocKey {
  state: DocState
  doc: Doc | null
}

/** What `applyBlock` needs to apply one block atomically. */
export interface ApplyBlockInput {
  /** CID string of the block */
  cid: string
  /** the block's encoded bytes */
  bytes: Uint8Array
  /** CID strings of the block's parents */
  parents: string[]
  /** distinct documents the block writes */
  keys: DocKey[]
  /**
   * Pure, synchronous merge: given the current state of each of `keys` (same order; `undefined`
   * when new), returns the new records. Runs inside the storage transaction.
   */
  merge: (states: Array<DocState | undefined>) => DocRecord[]
}

/** One document changed by an applied block. */
export interface DocChange extends DocKey {
  /** document before the block (`null` when absent) */
  before: Doc | null
  /** document after the block (`null` when absent) */
  after: Doc | null
}

/** Outcome of `applyBlock`. */
export interface ApplyBlockResult {
  /** false when the block was already stored (nothing changed) */
  applied: boolean
  changes: DocChange[]
}

/** A replica's persistent state. All methods reject with the underlying storage error on I/O failure. */
export interface Storage {
  /** `'memory'` or `'indexeddb'` */
  readonly kind: string
  /** Whether a block is stored. */
  hasBlock (cid: string): Promise<boolean>
  /** Stored bytes of each CID (`undefined` where not stored), same order as `cids`. */
  getBlocks (cids: string[]): Promise<Array<Uint8Array | undefined>>
  /** CID strings of the current heads, sorted. */
  getHeads (): Promise<string[]>
  /** CID strings named as parents by stored blocks but not stored themselves, sorted. */
  getMissing (): Promise<string[]>
  /** Apply one block atomically: all of it or none of it. Idempotent. */
  applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult>
  /** Every existing (not deleted) document of a collection, in `_id` order. */
  getDocs (coll: string): Promise<Doc[]>
  /** One document, or `undefined` when absent or deleted. */
  getDoc (coll: string, id: string): Promise<Doc | undefined>
  /** Names of collections with at least one document record. */
  getCollections (): Promise<string[]>
  /** Read a meta value (structured-cloneable). */
  getMeta<T> (key: string): Promise<T | undefined>
  /** Write a meta value (structured-cloneable). */
  setMeta (key: string, value: unknown): Promise<void>
  /** Release resources. The storage must not be used afterwards. */
  close (): Promise<void>
}

/** Opens per-database storages and remembers which local name maps to which address. */
export interface StorageProvider {
  readonly kind: string
  /** Open (creating if needed) the storage of the database with this manifest CID string. */
  open (dbId: string): Promise<Storage>
  /** Address registered for a local name, if any. */
  lookupName (name: string): Promise<string | undefined>
  /** Register a local name → address. */
  registerName (name: string, address: string): Promise<void>
  /** All registered local names with their addresses. */
  listNames (): Promise<Array<{ name: string, address: string }>>
}

/**
 * Heads and missing-set bookkeeping for adding one block to the DAG (go-ds-crdt `heads.go` does
 * the same job). Invariant: every CID a stored block names as a parent is either stored or in
 * `missing`. So a block arriving while it is in `missing` is referenced by a stored block and is
 * not a head; otherwise nothing stored points to it and it becomes a head.
 */
export function dagUpdate (cid: string, parents: string[], isStored: (cid: string) => boolean, wasMissing: boolean): {
  addHead: boolean, removeHeads: string[], addMissing: string[]
} {
  return {
    addHead: !wasMissing,
    removeHeads: parents,
    addMissing: parents.filter(p => p !== cid && !isStored(p))
  }
}

/** Materialise-and-diff helper shared by implementations: the change list for a merge. */
export function diffRecords (before: Array<DocRecord | undefined>, after: DocRecord[]): DocChange[] {
  return after.map((rec, i) => ({ coll: rec.coll, id: rec.id, before: before[i]?.doc ?? null, after: rec.doc }))
}
