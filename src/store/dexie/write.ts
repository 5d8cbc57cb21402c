/**
 * The write path of `DexieStorage`: applying a block and installing a snapshot. Each is one
 * read-write transaction over blocks, the DAG row (heads), missing, states, documents,
 * collections and index entries, so a reload at any moment leaves all of a block or none of it.
 * The rows are schema.ts's; the merge that computes the new states is the caller's (`Replica`).
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
 *
 * One piece, though over 400 lines: the fast path, the ordinary path and the snapshot install
 * stage their writes with the same `stage` and keep the same cache, whose validity each of them
 * must respect.
 */
import { Dexie } from 'dexie'
import { type CollState, type Doc, type DocState, type Register, collectionCreated, dictOf, dagUpdate, jsonEqual, snapshotDagUpdate } from '../../crdt/index.js'
import { isMultikey } from '../keys.js'
import {
  type ApplyBlockInput, type ApplyBlockResult, type DocChange, type DocKey, type InstallSnapshotInput, type InstallSnapshotParts, type InstallSnapshotResult,
  type MergeInput, type MergeOutput, SNAPSHOT_PART_WAIT_MS, type StoredNode, docKey
} from '../storage.js'
import {
  type BlockRow, type CollRow, DAG_KEY, type DagRow, type DocRow, type IndexRow, type MetaRow, type ReplicaDb, type StateRow,
  collectionExists, currentIdbTransaction, docEntries, groupIndexes, inColl, packRow, readDag, rowState
} from './schema.js'
import { type NativeWrite, issueWrite, pumpParts } from './pump.js'
import { type TargetRows } from './target-rows.js'

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

/** Writes a merge stages inside its transaction (see `DexieWriter.stage`). */
interface StagedMerge {
  changes: DocChange[]
  /** indexes that turn multikey (only their flag is written, through Dexie) */
  multikey: IndexRow[]
  /**
   * Inside the Dexie transaction the merge was staged in: the row writes' outcome (they were
   * issued as they were staged) and the multikey flags' writes
   */
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

/** `Dexie.waitFor`'s bound on a whole pump: setTimeout's largest (the pump bounds the wait for each part itself). */
const PUMP_WAIT_MS = 2 ** 31 - 1

/** What the parts of a snapshot install so far leave for after the last (see `DexieWriter.install`). */
interface PartsSoFar {
  changes: DocChange[]
  covered: string[]
  heads: Array<{ cid: string, bytes: Uint8Array }>
  nodes: StoredNode[]
  /** whether each collection existed before the first part naming it */
  existedBefore: Map<string, boolean>
  /** each collection's state after the last part naming it */
  collsAfter: Map<string, CollState | undefined>
  /** indexes the parts turned multikey */
  multikey: IndexRow[]
}

/** What a storage's last transaction left, valid while the stored generation is `gen` (see the module comment). */
interface WriteCache {
  gen: number
  /** sorted */
  heads: string[]
  /** by collection: its state and declared indexes */
  colls: Map<string, { state: CollState | undefined, indexes: IndexRow[] }>
  /** recent document states by `docKey` (`undefined`: absent), least recently used first */
  states: Map<string, DocState | undefined>
}

/**
 * Document states a write cache keeps. An update's targets beyond these come from the rows its
 * query read (`TargetRows`), so the cache only needs to cover writes that follow one another
 * without a query (an edit, then the next; a peer's edit of a document written here just before).
 * A cached state of a 12-field document holds about 1.1 KB of heap: after a bulk load, 1,000 kept
 * 0.7 MB more than RxDB's whole page, 256 kept 0.28 MB (`--only heap-after-load`, 3.79 against
 * 3.51 MB with none), 64 keep 0.05–0.08 MB (3.56 and 3.59 MB).
 */
const CACHED_STATES = 64

/**
 * `state` with copies of its object and array values (itself when it has none). A write's states
 * share those values with the documents it reports, which reach the app (live queries, `update`
 * events) and may be changed there: a cached state must not see such a change, or it would be
 * merged into the next write of that document, on this replica only.
 */
function ownValues (state: DocState): DocState {
  let f: Record<string, Register> | undefined
  for (const [field, reg] of Object.entries(state.f)) {
    if (typeof reg.v !== 'object' || reg.v === null) continue
    f ??= dictOf(state.f)
    f[field] = { ...reg, v: structuredClone(reg.v) }
  }
  return f === undefined ? state : { ...state, f }
}

/** Thrown inside a fast-path transaction to abort it when the write cache turned out stale. */
class StaleCache extends Error {}
/** Thrown inside a fast-path transaction to abort it when the ordinary path must handle the block (it is not new, a document expected absent exists, an index turns multikey). */
class UseOrdinaryPath extends Error {}

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
  for (const w of writes) last = issueWrite(tx, w)
  return last
}

/** A read of a native transaction: `use` gets its result (see `DexieWriter.applyCached`). */
type NativeRead = <T>(request: IDBRequest<T>, use: (value: T) => void) => void

/** Keys beyond an insert's own that a range read of `checkAbsent` may return before it reads key by key instead. */
const RANGE_SLACK = 64
/**
 * Documents of an insert up to which `checkAbsent` reads each key: the writes need not wait for
 * those reads (they come after them in the transaction), where range reads must be answered first
 * (one round trip more: a fifth of an `insertOne`).
 */
const KEYS_EACH = 32

/**
 * Inside `tx`, before its writes: read whether any of `keys` has a documents row or an absent
 * document's state, calling `present` for each one that has. Up to `KEYS_EACH` keys, each is
 * counted in each store, and the writes may be issued at once. Beyond, per collection, one
 * key-range read of each store from its smallest to its largest id returns the keys stored
 * between them (an insert's ids are often close: a sequence, time-ordered ids); when that range
 * holds more than the ids and `RANGE_SLACK` keys, each id is counted on its own, so the writes must
 * wait for the answers. Counting each id cost a 10,000-document insert's transaction about 300 ms
 * in Chromium's backend (20,000 requests).
 */
function checkAbsent (tx: IDBTransaction, keyRange: typeof IDBKeyRange, keys: DocKey[], read: NativeRead, present: () => void): void {
  const stores = [tx.objectStore('documents'), tx.objectStore('states')]
  if (keys.length <= KEYS_EACH) {
    for (const k of keys) for (const store of stores) read(store.count([k.coll, k.id]), n => { if (n > 0) present() })
    return
  }
  const byColl = new Map<string, string[]>()
  for (const k of keys) {
    const ids = byColl.get(k.coll)
    if (ids === undefined) byColl.set(k.coll, [k.id])
    else ids.push(k.id)
  }
  for (const [coll, ids] of byColl) {
    // Code-unit order, as IndexedDB orders strings.
    ids.sort()
    const wanted = new Set(ids)
    const limit = ids.length + RANGE_SLACK
    for (const store of stores) {
      read(store.getAllKeys(keyRange.bound([coll, ids[0]], [coll, ids[ids.length - 1]]), limit), stored => {
        if (stored.length < limit) {
          for (const key of stored) if (wanted.has((key as [string, string])[1])) present()
          return
        }
        for (const id of ids) read(store.count([coll, id]), n => { if (n > 0) present() })
      })
    }
  }
}

/** The native IndexedDB transaction of the current Dexie transaction. */
function nativeTransaction (): IDBTransaction {
  const tx = currentIdbTransaction()
  if (tx === undefined) throw new Error('native writes need a Dexie transaction')
  return tx
}

/** Resolves when `request` (if any) succeeded; rejects if it fails or its transaction aborts. Call while it is pending. */
async function settled (request: IDBRequest | undefined): Promise<void> {
  if (request === undefined) return
  await new Promise<void>((resolve, reject) => {
    request.onsuccess = () => { resolve() }
    request.onerror = () => { reject(request.error ?? new DOMException('write failed', 'AbortError')) }
  })
}

/**
 * Inside a Dexie transaction: `issueWrites` on its native transaction. Resolves when the last
 * write succeeded; rejects if the transaction aborts.
 */
async function nativeWrites (writes: NativeWrite[]): Promise<void> {
  await settled(issueWrites(nativeTransaction(), writes))
}

/** The write path of one `DexieStorage`, and its write cache; see the module comment. */
export class DexieWriter {
  private readonly db: ReplicaDb
  private readonly targets: TargetRows
  private cache?: WriteCache

  /** @param targets the rows of this storage's `forWrite` reads, which its fast path may start from */
  constructor (db: ReplicaDb, targets: TargetRows) {
    this.db = db
    this.targets = targets
  }

  /** Inside a read-write transaction: move the generation on (index declarations changed), and drop this storage's cache. */
  async bumpGeneration (): Promise<void> {
    this.cache = undefined
    this.targets.writeBegins()
    try {
      const dag = await readDag(this.db)
      await this.db.meta.put({ key: DAG_KEY, value: { gen: dag.gen + 1, heads: dag.heads } satisfies DagRow })
    } finally {
      this.targets.writeEnds()
    }
  }

  /** `Storage.applyBlock`: by the fast path when the cache allows, else by the ordinary one. */
  async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> {
    const cache = this.cache
    // A block seen stored needs no transaction: blocks are never removed.
    if (cache !== undefined && this.present.has(input.cid)) return { applied: false, changes: [], collections: [], heads: [...cache.heads] }
    const targets = this.targets.writeBegins()
    try {
      if (cache !== undefined && input.dropped.length === 0 &&
        input.colls.every(c => collectionCreated(cache.colls.get(c)?.state)) &&
        input.parents.every(p => this.present.has(p) || cache.heads.includes(p))) {
        try {
          return await this.applyCached(input, cache, targets)
        } catch (err) {
          if (err instanceof StaleCache) this.cache = undefined
          else if (!(err instanceof UseOrdinaryPath)) throw err
        }
      }
      return await this.applyRead(input)
    } finally {
      this.targets.writeEnds()
    }
  }

  /**
   * The fast path of a block whose parents are stored (see the module comment), in one native
   * IndexedDB transaction (Dexie's per-request bookkeeping costs about as much as the requests
   * here, and this path needs none of it): the merge starts from the cache. The states the cache
   * lacks are read first; when the block's documents are expected absent (an insert), only
   * whether they exist is (`checkAbsent`). The writes go out behind the reads of the generation
   * (and, for a remote block, of whether it is stored or missing), and the transaction aborts,
   * writing nothing, when one of them says otherwise. A state the cache lacks is taken
   * from `targets` (rows the write's own query read since the cache's write) when there. Rejects
   * with `StaleCache` when another writer moved the generation, `UseOrdinaryPath` when the block
   * is not new, a document expected absent exists, or an index turns multikey; with the merge's
   * check error when that throws on a cache proven current.
   */
  private async applyCached (input: ApplyBlockInput, cache: WriteCache, targets: Map<string, DocRow>): Promise<ApplyBlockResult> {
    const idb = this.db.backendDB()
    const docs = new Map<string, DocState | undefined>()
    const uncached: DocKey[] = []
    for (const k of input.keys) {
      const key = docKey(k.coll, k.id)
      const row = input.expectAbsent === true ? undefined : targets.get(key)
      if (cache.states.has(key)) docs.set(key, cache.states.get(key))
      else if (row !== undefined) docs.set(key, rowState(row))
      else {
        docs.set(key, undefined)
        uncached.push(k)
      }
    }
    const heads = [...cache.heads.filter(h => !input.parents.includes(h)), input.cid].sort()
    const base: MergeBase = {
      docs,
      colls: new Map(input.colls.map(c => [c, cache.colls.get(c)?.state])),
      indexes: input.colls.flatMap(c => cache.colls.get(c)?.indexes ?? []),
      existedBefore: new Map(input.colls.map(c => [c, true]))
    }
    // Documents expected absent (an insert) are checked absent (`checkAbsent`; the writes wait
    // for that check only past `KEYS_EACH` documents); others are read before the writes.
    const expectAbsent = input.expectAbsent === true
    const readFirst = expectAbsent ? uncached.length > KEYS_EACH : uncached.length > 0
    const staged = await new Promise<StagedMerge>((resolve, reject) => {
      const tx = idb.transaction(['blocks', 'missing', 'states', 'documents', 'colls', 'meta'], 'readwrite')
      let failure: unknown
      let result: StagedMerge | undefined
      let checkError: unknown
      const fail = (err: unknown): void => {
        if (failure !== undefined) return
        failure = err
        try { tx.abort() } catch { /* already finished or aborting: onabort/oncomplete reports the failure */ }
      }
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- `failure` is what a step threw, passed on as it is
      tx.oncomplete = () => { if (result !== undefined) resolve(result); else reject(failure ?? new Error('transaction completed without writing')) }
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the same
      tx.onabort = () => { reject(failure ?? tx.error ?? new DOMException('transaction aborted', 'AbortError')) }
      const store = (name: string): IDBObjectStore => tx.objectStore(name)
      let pending = 0
      let dag: DagRow | undefined
      let stored = 0
      let missing: unknown
      const found: Array<DocState | undefined> = []
      let anyPresent = false
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
        if (!expectAbsent) uncached.forEach((k, n) => { docs.set(docKey(k.coll, k.id), found[n]) })
        let next: StagedMerge
        try {
          // The rows go out as they are staged (an abort below takes them back).
          next = this.stage(input, base, tx)
        } catch (err) {
          checkError = err // an answer only once the reads prove the cache current
          return
        }
        if (next.multikey.length > 0) { fail(new UseOrdinaryPath('an index turns multikey')); return }
        issueWrites(tx, [...blockWrites(input), put('meta', { key: DAG_KEY, value: { gen: cache.gen + 1, heads } satisfies DagRow } satisfies MetaRow)])
        result = next
      }
      const afterReads = (): void => {
        if (dag === undefined || dag.gen !== cache.gen) return fail(new StaleCache('another writer moved the generation'))
        if (stored > 0 || missing !== undefined) return fail(new UseOrdinaryPath('the block is stored, covered or missing'))
        if (anyPresent) return fail(new UseOrdinaryPath('a document expected absent has a state'))
        if (readFirst) issue()
        if (checkError !== undefined) fail(checkError)
      }
      try {
        read(store('meta').get(DAG_KEY) as IDBRequest<MetaRow | undefined>, row => { dag = row?.value as DagRow | undefined })
        // A local block was just made: it cannot be stored, covered or missing yet.
        if (input.local !== true) {
          read(store('blocks').count(input.cid), n => { stored = n })
          read(store('missing').get(input.cid), row => { missing = row })
        }
        if (expectAbsent) {
          checkAbsent(tx, this.db.keyRange, uncached, read, () => { anyPresent = true })
        } else {
          uncached.forEach((k, n) => {
            let row: DocRow | undefined
            let absent: StateRow | undefined
            let got = 0
            const both = (): void => { if (++got === 2) found[n] = row !== undefined ? rowState(row) : absent?.s }
            read(store('documents').get([k.coll, k.id]) as IDBRequest<DocRow | undefined>, r => { row = r; both() })
            read(store('states').get([k.coll, k.id]) as IDBRequest<StateRow | undefined>, r => { absent = r; both() })
          })
        }
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
        readDag(this.db)
      ])
      gen = dag.gen
      if (stored > 0) return { applied: false, changes: [], collections: [], heads: dag.heads }
      staged = this.stage(input, base, nativeTransaction())
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
    // Only the last CACHED_STATES states of a write can stay, each with values of its own (`ownValues`).
    let skip = staged.statesAfter.size - CACHED_STATES
    for (const [key, state] of staged.statesAfter) {
      cache.states.delete(key)
      if (skip-- <= 0) cache.states.set(key, ownValues(state))
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

  /** `Storage.installSnapshot`, in one transaction (the cache is dropped: a snapshot changes many states). */
  async installSnapshot (input: InstallSnapshotInput | InstallSnapshotParts): Promise<InstallSnapshotResult> {
    this.cache = undefined
    this.targets.writeBegins()
    try {
      return await this.install(input)
    } finally {
      this.targets.writeEnds()
    }
  }

  /**
   * The transaction of `installSnapshot`. Given in parts, each part's states are joined and
   * written as it comes: into a storage holding no document state (a fresh replica joining), by
   * `pumpParts`, which stages a part while IndexedDB still writes the rows before it; otherwise
   * one part after another, each read, staged and written before the next is awaited
   * (`Dexie.waitFor` keeps the transaction open meanwhile). The DAG update comes after the last.
   */
  private async install (input: InstallSnapshotInput | InstallSnapshotParts): Promise<InstallSnapshotResult> {
    const { db } = this
    const next = 'next' in input ? input.next : undefined
    return await db.transaction('rw', [db.blocks, db.missing, db.states, db.documents, db.colls, db.indexes, db.meta], async () => {
      // A replica with no state at all (a fresh one installing a snapshot) skips reading thousands
      // of absent keys. Decided once: keys of a later part that an earlier part wrote would be a
      // document in two pages, which the snapshot's checks refuse (aborting this transaction).
      const fresh = await this.holdsNoState()
      const acc: PartsSoFar = { changes: [], covered: [], heads: [], nodes: [], existedBefore: new Map(), collsAfter: new Map(), multikey: [] }
      const writes: Array<Promise<unknown> | undefined> = []
      /** what a part leaves for after the last: its changes, DAG input, collection existence */
      const note = (part: InstallSnapshotInput, staged: StagedMerge): void => {
        for (const [c, existed] of staged.existedBefore) if (!acc.existedBefore.has(c)) acc.existedBefore.set(c, existed)
        for (const [c, state] of staged.collsAfter) acc.collsAfter.set(c, state)
        for (const c of staged.changes) acc.changes.push(c)
        for (const c of part.covered) acc.covered.push(c)
        for (const h of part.heads) acc.heads.push(h)
        for (const n of part.nodes ?? []) acc.nodes.push(n)
      }
      if (next === undefined) {
        const part = input as InstallSnapshotInput
        const staged = this.stage(part, await this.readBase(part, fresh), nativeTransaction())
        writes.push(...staged.write())
        note(part, staged)
      } else if (fresh) {
        // Every collection row and declared index, read once: the parts' bases come from them and
        // from what the parts before wrote (no document state was stored before).
        const [collRows, indexRows] = await Promise.all([db.colls.toArray(), db.indexes.toArray()])
        const colls = new Map<string, CollState | undefined>(collRows.map(r => [r.c, r.s]))
        const take = (part: InstallSnapshotInput): NativeWrite[] => {
          const rows: NativeWrite[] = []
          const base: MergeBase = {
            docs: new Map(part.keys.map(k => [docKey(k.coll, k.id), undefined])),
            colls: new Map(part.colls.map(c => [c, colls.get(c)])),
            indexes: indexRows.filter(i => part.colls.includes(i.c)),
            existedBefore: new Map(part.colls.map(c => [c, acc.existedBefore.get(c) ?? collectionCreated(colls.get(c))]))
          }
          const staged = this.stage(part, base, rows)
          for (const [c, state] of staged.collsAfter) colls.set(c, state)
          for (const i of staged.multikey) {
            acc.multikey.push(i)
            for (const row of indexRows) if (row.c === i.c && row.n === i.n) row.multikey = true
          }
          note(part, staged)
          return rows
        }
        await Dexie.waitFor(pumpParts(nativeTransaction(), {
          next,
          take,
          idleStore: 'meta',
          waitMs: SNAPSHOT_PART_WAIT_MS,
          timeout: () => new Error(`a snapshot install waited over ${SNAPSHOT_PART_WAIT_MS} ms for its next part`)
        }), PUMP_WAIT_MS)
        writes.push(...acc.multikey.map(i => db.indexes.update([i.c, i.n], { multikey: true })))
      } else {
        // The next part is awaited outside the transaction's zone (`ignoreTransaction`): what it
        // runs (the network) must not use this transaction.
        for (let part = await Dexie.waitFor(Dexie.ignoreTransaction(next), SNAPSHOT_PART_WAIT_MS); part !== undefined; part = await Dexie.waitFor(Dexie.ignoreTransaction(next), SNAPSHOT_PART_WAIT_MS)) {
          const staged = this.stage(part, await this.readBase(part, false), nativeTransaction())
          // A write fails only with the transaction, whose failure the install rejects with: not unhandled meanwhile.
          for (const w of staged.write()) {
            w?.catch(() => {})
            writes.push(w)
          }
          note(part, staged)
        }
      }
      const headCids = acc.heads.map(h => h.cid)
      const [storedHeads, storedCovered, dag, missing] = await Promise.all([
        db.blocks.where('cid').anyOf(headCids).primaryKeys(),
        db.blocks.where('cid').anyOf(acc.covered).primaryKeys(),
        readDag(this.db),
        db.missing.toCollection().primaryKeys()
      ])
      const stored = new Set([...storedHeads, ...storedCovered])
      const wasMissing = new Set(missing)
      const update = snapshotDagUpdate({ heads: dag.heads, snapshotHeads: headCids, covered: acc.covered, isStored: c => stored.has(c), isMissing: c => wasMissing.has(c) })
      const store = new Set(update.store)
      await Promise.all([
        ...writes,
        nativeWrites([
          ...acc.heads.filter(h => store.has(h.cid)).map(h => ({ cid: h.cid, bytes: h.bytes, k: 'b' as const })),
          ...acc.nodes.map(n => ({ cid: n.cid, bytes: n.bytes, k: 'c' as const })),
          ...update.cover.map(cid => ({ cid, k: 'v' as const }))
        ].map(r => put('blocks', r))),
        db.meta.put({ key: DAG_KEY, value: { gen: dag.gen + 1, heads: update.heads } satisfies DagRow }),
        db.missing.bulkDelete(update.found)
      ])
      const existed = [...acc.existedBefore]
      const existsAfter = await Promise.all(existed.map(async ([c]) => await collectionExists(this.db, c, acc.collsAfter.get(c))))
      const collections = existed.filter(([, before], i) => before !== existsAfter[i]).map(([c]) => c)
      return { changes: acc.changes, collections, heads: [...update.heads] }
    })
  }

  /** Inside a transaction: whether the storage holds no document state (no document, no state of an absent one). */
  private async holdsNoState (): Promise<boolean> {
    return await this.db.documents.toCollection().first() === undefined && await this.db.states.toCollection().first() === undefined
  }

  /** Inside a transaction: the CRDT states of documents by `[coll, id]`, from their documents rows or, absent, the states table. */
  private async readStates (keys: Array<[string, string]>): Promise<Array<DocState | undefined>> {
    const [rows, absent] = await Promise.all([this.db.documents.bulkGet(keys), this.db.states.bulkGet(keys)])
    return keys.map((_, n) => {
      const row = rows[n]
      return row !== undefined ? rowState(row) : absent[n]?.s
    })
  }

  /**
   * Inside a transaction: read the local states, collection states and indexes `input` names (what
   * its merge starts from); `fresh`: whether the storage held no document state when the
   * transaction began (checked here, when not given, for more than 1,000 keys).
   */
  private async readBase (input: { keys: DocKey[], colls: string[], dropped: string[] }, fresh?: boolean): Promise<MergeBase> {
    const { db } = this
    const keys = input.keys.map(k => [k.coll, k.id] as [string, string])
    // A storage with no state at all (a first bulk insert, a fresh replica installing a snapshot)
    // skips reading thousands of absent keys.
    const none = fresh ?? (keys.length > 1000 && await this.holdsNoState())
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
    const existed = await Promise.all(input.colls.map(async c => await collectionExists(this.db, c, colls.get(c))))
    return { docs, colls, indexes, existedBefore: new Map(input.colls.map((c, i) => [c, existed[i]])) }
  }

  /**
   * Run `input`'s merge over `base` and write the new states, documents, index entries and
   * collection states in `tx` (or only list them there, in order, for the caller to issue), each row issued as soon as it is made, so IndexedDB starts on the
   * first while the rest are made (a 10,000-document write spends about 150 ms making its rows).
   * `base` is not modified. A merge that throws writes nothing; aborting `tx` takes back the rows
   * issued. What applyBlock and installSnapshot share.
   */
  private stage (input: { merge: (i: MergeInput) => MergeOutput }, base: MergeBase, tx: IDBTransaction | NativeWrite[]): StagedMerge {
    const { db } = this
    // The merge reports each document as it materialises before: no read of the documents table.
    const before = new Map<string, Doc | null>()
    const out = input.merge({ docs: base.docs, colls: base.colls, before })
    const changes: DocChange[] = []
    let last: IDBRequest | undefined
    const emit = Array.isArray(tx) ? (w: NativeWrite): void => { tx.push(w) } : (w: NativeWrite): void => { last = issueWrite(tx, w) }
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
        emit(put('states', { c: rec.coll, i: rec.id, s: rec.state } satisfies StateRow))
        if (was !== null) emit(del('documents', [rec.coll, rec.id]))
      } else {
        const own = indexesOf.get(rec.coll) ?? []
        for (const index of own) {
          if (index.multikey !== true && isMultikey(rec.doc, index.paths)) {
            index.multikey = true
            newlyMultikey.push(index)
          }
        }
        emit(put('documents', { c: rec.coll, i: rec.id, d: rec.doc, x: docEntries(rec.doc, own), p: packRow(rec.state, rec.doc) } satisfies DocRow))
        if (was === null && base.docs.get(key) !== undefined) emit(del('states', [rec.coll, rec.id]))
      }
      if (!jsonEqual(was, rec.doc)) changes.push({ coll: rec.coll, id: rec.id, before: was, after: rec.doc })
    })
    const collsAfter = new Map(base.colls)
    for (const c of out.colls) collsAfter.set(c.coll, c.state)
    for (const c of out.colls) emit(put('colls', { c: c.coll, s: c.state } satisfies CollRow))
    return {
      changes,
      collsAfter,
      statesAfter,
      indexesAfter: indexes,
      existedBefore: base.existedBefore,
      multikey: newlyMultikey,
      write: () => [
        settled(last),
        // only the flag: the rest of the row may have changed since it was read (cached)
        ...newlyMultikey.map(i => db.indexes.update([i.c, i.n], { multikey: true }))
      ]
    }
  }

  /** Collections whose existence a staged merge changed (its writes done). */
  private async collectionsChanged (colls: string[], staged: StagedMerge): Promise<string[]> {
    const existsAfter = await Promise.all(colls.map(async c => await collectionExists(this.db, c, staged.collsAfter.get(c))))
    return colls.filter((c, i) => staged.existedBefore.get(c) !== existsAfter[i])
  }
}
