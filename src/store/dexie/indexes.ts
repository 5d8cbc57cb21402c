/**
 * Secondary indexes of `DexieStorage`: declaring, building, dropping and scanning them. A
 * documents row `{c, i, d, x, p}` carries its index entries in `x` (schema.ts): for every declared
 * index of its collection, one element `[coll NUL name, key]` per index key of the document. One
 * native multiEntry IndexedDB index over `x` serves every declared index, so writing a document
 * writes one row (IndexedDB maintains the index records), deleting it removes its entries with it,
 * and an equality or range predicate is one key-range scan of that index between
 * `[coll NUL name, lower]` and `[coll NUL name, upper]` that returns the documents themselves.
 * IndexedDB orders the records of one index key by primary key `[c, i]`, so equal keys come in
 * `_id` order. `x` is always computed from the declared indexes (never diffed), so a write cannot
 * leave a stale element of a dropped index behind; building an index rewrites each row's elements
 * of that index; dropping one removes them (see `dropIndex`).
 */
import { Dexie } from 'dexie'
import { jsonEqual } from '../../crdt/index.js'
import { type IndexKey, type KeyRange, compareKeys, inRange, indexKeys, isMultikey } from '../keys.js'
import { type IndexDocEntry, type IndexEntry, type IndexInfo, type IndexProgress, type ScanOptions, indexName } from '../storage.js'
import { type DocRow, type IndexRow, type ReplicaDb, type XEntry, currentIdbTransaction, entryIndex, inColl, indexInfo } from './schema.js'
import { type DexieWriter } from './write.js'
import { type TargetRows } from './target-rows.js'

/** Documents rows an index build or drop rewrites per transaction. */
const BUILD_BATCH = 1000

/** The secondary indexes of one `DexieStorage`; see the module comment. */
export class DexieIndexes {
  private readonly db: ReplicaDb
  /** moves the write generation on when declarations change (see write.ts) */
  private readonly writer: DexieWriter
  private readonly targets: TargetRows

  /** @param targets where the rows of `forWrite` reads are noted (`scanIndexDocs`) */
  constructor (db: ReplicaDb, writer: DexieWriter, targets: TargetRows) {
    this.db = db
    this.writer = writer
    this.targets = targets
  }

  /** `Storage.listIndexes`. */
  async listIndexes (coll: string): Promise<IndexInfo[]> {
    const rows = nativeGetAll<IndexRow>('indexes', 'c', coll) ?? this.db.indexes.where('c').equals(coll).toArray()
    return (await rows).map(indexInfo)
  }

  /** `Storage.createIndex`: declared first, then built one batch per transaction. */
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
        await this.writer.bumpGeneration()
      })
    }
    const total = await db.documents.where('[c+i]').between(...inColl(coll)).count()
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
          await this.writer.bumpGeneration()
        }
        return rows
      })
      if (batch.length === 0) break
      done += batch.length
      after = [coll, batch[batch.length - 1].i]
      // Documents written during the build may make more than were counted at its start.
      onProgress?.({ done, total: Math.max(total, done) })
    }
    await db.transaction('rw', [db.indexes, db.meta], async () => {
      await db.indexes.update([coll, name], { ready: true })
      await this.writer.bumpGeneration()
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
          await this.writer.bumpGeneration()
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

  /** `Storage.scanIndex`: `scanIndexDocs` without the documents. */
  async scanIndex (coll: string, name: string, range: KeyRange, options: ScanOptions = {}): Promise<IndexEntry[]> {
    return (await this.scanIndexDocs(coll, name, range, options)).map(e => ({ key: e.key, id: e.id }))
  }

  /**
   * One key-range scan of the `x` index (see the module comment), returning the rows. `after` narrows
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
    const skipped = (key: IndexKey, id: string): boolean => skip !== undefined && compareKeys(key, skip.key) === 0 && (reverse ? id >= skip.id : id <= skip.id)
    if (skip === undefined && !reverse) {
      // the usual scan, forward from the start of its range: one native request
      let range: IDBKeyRange | undefined
      try {
        range = this.db.keyRange.bound([x, bounds.lower], [x, bounds.upper], bounds.lowerOpen === true, bounds.upperOpen === true)
      } catch (err) {
        if ((err as DOMException).name !== 'DataError') throw err // an empty range (lower above upper)
      }
      const native = range === undefined ? Dexie.Promise.resolve([]) : nativeGetAll<DocRow>('documents', 'x', range, options.limit)
      if (native !== undefined) return this.entriesOf(await native, coll, name, bounds, reverse, skipped)
    }
    let q = this.db.documents.where('x').between([x, bounds.lower], [x, bounds.upper], bounds.lowerOpen !== true, bounds.upperOpen !== true)
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
    return this.entriesOf(await q.toArray(), coll, name, bounds, reverse, skipped)
  }

  /** The entries of the rows a scan of index `name` over `bounds` returned, in scan order (see `scanIndexDocs`). */
  private entriesOf (rows: DocRow[], coll: string, name: string, bounds: KeyRange, reverse: boolean, skipped: (key: IndexKey, id: string) => boolean): IndexDocEntry[] {
    const x = entryIndex(coll, name)
    this.targets.saw(rows)
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
}

/**
 * Inside a Dexie transaction: all records of `store`'s index `index` in `query` (up to `count`),
 * by one native request (Dexie's own bookkeeping of a request cost about as much as the request,
 * measured in a find); `undefined` outside a transaction. A Dexie promise, so the code awaiting it
 * stays in the transaction's zone.
 */
function nativeGetAll<T> (store: string, index: string, query: IDBValidKey | IDBKeyRange, count?: number): Promise<T[]> | undefined {
  const tx = currentIdbTransaction()
  if (tx === undefined) return undefined
  return new Dexie.Promise<T[]>((resolve, reject) => {
    const request = tx.objectStore(store).index(index).getAll(query, count)
    request.onsuccess = () => { resolve(request.result as T[]) }
    request.onerror = () => { reject(request.error ?? new DOMException('read failed', 'AbortError')) }
  })
}
