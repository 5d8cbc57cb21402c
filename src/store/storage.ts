/**
 * The storage seam: everything a replica persists, behind one interface with two implementations
 * (`MemoryStorage`, `DexieStorage`) that pass the same conformance suite (`storageConformance`,
 * store/conformance/), which any other implementation can run too.
 *
 * A replica's storage holds: blocks by CID; the current heads; `missing`, the CIDs that stored
 * blocks name as parents but that are not stored yet; `covered`, the CIDs of blocks below an
 * installed snapshot's heads that are not stored (their effects are in the states; they are never
 * fetched: the DAG bookkeeping treats them as stored); per document its CRDT state and, apart, its
 * materialised document (so queries never read CRDT bookkeeping); per collection its CRDT state
 * (create/drop stamps); declared secondary indexes and their entries; a key-value `meta` table.
 * Applying a block — storing it, updating heads/missing, writing the states, documents and index
 * entries it changes — is one atomic transaction.
 */
import { type CollState, type Doc, type DocKey, type DocState, type MergedStates, materialise, parseDocKey } from '../crdt/index.js'
import { type IndexKey, type KeyRange, indexKeys } from './keys.js'

export { type DocKey, docKey, dagUpdate } from '../crdt/index.js'

/** What a merge sees: current states of the documents and collections a block touches. */
export interface MergeInput {
  /**
   * Empty when the merge starts; the merge fills it, by `docKey`, with each document of `docs` as
   * it materialises now (`null`: absent). The storage reads it, not its stored documents, to tell
   * what changed (`DocChange.before`) and which documents and index entries to replace.
   */
  before: Map<string, Doc | null>
  /** by `docKey`: the state of every document the block writes, and of every document of a collection it drops (`undefined` when new) */
  docs: Map<string, DocState | undefined>
  /** by name: the state of every collection the block touches */
  colls: Map<string, CollState | undefined>
}

/** Fill `input.before` as a merge must, before it merges: each document of `input.docs` as it materialises now. */
export function fillBefore ({ docs, colls, before }: MergeInput): void {
  for (const [k, state] of docs) before.set(k, materialise(state, colls.get(parseDocKey(k).coll)?.dropped))
}

/** What a merge produces: new states, and documents as they now materialise (`null`: absent). */
export type MergeOutput = MergedStates

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
  /** distinct collections the block touches */
  colls: string[]
  /** collections the block drops: the states of all their documents are loaded for the merge */
  dropped: string[]
  /**
   * Pure, synchronous merge; runs inside the storage transaction. A storage may run it more than
   * once (a first attempt on cached or assumed states, abandoned); only the output of its last
   * run is written. When it throws, `applyBlock` rejects with that error and writes nothing.
   */
  merge: (input: MergeInput) => MergeOutput
  /** content-addressed nodes to store with the block (its chunks) */
  nodes?: StoredNode[]
  /**
   * The block was just made by this replica: it is not stored, covered or missing yet, so a
   * storage may skip those lookups
   */
  local?: boolean
  /**
   * The documents the block writes are expected not to exist (an insert), so a storage may write
   * without reading their states first, provided it checks they are absent before committing
   */
  expectAbsent?: boolean
}

/** A content-addressed node that is not a DAG block (a block's chunk), stored by CID. */
export interface StoredNode {
  cid: string
  bytes: Uint8Array
}

/**
 * What `installSnapshot` needs to install a verified snapshot (docs/snapshots.md) atomically.
 * Precondition: every parent of every head is in `covered`.
 */
export interface InstallSnapshotInput {
  /** every document of the snapshot: their local states are loaded for the merge */
  keys: DocKey[]
  /** every collection of the snapshot (with a state, or holding one of its documents) */
  colls: string[]
  /** collections the snapshot has a drop stamp for: the states of all their local documents are loaded for the merge */
  dropped: string[]
  /**
   * Pure, synchronous join of the snapshot's states into the local ones; runs inside the
   * transaction, as `ApplyBlockInput.merge` does. When it throws, `installSnapshot` rejects with
   * that error and writes nothing.
   */
  merge: (input: MergeInput) => MergeOutput
  /** CID strings of every block at or below the snapshot's heads (heads included); may be empty, with no heads, to write states only */
  covered: string[]
  /** the head blocks, stored (so this replica can serve them) and made heads unless a stored block names them */
  heads: Array<{ cid: string, bytes: Uint8Array }>
  /** the head blocks' chunks */
  nodes?: StoredNode[]
}

/**
 * An `installSnapshot` input given in parts, for states that arrive over time (a snapshot's pages
 * while they are fetched): `next` resolves each part in turn, then `undefined`. The storage joins
 * each part's states as it comes, all in the one transaction, and takes the DAG update from the
 * union of the parts' `covered`, `heads` and `nodes` after the last. When `next` rejects, the
 * install rejects with that error and writes nothing. `next` is awaited with the transaction held
 * open (other writes and reads of the storage wait), so it should resolve or reject within
 * seconds; the storage gives up on a part after `SNAPSHOT_PART_WAIT_MS`.
 */
export interface InstallSnapshotParts {
  next: () => Promise<InstallSnapshotInput | undefined>
}

/** How long `installSnapshot` waits for one part of an `InstallSnapshotParts`, ms (then it rejects, writing nothing). */
export const SNAPSHOT_PART_WAIT_MS = 120_000

/** Hints to `Storage.read`. */
export interface ReadOptions {
  /** the documents read are the targets of this replica's next write (see `Storage.read`) */
  forWrite?: boolean
}

/** What a snapshot is made from, read in one transaction (see `readSnapshotSource`). */
export interface SnapshotSource {
  /** CID strings of the heads, sorted */
  heads: string[]
  /** how many CIDs are missing (a snapshot is only made from a complete DAG) */
  missing: number
  /** the state of every document, in (collection, id) order; read-only */
  docs: Array<DocKey & { state: DocState }>
  /** the state of every collection that has one, by name; read-only */
  colls: Array<{ coll: string, state: CollState }>
  /** CID strings of every stored block (chunks excluded) and every covered CID, sorted */
  blocks: string[]
}

/** One document changed by an applied block. */
export interface DocChange extends DocKey {
  /** document before the block (`null` when absent) */
  before: Doc | null
  /** document after the block (`null` when absent) */
  after: Doc | null
}

/** Outcome of `installSnapshot`. */
export interface InstallSnapshotResult {
  /** documents whose materialised value changed */
  changes: DocChange[]
  /** collections whose existence changed (created or dropped) */
  collections: string[]
  /** the heads after the install (sorted) */
  heads: string[]
}

/** Outcome of `applyBlock`. */
export interface ApplyBlockResult {
  /** false when the block was already stored or covered (nothing changed) */
  applied: boolean
  /** documents whose materialised value changed */
  changes: DocChange[]
  /** collections whose existence changed (created or dropped) */
  collections: string[]
  /** the heads after the block (sorted) */
  heads: string[]
}

/** A declared secondary index. */
export interface IndexInfo {
  /** the name: the paths joined by `+`, e.g. `age` or `city+age` */
  name: string
  /** the indexed paths (dotted paths allowed) */
  paths: string[]
  /** false while it is being built over existing documents: the planner does not use it yet */
  ready: boolean
  /** true once any document had more than one value at an indexed path (it stays true) */
  multikey: boolean
}

/** Progress of an index build. */
export interface IndexProgress {
  /** documents indexed so far */
  done: number
  /** documents to index */
  total: number
}

/** One index entry. */
export interface IndexEntry {
  key: IndexKey
  id: string
}

/** One index entry with its document, as `scanIndexDocs` returns it. */
export interface IndexDocEntry extends IndexEntry {
  /** the document the entry belongs to (as `getDoc` returns it) */
  doc: Doc
}

/** Options of `scanIndex`. */
export interface ScanOptions {
  /** descending key order */
  reverse?: boolean
  /** continue after this entry (exclusive), in scan order */
  after?: IndexEntry
  /** most entries to return */
  limit?: number
}

/**
 * A replica's persistent state. All methods reject with the underlying storage error on I/O
 * failure. Documents, meta values and byte arrays returned are copies: changing them changes
 * nothing stored. Strings (ids, collection names, CIDs) sort by UTF-16 code units, as `<` does.
 */
export interface Storage {
  /** the implementation's name, the same as its provider's `kind` (`'memory'`, `'indexeddb'`) */
  readonly kind: string
  /** Whether a block (or chunk) is stored, or covered by an installed snapshot: whether it need not be fetched. */
  hasBlock (cid: string): Promise<boolean>
  /** How many blocks this replica has: stored blocks (chunks excluded) plus covered CIDs. */
  countBlocks (): Promise<number>
  /** Stored bytes of each CID, blocks and chunks alike (`undefined` where not stored, and for a covered CID), same order as `cids`. */
  getBlocks (cids: string[]): Promise<Array<Uint8Array | undefined>>
  /** Store chunks that arrived before their block (idempotent; they are never heads or parents). */
  putNodes (nodes: StoredNode[]): Promise<void>
  /** CID strings of the current heads, sorted. */
  getHeads (): Promise<string[]>
  /** CID strings named as parents by stored blocks but not stored themselves, sorted. */
  getMissing (): Promise<string[]>
  /** Apply one block atomically: all of it or none of it. Idempotent; a covered block is not applied. */
  applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult>
  /**
   * Install a snapshot in one transaction: the joined states, collection states, materialised
   * documents and their index entries, the head blocks, the heads, and the covered CIDs (a covered
   * CID leaves `missing` and the heads, and is never added to `missing` again). Given in parts
   * (`InstallSnapshotParts`), the parts are joined as they come, still in one transaction.
   */
  installSnapshot (input: InstallSnapshotInput | InstallSnapshotParts): Promise<InstallSnapshotResult>
  /** Everything a snapshot is made from, in one read transaction. */
  readSnapshotSource (): Promise<SnapshotSource>
  /** Every existing document of a collection, in `_id` order (`[]` for a collection never written). */
  getDocs (coll: string): Promise<Doc[]>
  /** One document, or `undefined` when absent or deleted. */
  getDoc (coll: string, id: string): Promise<Doc | undefined>
  /** Documents by id, same order (`undefined` where absent). */
  getDocsById (coll: string, ids: string[]): Promise<Array<Doc | undefined>>
  /** Number of existing documents in a collection. */
  countDocs (coll: string): Promise<number>
  /** Names of existing collections (created and not dropped since, or holding documents), sorted. */
  getCollections (): Promise<string[]>
  /**
   * Whether one collection exists (created and not dropped since, or holding documents): what
   * `getCollections().includes(coll)` says, without listing the others.
   */
  hasCollection (coll: string): Promise<boolean>
  /** Declared indexes of a collection (`[]` when none). */
  listIndexes (coll: string): Promise<IndexInfo[]>
  /**
   * Optional: what the storage read of collection `coll` as it opened, once, while nothing has
   * been written through it since: its declared indexes when the collection had been created
   * then; else (absent, already asked, or a write since) `undefined`, and the caller asks
   * `hasCollection` and `listIndexes`. Opening a collection right after its database then waits
   * for no read. The answer is as current as a read made at the open: another tab may have
   * changed the indexes since, which the query planner checks at each query anyway.
   */
  openedCollection? (coll: string): IndexInfo[] | undefined
  /**
   * Declare an index over `paths` and build it over existing documents (in batches, reporting
   * progress: `{done: 0, total}` first, `done` never decreasing, `done === total` last; `total`
   * may grow with documents written during the build, which the index covers as well); resolves
   * with it, ready. Declaring an index already declared resolves with it once it is ready (a
   * declaration during its build waits for the build).
   */
  createIndex (coll: string, paths: string[], onProgress?: (p: IndexProgress) => void): Promise<IndexInfo>
  /** Remove an index and its entries. Removing an index never declared does nothing. */
  dropIndex (coll: string, name: string): Promise<void>
  /**
   * Entries of index `name` within `range`, in key order (then id order): one per key of each
   * document (a multikey document once per distinct key). An index never declared has none.
   */
  scanIndex (coll: string, name: string, range: KeyRange, options?: ScanOptions): Promise<IndexEntry[]>
  /**
   * `scanIndex` with each entry's document: the same entries in the same order, each carrying
   * `doc`. On IndexedDB the entries and documents come from one request, so an index query needs
   * no separate `getDocsById`. A document with several keys in `range` (multikey) comes once per key.
   */
  scanIndexDocs (coll: string, name: string, range: KeyRange, options?: ScanOptions): Promise<IndexDocEntry[]>
  /**
   * Run `fn` in one read transaction: it sees one consistent state (a block applied meanwhile is
   * seen by all of its reads or by none) and, on IndexedDB, shares one transaction instead of one
   * per call. `fn` may call `getDocs`, `getDoc`, `getDocsById`, `countDocs`, `getCollections`,
   * `hasCollection`, `listIndexes`, `scanIndex` and `scanIndexDocs` (an implementation may refuse other calls), and
   * must await nothing else. Resolves with what `fn` resolves with; rejects with what it rejects with.
   * `options.forWrite`: the documents `fn` reads are about to be written by this replica (an
   * update or delete reads its targets first), so a storage may keep their states for that
   * write; the documents it hands back must then not be modified before the write.
   */
  read<T> (fn: () => Promise<T>, options?: ReadOptions): Promise<T>
  /** Read a meta value (`undefined` when never written). */
  getMeta<T> (key: string): Promise<T | undefined>
  /**
   * Write a meta value, replacing any before: a JSON value, a `Uint8Array`, or plain objects and
   * arrays of them (structured-cloneable; KiteDB stores nothing else). A copy is stored.
   */
  setMeta (key: string, value: unknown): Promise<void>
  /** Release resources. The storage must not be used afterwards; opening its database again finds everything it held. */
  close (): Promise<void>
}

/** Opens per-database storages and remembers which local name maps to which address. */
export interface StorageProvider {
  /** the implementation's name, e.g. `'memory'`, `'indexeddb'` */
  readonly kind: string
  /**
   * Set when other pages of this origin (tabs) that open a database with the same provider kind
   * open the same data, as IndexedDB does: the name of the channel on which they tell each other
   * of changes (see db/tabs.ts). Absent for storage private to one page or process.
   */
  readonly channel?: string
  /**
   * Open (creating if needed) the storage of the database with this manifest CID string. Each
   * database's data is apart from every other's; opening one again after `close` finds all of it.
   */
  open (dbId: string): Promise<Storage>
  /** Delete every local trace of a database (its storage must be closed); others are untouched. */
  destroy (dbId: string): Promise<void>
  /** Address registered for a local name, if any. */
  lookupName (name: string): Promise<string | undefined>
  /** Register a local name → address, replacing any earlier address of the name. */
  registerName (name: string, address: string): Promise<void>
  /** Forget a local name (a name never registered: nothing happens). */
  unregisterName (name: string): Promise<void>
  /**
   * Optional: the address `name` was last registered with, as remembered where it is read without
   * waiting (no round trip), so that `KiteDB.init` can start opening that database while
   * `lookupName` answers. A hint: it may be stale or missing; `lookupName` is the truth.
   */
  guessName? (name: string): string | undefined
  /**
   * Optional: a token, read without waiting, that changes whenever a name is registered or
   * forgotten or a secret saved (before the change is made). A database may remember the token
   * with the name it was opened under and the device key's public half; while the token is the
   * same, `KiteDB.init` reopens it by name without `lookupName` and loads the device key only
   * when it first signs (docs/design.md, "Storage"). `undefined`: none kept.
   */
  registryGeneration? (): string | undefined
  /** All registered local names with their addresses, sorted by name. */
  listNames (): Promise<Array<{ name: string, address: string }>>
  /** A device-wide secret saved under `name` (e.g. a libp2p private key), if any. */
  loadSecret (name: string): Promise<Uint8Array | undefined>
  /** Save a copy of a device-wide secret under `name`, replacing any before. */
  saveSecret (name: string, bytes: Uint8Array): Promise<void>
}

/** Name of the index over `paths`. */
export function indexName (paths: string[]): string {
  return paths.join('+')
}

/** Index entries to delete and to add when a document changes from `before` to `after`. */
export function indexDiff (paths: string[], before: Doc | null, after: Doc | null): { remove: IndexKey[], add: IndexKey[] } {
  const old = before === null ? [] : indexKeys(before, paths)
  const now = after === null ? [] : indexKeys(after, paths)
  const oldSet = new Set(old.map(k => JSON.stringify(k)))
  const nowSet = new Set(now.map(k => JSON.stringify(k)))
  return {
    remove: old.filter(k => !nowSet.has(JSON.stringify(k))),
    add: now.filter(k => !oldSet.has(JSON.stringify(k)))
  }
}
