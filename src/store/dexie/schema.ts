/**
 * The IndexedDB schema of `DexieStorage`, its migrations (versions 1 to 6), and the schema of the
 * registry of local names. One IndexedDB database per KiteDB database (`kitedb/<manifest-cid>`),
 * plus one registry database (`kitedb`) mapping local names to addresses.
 *
 * One row per document. Writes cost by the number of rows IndexedDB writes far more than by their
 * bytes (measured in Chromium: 10,000 documents with their states as separate rows took 2.5–3.4×
 * as long as the documents alone; with the states in the documents' rows, 1.3–1.5×). So an
 * existing document's row `{c, i, d, x, p}` also holds its CRDT state `p`, packed against the
 * document (packed.ts) and kept as JSON text; the states table holds only the states of absent
 * documents (deleted, or in a dropped collection), which queries never read.
 *
 * A documents row carries its secondary index entries in `x`: for every declared index of its
 * collection, one element `[coll NUL name, key]` per index key of the document (keys.ts
 * `indexKeys`), served by one native multiEntry IndexedDB index (indexes.ts).
 *
 * The heads live in one meta row with the write generation (write.ts).
 */
import { Dexie, type Table } from 'dexie'
import { type CollState, type Doc, type DocState, collectionCreated, decode, isPlainObject } from '../../crdt/index.js'
import { type IndexKey, indexKeys } from '../keys.js'
import { type IndexInfo } from '../storage.js'
import { type PackedState, packState, unpackState } from '../packed.js'

/**
 * A stored node: a DAG block (`k: 'b'`), a block's chunk (`k: 'c'`), or the CID of a block
 * covered by an installed snapshot (`k: 'v'`, no bytes: present for the DAG, never fetched).
 */
export interface BlockRow { cid: string, bytes?: Uint8Array, k: 'b' | 'c' | 'v' }
/** The meta row holding the heads and the write generation. */
export interface DagRow { gen: number, heads: string[] }
export const DAG_KEY = 'dag'
export interface CidRow { cid: string }
export interface MetaRow { key: string, value: unknown }
export interface NameRow { name: string, address: string }
/** CRDT state of a document that does not exist (deleted, or its collection dropped): collection, id, state */
export interface StateRow { c: string, i: string, s: DocState }
/** index entry of a documents row: index id (`coll NUL name`), key */
export type XEntry = [string, IndexKey]
/**
 * An existing document: collection, id, the document, its entries of every declared index
 * (multiEntry-indexed), and its CRDT state packed against the document (packed.ts)
 */
export interface DocRow { c: string, i: string, d: Doc, x?: XEntry[], p: string }

/**
 * The `p` of a documents row: the packed state as JSON text, so reading a row (a scan reads them
 * all) deserialises one string rather than the packed state's objects; only merges parse it.
 */
export function packRow (state: DocState, doc: Doc): string { return JSON.stringify(packState(state, doc)) }

/** The CRDT state of a documents row. */
export function rowState (row: DocRow): DocState { return unpackState(JSON.parse(row.p) as PackedState, row.d) }
/** CRDT state of a collection */
export interface CollRow { c: string, s: CollState }
/** declared index: collection, name, paths, ready, multikey */
export interface IndexRow { c: string, n: string, paths: string[], ready: boolean, multikey?: boolean }

/** A declared index as `Storage.listIndexes` gives it. */
export const indexInfo = (r: IndexRow): IndexInfo => ({ name: r.n, paths: r.paths, ready: r.ready, multikey: r.multikey === true })

/** Options shared by Dexie storages: which IndexedDB implementation to use (browser default). */
export interface DexieOptions {
  /** an `IDBFactory`, e.g. from fake-indexeddb in Node; defaults to the global `indexedDB` */
  indexedDB?: IDBFactory
  /** the matching `IDBKeyRange` constructor */
  IDBKeyRange?: typeof IDBKeyRange
}

/** The schema version of `ReplicaDb` (Dexie's version; IndexedDB's is ten times it). */
export const SCHEMA_VERSION = 6

/** The tables of the current schema, as every migration below leaves them. */
const CURRENT_TABLES: Record<string, string> = {
  blocks: 'cid, k', missing: 'cid', states: '[c+i]', documents: '[c+i], *x', colls: 'c', indexes: '[c+n], c', meta: 'key'
}

/**
 * The error thrown inside the upgrade of a `ReplicaDb` declared without its migrations, when the
 * database on disk is older (see `ReplicaDb`); one object, recognised by identity.
 */
export const OLDER_SCHEMA = new Error('older schema')

/**
 * The IndexedDB database of one KiteDB database: its tables, and the migrations from every earlier
 * version. With `migrations: false` only the current schema is declared: Dexie re-parses every
 * declared version and rebuilds its table objects at each one, so the six versions cost about ten
 * times one (0.67 against 0.07 ms a construction in Node; about a millisecond of a reloaded page's
 * open). A new database is then made from the current schema directly; a database on disk at an
 * earlier version aborts its upgrade with `OLDER_SCHEMA` before anything changes, and is to be
 * opened again with `migrations: true` (`DexieStorage.open` does).
 */
export class ReplicaDb extends Dexie {
  blocks!: Table<BlockRow, string>
  missing!: Table<CidRow, string>
  states!: Table<StateRow, [string, string]>
  documents!: Table<DocRow, [string, string]>
  colls!: Table<CollRow, string>
  indexes!: Table<IndexRow, [string, string]>
  meta!: Table<MetaRow, string>
  /** the `IDBKeyRange` of `options` (else the global one), for native requests */
  readonly keyRange: typeof IDBKeyRange

  constructor (name: string, options: DexieOptions, migrations = true) {
    super(name, { ...options, cache: 'disabled' })
    this.keyRange = options.IDBKeyRange ?? IDBKeyRange
    // KiteDB uses neither Dexie's liveQuery nor its cross-tab change events (its own change
    // events come from the replica): without these middlewares a write transaction skips
    // computing the mutated key ranges and posting them on a BroadcastChannel.
    this.unuse({ stack: 'dbcore', name: 'Observability' })
    this.unuse({ stack: 'dbcore', name: 'Cache' })
    if (!migrations) {
      // Dexie runs this only when upgrading a database that already exists (a new one is made
      // from the schema); throwing aborts the upgrade transaction, so the database stays as it was.
      this.version(SCHEMA_VERSION).stores(CURRENT_TABLES).upgrade(() => { throw OLDER_SCHEMA })
      return
    }
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

/** The index id of index `name` of collection `coll`: the first element of its entries in `x`. */
export const entryIndex = (coll: string, name: string): string => `${coll}\u0000${name}`

/** Declared indexes by collection. */
export function groupIndexes (indexes: IndexRow[]): Map<string, IndexRow[]> {
  const out = new Map<string, IndexRow[]>()
  for (const index of indexes) {
    const list = out.get(index.c)
    if (list === undefined) out.set(index.c, [index])
    else list.push(index)
  }
  return out
}

/** The `x` of a documents row: its entries of each of `indexes` (its collection's declared indexes). */
export function docEntries (doc: Doc, indexes: IndexRow[]): XEntry[] {
  const x: XEntry[] = []
  for (const index of indexes) {
    const id = entryIndex(index.c, index.n)
    for (const k of indexKeys(doc, index.paths)) x.push([id, k])
  }
  return x
}


/** Inside a transaction, or on its own: the DAG row (heads and write generation). */
export async function readDag (db: ReplicaDb): Promise<DagRow> {
  return (await db.meta.get(DAG_KEY))?.value as DagRow | undefined ?? { gen: 0, heads: [] }
}

/** The native IndexedDB transaction of the current Dexie transaction, if any (for native requests inside it). */
export function currentIdbTransaction (): IDBTransaction | undefined {
  return (Dexie.currentTransaction as { idbtrans?: IDBTransaction } | null)?.idbtrans
}

/** The key range of every row of collection `coll` in a table keyed `[c+i]` (documents, states). */
export const inColl = (coll: string): [unknown[], unknown[]] => [[coll, Dexie.minKey], [coll, Dexie.maxKey]]

/** Whether a collection exists: created after its latest drop (`state`), or holding a document. */
export async function collectionExists (db: ReplicaDb, coll: string, state: CollState | undefined): Promise<boolean> {
  if (collectionCreated(state)) return true
  const any = await db.documents.where('[c+i]').between(...inColl(coll)).first()
  return any !== undefined
}

/** A device-wide secret: name, bytes */
export interface SecretRow { name: string, bytes: Uint8Array }

/** The registry database: local names and device-wide secrets. */
export class RegistryDb extends Dexie {
  names!: Table<NameRow, string>
  secrets!: Table<SecretRow, string>
  constructor (options: DexieOptions) {
    super('kitedb', options)
    this.version(1).stores({ names: 'name, address' })
    this.version(2).stores({ secrets: 'name' })
  }
}
