/**
 * IndexedDB `Storage` through Dexie (schema.ts holds the tables and their migrations): the reads
 * are here; writes go through `DexieWriter` (write.ts), secondary indexes through `DexieIndexes`
 * (indexes.ts). The provider that opens these storages is provider.ts.
 */
import { Dexie, type Table } from 'dexie'
import { type Doc, collectionCreated, compareDocKeys } from '../../crdt/index.js'
import { type KeyRange } from '../keys.js'
import {
  type ApplyBlockInput, type ApplyBlockResult, type DocKey, type IndexDocEntry, type IndexEntry, type IndexInfo, type IndexProgress,
  type InstallSnapshotInput, type InstallSnapshotResult, type ReadOptions, type ScanOptions, type SnapshotSource, type Storage, type StoredNode
} from '../storage.js'
import { type DexieOptions, type DocRow, type MetaRow, OLDER_SCHEMA, ReplicaDb, collectionExists, inColl, indexInfo, readDag, rowState } from './schema.js'
import { DexieWriter } from './write.js'
import { DexieIndexes } from './indexes.js'
import { TargetRows } from './target-rows.js'

/** Collections, and declared indexes, up to which opening a database reads them all (`openedCollection`). */
const OPEN_READ = 64

/** Two lists of documents, each in (collection, id) order, as one in that order. */
function mergeByKey<T extends DocKey> (a: T[], b: T[]): T[] {
  const out: T[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && compareDocKeys(a[i], b[j]) < 0)) out.push(a[i++])
    else out.push(b[j++])
  }
  return out
}

/** Whether `err` (as Dexie rejects an open: the error itself, or wrapping it) is `OLDER_SCHEMA`, thrown in the upgrade. */
function isOlderSchema (err: unknown): boolean {
  for (let e = err, depth = 0; e != null && depth < 5; depth++) {
    if (e === OLDER_SCHEMA) return true
    e = (e as { inner?: unknown }).inner ?? (e as { cause?: unknown }).cause
  }
  return false
}

/** A `Storage` in one IndexedDB database. */
export class DexieStorage implements Storage {
  readonly kind = 'indexeddb'
  private readonly db: ReplicaDb
  private readonly writer: DexieWriter
  private readonly indexes: DexieIndexes
  private readonly targets = new TargetRows()

  /**
   * A storage over the IndexedDB database `name`, opened (by Dexie) at its first use, made or
   * migrated to the current schema then. `migrations: false` is for `DexieStorage.open` only (see
   * `ReplicaDb`).
   */
  constructor (name: string, options: DexieOptions = {}, migrations = true) {
    this.db = new ReplicaDb(name, options, migrations)
    this.writer = new DexieWriter(this.db, this.targets)
    this.indexes = new DexieIndexes(this.db, this.writer, this.targets)
  }

  /**
   * The storage over the IndexedDB database `name`, open: declared with the current schema only
   * (about a millisecond less of a reloaded page's open, see `ReplicaDb`), and, only when the
   * database on disk is older, opened again with every migration. Rejects with Dexie's error when
   * IndexedDB refuses the open (storage unavailable, an upgrade failing).
   */
  static async open (name: string, options: DexieOptions = {}): Promise<DexieStorage> {
    const current = new DexieStorage(name, options, false)
    try {
      await current.db.open()
      return current
    } catch (err) {
      current.db.close()
      if (!isOlderSchema(err)) throw err
    }
    const migrated = new DexieStorage(name, options)
    await migrated.db.open()
    return migrated
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

  async getHeads (): Promise<string[]> { return [...(await readDag(this.db)).heads] }

  async getMissing (): Promise<string[]> { return (await this.db.missing.toCollection().primaryKeys()).sort() }

  async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> { return await this.writer.applyBlock(input) }

  async installSnapshot (input: InstallSnapshotInput): Promise<InstallSnapshotResult> { return await this.writer.installSnapshot(input) }

  async readSnapshotSource (): Promise<SnapshotSource> {
    const { db } = this
    return await db.transaction('r', [db.blocks, db.missing, db.states, db.documents, db.colls, db.meta], async () => {
      const [dag, missing, states, rows, colls, blocks] = await Promise.all([
        readDag(this.db),
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

  async getDocs (coll: string): Promise<Doc[]> {
    const rows = await this.db.documents.where('[c+i]').between(...inColl(coll)).toArray()
    this.targets.saw(rows)
    return rows.map(r => r.d)
  }

  async getDoc (coll: string, id: string): Promise<Doc | undefined> {
    const row = await this.db.documents.get([coll, id])
    this.targets.saw([row])
    return row?.d
  }

  async getDocsById (coll: string, ids: string[]): Promise<Array<Doc | undefined>> {
    const rows = await this.db.documents.bulkGet(ids.map(id => [coll, id] as [string, string]))
    this.targets.saw(rows)
    return rows.map(r => r?.d)
  }

  async countDocs (coll: string): Promise<number> {
    return await this.db.documents.where('[c+i]').between(...inColl(coll)).count()
  }

  async getCollections (): Promise<string[]> {
    const { db } = this
    return await this.inTransaction([db.colls, db.documents], async () => {
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
        if (await collectionExists(this.db, c, rows[i++]?.s)) out.push(c)
      }
      return out.sort()
    })
  }

  async hasCollection (coll: string): Promise<boolean> {
    const { db } = this
    // One read when the collection was created (the usual case); a second only when it was not.
    return await this.inTransaction([db.colls, db.documents], async () => await collectionExists(this.db, coll, (await db.colls.get(coll))?.s))
  }

  /**
   * `fn` in the current Dexie transaction when it covers `tables` (inside `read`), else in a
   * read-only one of its own. Not nested: Dexie holds its parent's other requests back until a
   * nested transaction ends, which made opening a collection (whether it exists, and its indexes,
   * read together) two IndexedDB round trips in a row instead of one.
   */
  private async inTransaction<T> (tables: Table[], fn: () => Promise<T>): Promise<T> {
    const current = Dexie.currentTransaction
    if (current !== null && tables.every(t => current.storeNames.includes(t.name))) return await fn()
    return await this.db.transaction('r', tables, fn)
  }

  async listIndexes (coll: string): Promise<IndexInfo[]> { return await this.indexes.listIndexes(coll) }

  async createIndex (coll: string, paths: string[], onProgress?: (p: IndexProgress) => void): Promise<IndexInfo> {
    return await this.indexes.createIndex(coll, paths, onProgress)
  }

  async dropIndex (coll: string, name: string): Promise<void> { await this.indexes.dropIndex(coll, name) }

  async scanIndex (coll: string, name: string, range: KeyRange, options: ScanOptions = {}): Promise<IndexEntry[]> {
    return await this.indexes.scanIndex(coll, name, range, options)
  }

  async scanIndexDocs (coll: string, name: string, range: KeyRange, options: ScanOptions = {}): Promise<IndexDocEntry[]> {
    return await this.indexes.scanIndexDocs(coll, name, range, options)
  }

  /**
   * `Storage.read`: `fn` in one read-only transaction, resolved as soon as `fn` resolves rather
   * than when the transaction's `complete` event arrives (as Dexie's `transaction()` is; its
   * implicit transaction of a single read does not wait). A read-only transaction's reads are
   * final once they succeeded, so waiting for `complete` — one more round trip to the browser's
   * IndexedDB backend, a median 0.6 ms of a 3.8 ms indexed find back to back and 1.3 ms of 5.6 ms
   * with pauses between finds — adds nothing.
   * Rejects with `fn`'s error, or the transaction's when it fails before `fn` resolved; a failure
   * after that (the database closed meanwhile) no longer matters to the result. With
   * `options.forWrite`, the documents rows read are kept for the write that follows (`TargetRows`).
   */
  read<T> (fn: () => Promise<T>, options: ReadOptions = {}): Promise<T> {
    const { db } = this
    // A Dexie promise, not a native one: its callbacks run in the zone they were attached in, so
    // the code awaiting it goes on outside this transaction although `resolve` is called inside.
    // After a native promise resolved there, Dexie's zone echoes carried the transaction into the
    // awaiting code, and a write it began at once failed (`ReadOnlyError`, `SubTransactionError`).
    return new Dexie.Promise<T>((resolve, reject) => {
      db.transaction('r', [db.documents, db.indexes, db.colls, db.states], async () => {
        const done = options.forWrite === true ? this.targets.reading() : undefined
        const value = await fn()
        done?.()
        resolve(value)
        return value
      }).catch(reject)
    })
  }

  /**
   * `Storage.getMeta`. Outside a transaction, the keys asked for before the next microtask are
   * read together, in one transaction: opening a database asks for four at once, which as four
   * transactions took about 0.5 ms longer to answer in a reloaded page.
   */
  async getMeta<T> (key: string): Promise<T | undefined> {
    if (Dexie.currentTransaction !== null) return (await this.db.meta.get(key))?.value as T | undefined
    let batch = this.metaBatch
    if (batch === undefined) {
      const keys: string[] = []
      const rows = Promise.resolve().then(async () => {
        this.metaBatch = undefined
        return await this.readMeta(keys)
      })
      batch = this.metaBatch = { keys, rows }
    }
    const at = batch.keys.push(key) - 1
    return (await batch.rows)[at]?.value as T | undefined
  }

  /** The `getMeta` keys asked for since the last microtask, and their read (see `getMeta`). */
  private metaBatch?: { keys: string[], rows: Promise<Array<MetaRow | undefined>> }

  /**
   * The meta rows of `keys`. The first time (the open's reads), in the same transaction, the
   * collections and declared indexes too (`openedCollection`), when there are fewer than
   * `OPEN_READ` of each.
   */
  private async readMeta (keys: string[]): Promise<Array<MetaRow | undefined>> {
    const { db } = this
    if (this.atOpen !== undefined) return await db.meta.bulkGet(keys)
    const mark = this.targets.mark
    this.atOpen = { mark, created: new Set(), indexes: new Map() }
    return await db.transaction('r', [db.meta, db.colls, db.indexes], async () => {
      const [rows, colls, indexes] = await Promise.all([db.meta.bulkGet(keys), db.colls.limit(OPEN_READ).toArray(), db.indexes.limit(OPEN_READ).toArray()])
      if (colls.length < OPEN_READ && indexes.length < OPEN_READ) {
        const at = { mark, created: new Set(colls.filter(r => collectionCreated(r.s)).map(r => r.c)), indexes: new Map<string, IndexInfo[]>() }
        for (const r of indexes) {
          const list = at.indexes.get(r.c) ?? []
          list.push(indexInfo(r))
          at.indexes.set(r.c, list)
        }
        this.atOpen = at
      }
      return rows
    })
  }

  /** What the open's reads found (`readMeta`); `created` empties as `openedCollection` answers. */
  private atOpen?: { mark: number, created: Set<string>, indexes: Map<string, IndexInfo[]> }

  openedCollection (coll: string): IndexInfo[] | undefined {
    const at = this.atOpen
    if (at === undefined || at.mark !== this.targets.mark || !at.created.delete(coll)) return undefined
    return at.indexes.get(coll) ?? []
  }

  async setMeta (key: string, value: unknown): Promise<void> { await this.db.meta.put({ key, value }) }

  async close (): Promise<void> { this.db.close() }
}
