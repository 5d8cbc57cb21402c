/**
 * IndexedDB `Storage` through Dexie. One IndexedDB database per KiteDB database
 * (`kitedb/<manifest-cid>`), plus one registry database (`kitedb`) mapping local names to
 * addresses. Each applied block is one read-write transaction over blocks, the DAG row (heads),
 * missing, states, documents, collections and index entries, so a reload at any moment leaves all
 * of a block or none of it.
 *
 * One row per document. Writes cost by the number of rows IndexedDB writes far more than by their
 * bytes (measured in Chromium: 10,000 documents with their states as separate rows took 2.5–3.4×
 * as long as the documents alone; with the states in the documents' rows, 1.3–1.5×). So an
 * existing document's row `{c, i, d, x, p}` also holds its CRDT state `p`, packed against the
 * document (packed.ts) and kept as JSON text; the states table holds only the states of absent
 * documents (deleted, or in a dropped collection), which queries never read.
 *
 * Secondary indexes. A documents row `{c, i, d, x, p}` carries its index entries in `x`: for every
 * declared index of its collection, one element `[coll NUL name, key]` per index key of the
 * document (keys.ts `indexKeys`). One native multiEntry IndexedDB index over `x` serves every
 * declared index, so writing a document writes one row (IndexedDB maintains the index records),
 * deleting it removes its entries with it, and an equality or range predicate is one key-range
 * scan of that index between `[coll NUL name, lower]` and `[coll NUL name, upper]` that returns
 * the documents themselves. IndexedDB orders the records of one index key by primary key
 * `[c, i]`, so equal keys come in `_id` order. `x` is always computed from the declared indexes
 * (never diffed), so a write cannot leave a stale element of a dropped index behind; building an
 * index rewrites each row's elements of that index; dropping one removes them (see `dropIndex`).
 *
 * Write cache. The heads live in one meta row with a generation number that every transaction
 * changing heads, collection states or index declarations increments. A storage keeps what its
 * last transaction left (heads, collection states and indexes, recent document states) tagged with
 * that generation, and writes a block whose parents it has stored (a local one, or a remote one
 * arriving in order) without the ordinary reads: it issues the block's writes computed from the
 * cache behind a read of the generation (and of the states the cache does not hold; for a remote
 * block, of whether it is already stored or missing), and aborts the transaction if another writer
 * (another tab) moved the generation, or the block is not new, then takes the ordinary path.
 * Optimistic concurrency control, as in Kung & Robinson, "On optimistic methods for concurrency
 * control" (1981).
 */
import { Dexie, type Table } from 'dexie'
import { type CollState, type Doc, type DocState, collectionCreated, dagUpdate, decode, isPlainObject, jsonEqual, snapshotDagUpdate } from '../crdt/index.js'
import { type IndexKey, type KeyRange, compareKeys, inRange, indexKeys, isMultikey } from './keys.js'
import { type PackedState, packState, unpackState } from './packed.js'
import {
  type ApplyBlockInput, type ApplyBlockResult, type DocChange, type DocKey, type IndexDocEntry, type IndexEntry, type IndexInfo, type IndexProgress,
  type InstallSnapshotInput, type InstallSnapshotResult, type MergeInput, type MergeOutput, type ScanOptions, type SnapshotSource,
  type Storage, type StorageProvider, type StoredNode, docKey, indexName
} from './storage.js'

/**
 * A stored node: a DAG block (`k: 'b'`), a block's chunk (`k: 'c'`), or the CID of a block
 * covered by an installed snapshot (`k: 'v'`, no bytes: present for the DAG, never fetched).
 */
interface BlockRow { cid: string, bytes?: Uint8Array, k: 'b' | 'c' | 'v' }
/** The meta row holding the heads and the write generation. */
interface DagRow { gen: number, heads: string[] }
const DAG_KEY = 'dag'
interface CidRow { cid: string }
interface MetaRow { key: string, value: unknown }
interface NameRow { name: string, address: string }
/** CRDT state of a document that does not exist (deleted, or its collection dropped): collection, id, state */
interface StateRow { c: string, i: string, s: DocState }
/** index entry of a documents row: index id (`coll NUL name`), key */
type XEntry = [string, IndexKey]
/**
 * An existing document: collection, id, the document, its entries of every declared index
 * (multiEntry-indexed), and its CRDT state packed against the document (packed.ts)
 */
interface DocRow { c: string, i: string, d: Doc, x?: XEntry[], p: string }

/**
 * The `p` of a documents row: the packed state as JSON text, so reading a row (a scan reads them
 * all) deserialises one string rather than the packed state's objects; only merges parse it.
 */
function packRow (state: DocState, doc: Doc): string { return JSON.stringify(packState(state, doc)) }

/** The CRDT state of a documents row. */
function rowState (row: DocRow): DocState { return unpackState(JSON.parse(row.p) as PackedState, row.d) }
/** CRDT state of a collection */
interface CollRow { c: string, s: CollState }
/** declared index: collection, name, paths, ready, multikey */
interface IndexRow { c: string, n: string, paths: string[], ready: boolean, multikey?: boolean }

/** Options shared by Dexie storages: which IndexedDB implementation to use (browser default). */
export interface DexieOptions {
  /** an `IDBFactory`, e.g. from fake-indexeddb in Node; defaults to the global `indexedDB` */
  indexedDB?: IDBFactory
  /** the matching `IDBKeyRange` constructor */
  IDBKeyRange?: typeof IDBKeyRange
}

class ReplicaDb extends Dexie {
  blocks!: Table<BlockRow, string>
  missing!: Table<CidRow, string>
  states!: Table<StateRow, [string, string]>
  documents!: Table<DocRow, [string, string]>
  colls!: Table<CollRow, string>
  indexes!: Table<IndexRow, [string, string]>
  meta!: Table<MetaRow, string>

  constructor (name: string, options: DexieOptions) {
    super(name, { ...options, cache: 'disabled' })
    // KiteDB uses neither Dexie's liveQuery nor its cross-tab change events (its own change
    // events come from the replica): without these middlewares a write transaction skips
    // computing the mutated key ranges and posting them on a BroadcastChannel.
    this.unuse({ stack: 'dbcore', name: 'Observability' })
    this.unuse({ stack: 'dbcore', name: 'Cache' })
    this.version(1).stores({ blocks: 'cid', heads: 'cid', missing: 'cid', docs: '[coll+id], coll', meta: 'key' })
    // v2 keeps materialised documents apart from CRDT states and adds collections and indexes.
    // Pre-release data is not migrated: the replica starts empty and syncs again from its peers.
    this.version(2).stores({
      docs: null,
      states: '[c+i]',
      documents: '[c+i]',
      colls: 'c',
      indexes: '[c+n], c',
      entries: '[x+k+i]'
    }).upgrade(async tx => {
      await Promise.all([tx.table('blocks').clear(), tx.table('heads').clear(), tx.table('missing').clear()])
    })
    // v3 (snapshots): stored nodes say whether they are blocks or chunks, and CIDs covered by an
    // installed snapshot get a table. A block is the dag-cbor map with a `body`; a chunk has none.
    this.version(3).stores({ blocks: 'cid, k', covered: 'cid' }).upgrade(async tx => {
      await tx.table('blocks').toCollection().modify((row: BlockRow) => { row.k = isBlockBytes(row.bytes as Uint8Array) ? 'b' : 'c' })
    })
    // v4 (write cache): the heads move into one meta row with a write generation, and covered CIDs
    // into the blocks table (`k: 'v'`), so one lookup answers "stored or covered".
    this.version(4).stores({ heads: null, covered: null }).upgrade(async tx => {
      const [heads, covered] = await Promise.all([tx.table('heads').toCollection().primaryKeys(), tx.table('covered').toCollection().primaryKeys()])
      await tx.table('blocks').bulkPut((covered as string[]).map(cid => ({ cid, k: 'v' })))
      await tx.table('meta').put({ key: DAG_KEY, value: { gen: 0, heads: (heads as string[]).sort() } satisfies DagRow })
    })
    // v5 (native index): index entries move from the entries table into the documents rows
    // (`x`), served by one multiEntry index; every row's `x` is computed from the declared indexes.
    this.version(5).stores({ documents: '[c+i], *x', entries: null }).upgrade(async tx => {
      const indexes = await tx.table('indexes').toArray() as IndexRow[]
      const indexesOf = groupIndexes(indexes)
      await tx.table('documents').toCollection().modify((row: DocRow) => { row.x = docEntries(row.d, indexesOf.get(row.c) ?? []) })
    })
    // v6 (one row per document): an existing document's CRDT state moves into its documents row,
    // packed against the document; the states table keeps only the states of absent documents.
    this.version(6).stores({}).upgrade(async tx => {
      const states = await tx.table('states').toArray() as StateRow[]
      const rows = await tx.table('documents').bulkGet(states.map(r => [r.c, r.i])) as Array<DocRow | undefined>
      const folded: DocRow[] = []
      states.forEach((r, n) => {
        const row = rows[n]
        if (row !== undefined) folded.push({ ...row, p: packRow(r.s, row.d) })
      })
      await tx.table('documents').bulkPut(folded)
      await tx.table('states').bulkDelete(folded.map(r => [r.c, r.i]))
    })
  }
}

/** Whether stored bytes are a block rather than a chunk (for the v3 upgrade). */
function isBlockBytes (bytes: Uint8Array): boolean {
  try {
    const raw = decode(bytes)
    // a signed block `{v, body, w, s}` (a chunk is `{v, ops}` or `{v, box}`)
    return isPlainObject(raw) && raw.body !== undefined
  } catch {
    return false
  }
}

/** What a merge starts from, read in its transaction or taken from the write cache. */
interface MergeBase {
  /** by `docKey` */
  docs: Map<string, DocState | undefined>
  /** by collection name */
  colls: Map<string, CollState | undefined>
  /** the declared indexes of those collections */
  indexes: IndexRow[]
  /** whether each collection existed before the merge */
  existedBefore: Map<string, boolean>
}

/** Writes a merge stages inside its transaction (see `DexieStorage.stage`). */
interface StagedMerge {
  changes: DocChange[]
  /** the row writes (see `issueWrites`) */
  writes: NativeWrite[]
  /** indexes that turn multikey (only their flag is written, through Dexie) */
  multikey: IndexRow[]
  /** issue the writes through Dexie (inside the same transaction) */
  write: () => Array<Promise<unknown> | undefined>
  /** whether each collection existed before the merge */
  existedBefore: Map<string, boolean>
  /** the collection states after the merge, for the existence check */
  collsAfter: Map<string, CollState | undefined>
  /** the new state of every document the merge wrote, by `docKey` */
  statesAfter: Map<string, DocState>
  /** the index declarations after the merge (multikey flags set) */
  indexesAfter: IndexRow[]
}

/** What a storage's last transaction left, valid while the stored generation is `gen` (see the file's doc). */
interface WriteCache {
  gen: number
  /** sorted */
  heads: string[]
  /** by collection: its state and declared indexes */
  colls: Map<string, { state: CollState | undefined, indexes: IndexRow[] }>
  /** recent document states by `docKey` (`undefined`: absent), least recently used first */
  states: Map<string, DocState | undefined>
}

/** Document states a write cache keeps. */
const CACHED_STATES = 1000

/** Thrown inside a fast-path transaction to abort it when the write cache turned out stale. */
class StaleCache extends Error {}
/** Thrown inside a fast-path transaction to abort it when the ordinary path must handle the block (it is not new, a document expected absent exists, an index turns multikey). */
class UseOrdinaryPath extends Error {}

const entryIndex = (coll: string, name: string): string => `${coll}\u0000${name}`

/** Two lists of documents, each in (collection, id) order, as one in that order. */
function mergeByKey<T extends DocKey> (a: T[], b: T[]): T[] {
  const out: T[] = []
  let i = 0
  let j = 0
  const before = (x: T, y: T): boolean => x.coll < y.coll || (x.coll === y.coll && x.id < y.id)
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && before(a[i] as T, b[j] as T))) out.push(a[i++] as T)
    else out.push(b[j++] as T)
  }
  return out
}

/** One row write: a put of `value`, or a delete of `key`, in object store `store`. */
type NativeWrite = [store: string, value: unknown, key?: IDBValidKey]
const put = (store: string, row: unknown): NativeWrite => [store, row]
const del = (store: string, key: IDBValidKey): NativeWrite => [store, undefined, key]

/** The writes that store a block and its chunks. */
const blockWrites = (input: { cid: string, bytes: Uint8Array, nodes?: StoredNode[] }): NativeWrite[] => [
  put('blocks', { cid: input.cid, bytes: input.bytes, k: 'b' } satisfies BlockRow),
  ...(input.nodes ?? []).map(n => put('blocks', { cid: n.cid, bytes: n.bytes, k: 'c' } satisfies BlockRow))
]

/**
 * Issue `writes` as requests of the native IndexedDB transaction `tx`, one request each without
 * Dexie's per-request bookkeeping (a large part of a bulk write's time: Dexie's `mutate` ran 0.6 s
 * for a 10,000-document snapshot install in Chromium). Returns the last request (requests complete
 * in order), if any.
 */
function issueWrites (tx: IDBTransaction, writes: NativeWrite[]): IDBRequest | undefined {
  let last: IDBRequest | undefined
  for (const [store, value, key] of writes) last = key === undefined ? tx.objectStore(store).put(value) : tx.objectStore(store).delete(key)
  return last
}

/**
 * Inside a Dexie transaction: `issueWrites` on its native transaction. Resolves when the last
 * write succeeded; rejects if the transaction aborts.
 */
async function nativeWrites (writes: NativeWrite[]): Promise<void> {
  const tx = (Dexie.currentTransaction as { idbtrans?: IDBTransaction } | null)?.idbtrans
  if (tx === undefined) throw new Error('nativeWrites needs a Dexie transaction')
  const request = issueWrites(tx, writes)
  if (request === undefined) return
  await new Promise<void>((resolve, reject) => {
    request.onsuccess = () => { resolve() }
    request.onerror = () => { reject(request.error ?? new DOMException('write failed', 'AbortError')) }
  })
}

/** Declared indexes by collection. */
function groupIndexes (indexes: IndexRow[]): Map<string, IndexRow[]> {
  const out = new Map<string, IndexRow[]>()
  for (const index of indexes) {
    const list = out.get(index.c)
    if (list === undefined) out.set(index.c, [index])
    else list.push(index)
  }
  return out
}

/** The `x` of a documents row: its entries of each of `indexes` (its collection's declared indexes). */
function docEntries (doc: Doc, indexes: IndexRow[]): XEntry[] {
  const x: XEntry[] = []
  for (const index of indexes) {
    const id = entryIndex(index.c, index.n)
    for (const k of indexKeys(doc, index.paths)) x.push([id, k])
  }
  return x
}

/** Documents rows an index build or drop rewrites per transaction. */
const BUILD_BATCH = 1000

/** A `Storage` in one IndexedDB database. */
export class DexieStorage implements Storage {
  readonly kind = 'indexeddb'
  private readonly db: ReplicaDb

  /** @param name IndexedDB database name */
  constructor (name: string, options: DexieOptions = {}) {
    this.db = new ReplicaDb(name, options)
  }

  async hasBlock (cid: string): Promise<boolean> {
    return (await this.db.blocks.where('cid').equals(cid).count()) > 0
  }

  async countBlocks (): Promise<number> {
    return await this.db.blocks.where('k').anyOf('b', 'v').count()
  }

  async getBlocks (cids: string[]): Promise<Array<Uint8Array | undefined>> {
    const rows = await this.db.blocks.bulkGet(cids)
    return rows.map(r => r?.bytes)
  }

  async putNodes (nodes: StoredNode[]): Promise<void> {
    await this.db.blocks.bulkPut(nodes.map(n => ({ cid: n.cid, bytes: n.bytes, k: 'c' as const })))
  }

  async getHeads (): Promise<string[]> { return [...(await this.readDag()).heads] }

  async getMissing (): Promise<string[]> { return (await this.db.missing.toCollection().primaryKeys()).sort() }

  private async readDag (): Promise<DagRow> {
    return (await this.db.meta.get(DAG_KEY))?.value as DagRow | undefined ?? { gen: 0, heads: [] }
  }

  /** Inside a read-write transaction: move the generation on (index declarations changed), and drop this storage's cache. */
  private async bumpGeneration (): Promise<void> {
    this.cache = undefined
    const dag = await this.readDag()
    await this.db.meta.put({ key: DAG_KEY, value: { gen: dag.gen + 1, heads: dag.heads } satisfies DagRow })
  }

  private cache?: WriteCache

  async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> {
    const cache = this.cache
    // A block seen stored needs no transaction: blocks are never removed.
    if (cache !== undefined && this.present.has(input.cid)) return { applied: false, changes: [], collections: [], heads: [...cache.heads] }
    if (cache !== undefined && input.dropped.length === 0 &&
      input.colls.every(c => collectionCreated(cache.colls.get(c)?.state)) &&
      input.parents.every(p => this.present.has(p) || cache.heads.includes(p))) {
      try {
        return await this.applyCached(input, cache)
      } catch (err) {
        if (err instanceof StaleCache) this.cache = undefined
        else if (!(err instanceof UseOrdinaryPath)) throw err
      }
    }
    return await this.applyRead(input)
  }

  /**
   * The fast path of a block whose parents are stored (see the file's doc), in one native
   * IndexedDB transaction (Dexie's per-request bookkeeping costs about as much as the requests
   * here, and this path needs none of it): the merge starts from the cache. The states the cache
   * lacks are read first, unless the block's documents are expected absent (an insert); the
   * writes then go out behind the reads of the generation (and, for a remote block, of whether it
   * is stored or missing; for an insert, of the states it assumed absent), and the transaction
   * aborts, writing nothing, when one of them says otherwise. Rejects with `StaleCache` when
   * another writer moved the generation, `UseOrdinaryPath` when the block is not new, a document
   * expected absent exists, or an index turns multikey; with the merge's check error when that
   * throws on a cache proven current.
   */
  private async applyCached (input: ApplyBlockInput, cache: WriteCache): Promise<ApplyBlockResult> {
    const idb = this.db.backendDB()
    const uncached = input.keys.filter(k => !cache.states.has(docKey(k.coll, k.id)))
    const heads = [...cache.heads.filter(h => !input.parents.includes(h)), input.cid].sort()
    const docs = new Map<string, DocState | undefined>()
    for (const k of input.keys) docs.set(docKey(k.coll, k.id), cache.states.get(docKey(k.coll, k.id)))
    const base: MergeBase = {
      docs,
      colls: new Map(input.colls.map(c => [c, cache.colls.get(c)?.state])),
      indexes: input.colls.flatMap(c => cache.colls.get(c)?.indexes ?? []),
      existedBefore: new Map(input.colls.map(c => [c, true]))
    }
    // Documents expected absent (an insert) are written as such and checked; others are read first.
    const readFirst = input.expectAbsent !== true && uncached.length > 0
    const staged = await new Promise<StagedMerge>((resolve, reject) => {
      const tx = idb.transaction(['blocks', 'missing', 'states', 'documents', 'colls', 'meta'], 'readwrite')
      let failure: unknown
      let result: StagedMerge | undefined
      let checkError: unknown
      const fail = (err: unknown): void => {
        if (failure !== undefined) return
        failure = err
        try { tx.abort() } catch {}
      }
      tx.oncomplete = () => { if (result !== undefined) resolve(result); else reject(failure ?? new Error('transaction completed without writing')) }
      tx.onabort = () => { reject(failure ?? tx.error ?? new DOMException('transaction aborted', 'AbortError')) }
      const store = (name: string): IDBObjectStore => tx.objectStore(name)
      let pending = 0
      let dag: DagRow | undefined
      let stored = 0
      let missing: unknown
      const found: Array<DocState | undefined> = []
      const read = <T>(request: IDBRequest<T>, use: (value: T) => void): void => {
        pending++
        request.onsuccess = () => {
          if (failure !== undefined) return
          try {
            use(request.result)
            if (--pending === 0) afterReads()
          } catch (err) {
            fail(err)
          }
        }
      }
      const issue = (): void => {
        if (readFirst) uncached.forEach((k, n) => { docs.set(docKey(k.coll, k.id), found[n]) })
        let next: StagedMerge
        try {
          next = this.stage(input, base)
        } catch (err) {
          checkError = err // an answer only once the reads prove the cache current
          return
        }
        if (next.multikey.length > 0) { fail(new UseOrdinaryPath('an index turns multikey')); return }
        issueWrites(tx, [...next.writes, ...blockWrites(input), put('meta', { key: DAG_KEY, value: { gen: cache.gen + 1, heads } satisfies DagRow } satisfies MetaRow)])
        result = next
      }
      const afterReads = (): void => {
        if (dag === undefined || dag.gen !== cache.gen) return fail(new StaleCache('another writer moved the generation'))
        if (stored > 0 || missing !== undefined) return fail(new UseOrdinaryPath('the block is stored, covered or missing'))
        if (!readFirst && found.some(s => s !== undefined)) return fail(new UseOrdinaryPath('a document expected absent has a state'))
        if (readFirst) issue()
        if (checkError !== undefined) fail(checkError)
      }
      try {
        read(store('meta').get(DAG_KEY), (row: MetaRow | undefined) => { dag = row?.value as DagRow | undefined })
        // A local block was just made: it cannot be stored, covered or missing yet.
        if (input.local !== true) {
          read(store('blocks').count(input.cid), n => { stored = n })
          read(store('missing').get(input.cid), row => { missing = row })
        }
        uncached.forEach((k, n) => {
          let row: DocRow | undefined
          let absent: StateRow | undefined
          let got = 0
          const both = (): void => { if (++got === 2) found[n] = row !== undefined ? rowState(row) : absent?.s }
          read(store('documents').get([k.coll, k.id]), (r: DocRow | undefined) => { row = r; both() })
          read(store('states').get([k.coll, k.id]), (r: StateRow | undefined) => { absent = r; both() })
        })
        if (!readFirst) issue()
      } catch (err) {
        fail(err)
      }
    })
    this.remember(cache.gen + 1, heads, input.colls, staged, true)
    this.notePresent([input.cid])
    // Collections created before and no drop: their existence did not change.
    return { applied: true, changes: staged.changes, collections: [], heads: [...heads] }
  }

  /** The ordinary path: every read in one round trip, then the writes. */
  private async applyRead (input: ApplyBlockInput): Promise<ApplyBlockResult> {
    const { db } = this
    let seen: string[] = []
    let gen = 0
    let staged: StagedMerge | undefined
    const result = await db.transaction('rw', [db.blocks, db.missing, db.states, db.documents, db.colls, db.indexes, db.meta], async () => {
      // Every read in one round trip (the merge is pure and cheap; it is wasted only for a block
      // already stored), and the heads after computed rather than read again.
      // Parents this instance saw stored or covered need no lookup: neither is ever undone.
      const unknownParents = input.parents.filter(p => !this.present.has(p))
      const [stored, base, wasMissing, storedParents, dag] = await Promise.all([
        db.blocks.where('cid').equals(input.cid).count(),
        this.readBase(input),
        db.missing.get(input.cid),
        unknownParents.length > 0 ? db.blocks.where('cid').anyOf(unknownParents).primaryKeys() : Promise.resolve([] as string[]),
        this.readDag()
      ])
      gen = dag.gen
      if (stored > 0) return { applied: false, changes: [], collections: [], heads: dag.heads }
      staged = this.stage(input, base)
      const known = new Set([...input.parents.filter(p => this.present.has(p)), ...storedParents])
      const update = dagUpdate(input.cid, input.parents, c => known.has(c), wasMissing !== undefined)
      const removed = new Set(update.removeHeads)
      const heads = dag.heads.filter(h => !removed.has(h))
      if (update.addHead && !heads.includes(input.cid)) heads.push(input.cid)
      heads.sort()
      await Promise.all([
        ...staged.write(),
        nativeWrites(blockWrites(input)),
        db.meta.put({ key: DAG_KEY, value: { gen: gen + 1, heads } satisfies DagRow }),
        wasMissing !== undefined ? db.missing.delete(input.cid) : undefined,
        update.addMissing.length > 0 ? db.missing.bulkPut(update.addMissing.map(cid => ({ cid }))) : undefined
      ])
      const collections = await this.collectionsChanged(input.colls, staged)
      seen = [input.cid, ...known, ...dag.heads] // heads are stored blocks
      return { applied: true, changes: staged.changes, collections, heads }
    })
    if (result.applied) this.remember(gen + 1, result.heads, input.colls, staged as StagedMerge, gen === this.cache?.gen)
    this.notePresent(seen) // only once committed
    return { ...result, heads: [...result.heads] }
  }

  /**
   * After a committed block: the cache now describes generation `gen`. `keep`: the cache was
   * valid just before (so its other entries still are); otherwise they are dropped.
   */
  private remember (gen: number, heads: string[], colls: string[], staged: StagedMerge, keep: boolean): void {
    const cache: WriteCache = keep && this.cache !== undefined ? this.cache : { gen, heads, colls: new Map(), states: new Map() }
    cache.gen = gen
    cache.heads = heads
    for (const c of colls) cache.colls.set(c, { state: staged.collsAfter.get(c), indexes: staged.indexesAfter.filter(i => i.c === c) })
    for (const [key, state] of staged.statesAfter) {
      cache.states.delete(key)
      cache.states.set(key, state)
    }
    for (const key of cache.states.keys()) {
      if (cache.states.size <= CACHED_STATES) break
      cache.states.delete(key)
    }
    this.cache = cache
  }

  /**
   * CIDs this instance saw stored or covered, so a block's parents usually need no lookup (blocks
   * are never removed and covered CIDs never uncovered, so the set cannot go stale; bounded).
   */
  private readonly present = new Set<string>()

  private notePresent (cids: Iterable<string>): void {
    if (this.present.size > 10_000) this.present.clear()
    for (const c of cids) this.present.add(c)
  }

  async installSnapshot (input: InstallSnapshotInput): Promise<InstallSnapshotResult> {
    const { db } = this
    this.cache = undefined
    return await db.transaction('rw', [db.blocks, db.missing, db.states, db.documents, db.colls, db.indexes, db.meta], async () => {
      const headCids = input.heads.map(h => h.cid)
      const [base, storedHeads, storedCovered, dag, missing] = await Promise.all([
        this.readBase(input),
        db.blocks.where('cid').anyOf(headCids).primaryKeys(),
        db.blocks.where('cid').anyOf(input.covered).primaryKeys(),
        this.readDag(),
        db.missing.toCollection().primaryKeys()
      ])
      const staged = this.stage(input, base)
      const stored = new Set([...storedHeads, ...storedCovered])
      const wasMissing = new Set(missing)
      const update = snapshotDagUpdate({ heads: dag.heads, snapshotHeads: headCids, covered: input.covered, isStored: c => stored.has(c), isMissing: c => wasMissing.has(c) })
      const store = new Set(update.store)
      await Promise.all([
        ...staged.write(),
        nativeWrites([
          ...input.heads.filter(h => store.has(h.cid)).map(h => ({ cid: h.cid, bytes: h.bytes, k: 'b' as const })),
          ...(input.nodes ?? []).map(n => ({ cid: n.cid, bytes: n.bytes, k: 'c' as const })),
          ...update.cover.map(cid => ({ cid, k: 'v' as const }))
        ].map(r => put('blocks', r))),
        db.meta.put({ key: DAG_KEY, value: { gen: dag.gen + 1, heads: update.heads } satisfies DagRow }),
        db.missing.bulkDelete(update.found)
      ])
      const collections = await this.collectionsChanged(input.colls, staged)
      return { changes: staged.changes, collections, heads: [...update.heads] }
    })
  }

  async readSnapshotSource (): Promise<SnapshotSource> {
    const { db } = this
    return await db.transaction('r', [db.blocks, db.missing, db.states, db.documents, db.colls, db.meta], async () => {
      const [dag, missing, states, rows, colls, blocks] = await Promise.all([
        this.readDag(),
        db.missing.count(),
        db.states.toArray(),
        db.documents.toArray(),
        db.colls.toArray(),
        db.blocks.where('k').anyOf('b', 'v').primaryKeys()
      ])
      return {
        heads: dag.heads,
        missing,
        // primary-key order [c+i] is (collection, id) order: merge the two tables' lists
        docs: mergeByKey(
          rows.map(r => ({ coll: r.c, id: r.i, state: rowState(r) })),
          states.map(r => ({ coll: r.c, id: r.i, state: r.s }))
        ),
        colls: colls.map(r => ({ coll: r.c, state: r.s })),
        blocks: blocks.sort()
      }
    })
  }

  /** Inside a transaction: the CRDT states of documents by `[coll, id]`, from their documents rows or, absent, the states table. */
  private async readStates (keys: Array<[string, string]>): Promise<Array<DocState | undefined>> {
    const [rows, absent] = await Promise.all([this.db.documents.bulkGet(keys), this.db.states.bulkGet(keys)])
    return keys.map((_, n) => {
      const row = rows[n]
      return row !== undefined ? rowState(row) : absent[n]?.s
    })
  }

  /** Inside a transaction: read the local states, collection states and indexes `input` names (what its merge starts from). */
  private async readBase (input: { keys: DocKey[], colls: string[], dropped: string[] }): Promise<MergeBase> {
    const { db } = this
    const keys = input.keys.map(k => [k.coll, k.id] as [string, string])
    // A replica with no state at all (a fresh one installing a snapshot) skips reading thousands of absent keys.
    const none = keys.length > 1000 && await db.documents.toCollection().first() === undefined && await db.states.toCollection().first() === undefined
    const inColl = (c: string): [unknown[], unknown[]] => [[c, Dexie.minKey], [c, Dexie.maxKey]]
    const [states, collRows, indexes, droppedStates] = await Promise.all([
      none ? keys.map(() => undefined) : this.readStates(keys),
      db.colls.bulkGet(input.colls),
      input.colls.length > 0 ? db.indexes.where('c').anyOf(input.colls).toArray() : Promise.resolve([] as IndexRow[]),
      Promise.all(input.dropped.map(async c => await Promise.all([
        db.states.where('[c+i]').between(...inColl(c)).toArray(),
        db.documents.where('[c+i]').between(...inColl(c)).toArray()
      ])))
    ])
    const docs = new Map<string, DocState | undefined>()
    input.keys.forEach((k, i) => { docs.set(docKey(k.coll, k.id), states[i]) })
    for (const [absent, present] of droppedStates) {
      for (const r of absent) docs.set(docKey(r.c, r.i), r.s)
      for (const r of present) docs.set(docKey(r.c, r.i), rowState(r))
    }
    const colls = new Map(input.colls.map((c, i) => [c, collRows[i]?.s]))
    const existed = await Promise.all(input.colls.map(async c => await this.collectionExists(c, colls.get(c))))
    return { docs, colls, indexes, existedBefore: new Map(input.colls.map((c, i) => [c, existed[i] as boolean])) }
  }

  /**
   * Run `input`'s merge over `base` and stage the new states, documents, index entries and
   * collection states (the returned writes must be issued within the transaction). Pure: `base`
   * is not modified. What applyBlock and installSnapshot share.
   */
  private stage (input: { merge: (i: MergeInput) => MergeOutput }, base: MergeBase): StagedMerge {
    const { db } = this
    // The merge reports each document as it materialises before: no read of the documents table.
    const before = new Map<string, Doc | null>()
    const out = input.merge({ docs: base.docs, colls: base.colls, before })
    const changes: DocChange[] = []
    const writes: NativeWrite[] = []
    const newlyMultikey: IndexRow[] = []
    const indexes = base.indexes.map(i => ({ ...i }))
    const indexesOf = groupIndexes(indexes)
    const statesAfter = new Map<string, DocState>()
    out.docs.forEach(rec => {
      const key = docKey(rec.coll, rec.id)
      statesAfter.set(key, rec.state)
      const was = before.get(key) ?? null
      // An existing document's state lives in its row (rewritten whenever the state changes); an
      // absent one's in the states table. A deleted document's row goes, its index entries with it.
      if (rec.doc === null) {
        writes.push(put('states', { c: rec.coll, i: rec.id, s: rec.state } satisfies StateRow))
        if (was !== null) writes.push(del('documents', [rec.coll, rec.id]))
      } else {
        const own = indexesOf.get(rec.coll) ?? []
        for (const index of own) {
          if (index.multikey !== true && isMultikey(rec.doc, index.paths)) {
            index.multikey = true
            newlyMultikey.push(index)
          }
        }
        writes.push(put('documents', { c: rec.coll, i: rec.id, d: rec.doc, x: docEntries(rec.doc, own), p: packRow(rec.state, rec.doc) } satisfies DocRow))
        if (was === null && base.docs.get(key) !== undefined) writes.push(del('states', [rec.coll, rec.id]))
      }
      if (!jsonEqual(was, rec.doc)) changes.push({ coll: rec.coll, id: rec.id, before: was, after: rec.doc })
    })
    const collsAfter = new Map(base.colls)
    for (const c of out.colls) collsAfter.set(c.coll, c.state)
    for (const c of out.colls) writes.push(put('colls', { c: c.coll, s: c.state } satisfies CollRow))
    return {
      changes,
      collsAfter,
      statesAfter,
      indexesAfter: indexes,
      existedBefore: base.existedBefore,
      writes,
      multikey: newlyMultikey,
      write: () => [
        nativeWrites(writes),
        // only the flag: the rest of the row may have changed since it was read (cached)
        ...newlyMultikey.map(i => db.indexes.update([i.c, i.n], { multikey: true }))
      ]
    }
  }

  /** Collections whose existence a staged merge changed (its writes done). */
  private async collectionsChanged (colls: string[], staged: StagedMerge): Promise<string[]> {
    const existsAfter = await Promise.all(colls.map(async c => await this.collectionExists(c, staged.collsAfter.get(c))))
    return colls.filter((c, i) => staged.existedBefore.get(c) !== existsAfter[i])
  }

  async getDocs (coll: string): Promise<Doc[]> {
    const rows = await this.db.documents.where('[c+i]').between([coll, Dexie.minKey], [coll, Dexie.maxKey]).toArray()
    return rows.map(r => r.d)
  }

  async getDoc (coll: string, id: string): Promise<Doc | undefined> {
    return (await this.db.documents.get([coll, id]))?.d
  }

  async getDocsById (coll: string, ids: string[]): Promise<Array<Doc | undefined>> {
    return (await this.db.documents.bulkGet(ids.map(id => [coll, id] as [string, string]))).map(r => r?.d)
  }

  async countDocs (coll: string): Promise<number> {
    return await this.db.documents.where('[c+i]').between([coll, Dexie.minKey], [coll, Dexie.maxKey]).count()
  }

  async getCollections (): Promise<string[]> {
    const { db } = this
    return await db.transaction('r', [db.colls, db.documents], async () => {
      const candidates = new Set([...await db.colls.toCollection().primaryKeys()])
      // Distinct collection names of the documents table: jump from one collection to the next.
      let next: [string, string] | undefined = [Dexie.minKey as unknown as string, Dexie.minKey as unknown as string]
      while (next !== undefined) {
        const row: DocRow | undefined = await db.documents.where('[c+i]').above(next).first()
        if (row === undefined) break
        candidates.add(row.c)
        next = [row.c, Dexie.maxKey as unknown as string]
      }
      const rows = await db.colls.bulkGet([...candidates])
      const out: string[] = []
      let i = 0
      for (const c of candidates) {
        if (await this.collectionExists(c, rows[i++]?.s)) out.push(c)
      }
      return out.sort()
    })
  }

  async listIndexes (coll: string): Promise<IndexInfo[]> {
    return (await this.db.indexes.where('c').equals(coll).toArray()).map(r => ({ name: r.n, paths: r.paths, ready: r.ready, multikey: r.multikey === true }))
  }

  async createIndex (coll: string, paths: string[], onProgress?: (p: IndexProgress) => void): Promise<IndexInfo> {
    const { db } = this
    const name = indexName(paths)
    const x = entryIndex(coll, name)
    const existing = await db.indexes.get([coll, name])
    if (existing?.ready === true) return { name, paths: existing.paths, ready: true, multikey: existing.multikey === true }
    // Declared first, so blocks applied during the build maintain it (a row a block writes gets its
    // `x` from the declarations); the build then rewrites every row that existed, one batch per
    // transaction: each batch reads the rows and writes them back with this index's elements
    // recomputed (replacing any an earlier declaration of the same name left), so it never writes
    // a stale entry nor keeps one. A batch that finds the index dropped stops the build.
    if (existing === undefined) {
      await db.transaction('rw', [db.indexes, db.meta], async () => {
        await db.indexes.put({ c: coll, n: name, paths, ready: false })
        await this.bumpGeneration()
      })
    }
    const total = await this.countDocs(coll)
    onProgress?.({ done: 0, total })
    let done = 0
    let after: [string, string] = [coll, Dexie.minKey as unknown as string]
    for (;;) {
      const batch = await db.transaction('rw', [db.documents, db.indexes, db.meta], async () => {
        const [declared, rows] = await Promise.all([
          db.indexes.get([coll, name]),
          db.documents.where('[c+i]').between(after, [coll, Dexie.maxKey], false, true).limit(BUILD_BATCH).toArray()
        ])
        if (declared === undefined) return []
        const changed: DocRow[] = []
        for (const r of rows) {
          const own = indexKeys(r.d, paths).map(k => [x, k] as XEntry)
          const others = (r.x ?? []).filter(e => e[0] !== x)
          if (others.length + own.length === (r.x ?? []).length && jsonEqual((r.x ?? []).filter(e => e[0] === x), own)) continue
          changed.push({ ...r, x: [...others, ...own] })
        }
        if (changed.length > 0) await db.documents.bulkPut(changed)
        if (declared.multikey !== true && rows.some(r => isMultikey(r.d, paths))) {
          await db.indexes.update([coll, name], { multikey: true })
          await this.bumpGeneration()
        }
        return rows
      })
      if (batch.length === 0) break
      done += batch.length
      after = [coll, (batch[batch.length - 1] as DocRow).i]
      // Documents written during the build may make more than were counted at its start.
      onProgress?.({ done, total: Math.max(total, done) })
    }
    await db.transaction('rw', [db.indexes, db.meta], async () => {
      await db.indexes.update([coll, name], { ready: true })
      await this.bumpGeneration()
    })
    const row = await db.indexes.get([coll, name])
    return { name, paths, ready: true, multikey: row?.multikey === true }
  }

  /**
   * Remove an index: its declaration goes first (the generation moves on, so every write from
   * then on computes `x` without it), then its elements leave the documents rows, one batch per
   * transaction. A batch that finds the index declared again stops: that declaration's build
   * rewrites every row's elements of the index anyway, so none goes stale.
   */
  async dropIndex (coll: string, name: string): Promise<void> {
    const { db } = this
    const x = entryIndex(coll, name)
    let first = true
    for (;;) {
      const more = await db.transaction('rw', [db.indexes, db.documents, db.meta], async () => {
        if (first) {
          await db.indexes.delete([coll, name])
          await this.bumpGeneration()
        } else if (await db.indexes.get([coll, name]) !== undefined) return false
        // every element [x, key] sorts between [x] and [x + NUL] (the next string after x)
        const rows = await db.documents.where('x').between([x], [`${x}\u0000`], true, false).limit(BUILD_BATCH).toArray()
        const unique = new Map(rows.map(r => [r.i, r]))
        if (unique.size > 0) await db.documents.bulkPut([...unique.values()].map(r => ({ ...r, x: (r.x ?? []).filter(e => e[0] !== x) })))
        return rows.length === BUILD_BATCH
      })
      first = false
      if (!more) break
    }
  }

  async scanIndex (coll: string, name: string, range: KeyRange, options: ScanOptions = {}): Promise<IndexEntry[]> {
    return (await this.scanIndexDocs(coll, name, range, options)).map(e => ({ key: e.key, id: e.id }))
  }

  /**
   * One key-range scan of the `x` index (see the file's doc), returning the rows. `after` narrows
   * the range to what follows it in scan order: the scan starts at its key and the cursor jumps
   * past its id with `continuePrimaryKey`. Each record's key is recovered from its row: a row
   * comes once per element of `x` in the range, in scan order, so its n-th record has its n-th
   * such element.
   */
  async scanIndexDocs (coll: string, name: string, range: KeyRange, options: ScanOptions = {}): Promise<IndexDocEntry[]> {
    const x = entryIndex(coll, name)
    const reverse = options.reverse === true
    const bounds: KeyRange = { lower: range.lower, upper: range.upper, lowerOpen: range.lowerOpen === true, upperOpen: range.upperOpen === true }
    let skip: IndexEntry | undefined
    const after = options.after
    if (after !== undefined) {
      const c = compareKeys(after.key, reverse ? bounds.upper : bounds.lower)
      const within = reverse ? c < 0 || (c === 0 && bounds.upperOpen !== true) : c > 0 || (c === 0 && bounds.lowerOpen !== true)
      if (within) {
        skip = after
        if (reverse) { bounds.upper = after.key; bounds.upperOpen = false } else { bounds.lower = after.key; bounds.lowerOpen = false }
      }
    }
    let q = this.db.documents.where('x').between([x, bounds.lower], [x, bounds.upper], bounds.lowerOpen !== true, bounds.upperOpen !== true)
    const skipped = (key: IndexKey, id: string): boolean => skip !== undefined && compareKeys(key, skip.key) === 0 && (reverse ? id >= skip.id : id <= skip.id)
    if (skip !== undefined) {
      const to = skip
      let jumped = false
      // Dexie's cursor hook (as its own `anyOf` uses): return false to skip a record; `advance`
      // replaces the cursor's next move.
      ;(q as unknown as { _addAlgorithm: (fn: (cursor: IDBCursor, advance: (f: () => void) => void) => boolean) => void })._addAlgorithm((cursor, advance) => {
        const id = (cursor.primaryKey as [string, string])[1]
        if (!skipped((cursor.key as XEntry)[1], id)) return true
        if (!jumped && id !== to.id) {
          jumped = true
          advance(() => { cursor.continuePrimaryKey(cursor.key, [coll, to.id]) })
        }
        return false
      })
    }
    if (reverse) q = q.reverse()
    if (options.limit !== undefined) q = q.limit(options.limit)
    const rows = await q.toArray()
    const order = reverse ? (a: IndexKey, b: IndexKey) => compareKeys(b, a) : compareKeys
    const keysOf = new Map<string, IndexKey[]>()
    return rows.map(r => {
      let keys = keysOf.get(r.i)
      if (keys === undefined) {
        keys = (r.x ?? []).filter(e => e[0] === x && inRange(e[1], bounds) && !skipped(e[1], r.i)).map(e => e[1]).sort(order)
        keysOf.set(r.i, keys)
      }
      const key = keys.shift()
      if (key === undefined) throw new Error(`index ${name} of ${coll}: a record of ${r.i} matches no element of its row`)
      return { key, id: r.i, doc: r.d }
    })
  }

  async read<T> (fn: () => Promise<T>): Promise<T> {
    const { db } = this
    return await db.transaction('r', [db.documents, db.indexes, db.colls, db.states], fn)
  }

  async getMeta<T> (key: string): Promise<T | undefined> {
    return (await this.db.meta.get(key))?.value as T | undefined
  }

  async setMeta (key: string, value: unknown): Promise<void> { await this.db.meta.put({ key, value }) }

  async close (): Promise<void> { this.db.close() }

  private async collectionExists (coll: string, state: CollState | undefined): Promise<boolean> {
    if (collectionCreated(state)) return true
    const any = await this.db.documents.where('[c+i]').between([coll, Dexie.minKey], [coll, Dexie.maxKey]).first()
    return any !== undefined
  }
}

interface SecretRow { name: string, bytes: Uint8Array }

class RegistryDb extends Dexie {
  names!: Table<NameRow, string>
  secrets!: Table<SecretRow, string>
  constructor (options: DexieOptions) {
    super('kitedb', options)
    this.version(1).stores({ names: 'name, address' })
    this.version(2).stores({ secrets: 'name' })
  }
}

/** Opens `DexieStorage`s and keeps the name → address registry in IndexedDB. */
export class DexieStorageProvider implements StorageProvider {
  readonly kind = 'indexeddb'
  /** `'indexeddb'` with the page's own IndexedDB (shared by its tabs); with an explicit `indexedDB`, `options.channel` */
  readonly channel?: string
  private readonly options: DexieOptions
  private registry?: RegistryDb

  constructor (options: DexieOptions & { channel?: string } = {}) {
    const { channel, ...rest } = options
    this.options = rest
    const shared = channel ?? (options.indexedDB === undefined ? 'indexeddb' : undefined)
    if (shared !== undefined) this.channel = shared
  }

  async open (dbId: string): Promise<DexieStorage> {
    return new DexieStorage(`kitedb/${dbId}`, this.options)
  }

  async destroy (dbId: string): Promise<void> {
    await new Dexie(`kitedb/${dbId}`, this.options).delete()
  }

  private get names (): Table<NameRow, string> {
    this.registry ??= new RegistryDb(this.options)
    return this.registry.names
  }

  private get secrets (): Table<SecretRow, string> {
    this.registry ??= new RegistryDb(this.options)
    return this.registry.secrets
  }

  async loadSecret (name: string): Promise<Uint8Array | undefined> { return (await this.secrets.get(name))?.bytes }

  async saveSecret (name: string, bytes: Uint8Array): Promise<void> { await this.secrets.put({ name, bytes }) }

  async lookupName (name: string): Promise<string | undefined> { return (await this.names.get(name))?.address }

  async registerName (name: string, address: string): Promise<void> { await this.names.put({ name, address }) }

  async unregisterName (name: string): Promise<void> { await this.names.delete(name) }

  async listNames (): Promise<Array<{ name: string, address: string }>> {
    return (await this.names.orderBy('name').toArray()).map(({ name, address }) => ({ name, address }))
  }
}
