/**
 * The three systems behind one small interface, each over its own IndexedDB database:
 * raw Dexie 4 (a plain table indexed `_id, age, email`), RxDB with its free Dexie storage
 * (dev-mode off, no schema validation) and KiteDB (local-only). Every method runs the same
 * logical operation; the timed part is the method call.
 */
import { Dexie, type Table } from 'dexie'
import { createRxDatabase, uncacheRxQuery, type RxCollection, type RxDatabase, type MangoQuery, type RxJsonSchema } from 'rxdb'
import { getRxStorageDexie } from 'rxdb/plugins/storage-dexie'
import { KiteDB, type Database, type FindOptions, type Filter, type AnyDoc } from '../../src/index.js'
import { type BenchDoc } from './docs.js'

/** A system measured locally (replicated KiteDB is driven separately). */
export type LocalSystem = 'dexie' | 'rxdb' | 'kitedb'

/** The find measures: equality on email, age range sorted and limited, scan on nested.city. */
export type FindKind = 'email' | 'range' | 'city'

/** What every system offers the measures. */
export interface Store {
  /** all documents in one call, resolved once persisted */
  insertMany: (docs: BenchDoc[]) => Promise<void>
  insertOne: (doc: BenchDoc) => Promise<void>
  /**
   * the `_id`s of the documents found, in the order returned: `email` equal to `arg` (indexed),
   * `range` age 30…40 sorted by age, first 50 (indexed), `city` nested.city equal to `arg` (unindexed)
   */
  find: (kind: FindKind, arg: string) => Promise<string[]>
  /** what the store holds, to check a measure's effect (not timed): documents, and archived ones */
  summary: () => Promise<{ docs: number, archived: number }>
  /**
   * set `status: 'archived'` on every document (all have age ≥ 18); `changed` are the documents
   * with that change made, for systems without an update-by-query (raw Dexie puts them)
   */
  updateMany: (changed: BenchDoc[]) => Promise<void>
  /** how the system answers a find (KiteDB's `explain`), for the notes */
  explain?: (kind: FindKind, arg: string) => Promise<string>
  /** what the measures should report about this store (indexes used) */
  notes: string[]
  close: () => Promise<void>
}

const AGE_RANGE = { $gte: 30, $lte: 40 }
const UPDATE_FILTER = { age: { $gte: 18 } }

class DexieBench extends Dexie {
  docs!: Table<BenchDoc, string>
  constructor (name: string) {
    super(name)
    this.version(1).stores({ docs: '_id, age, email' })
  }
}

async function openDexie (name: string): Promise<Store> {
  const db = new DexieBench(name)
  await db.open()
  const finds: Record<FindKind, (arg: string) => Promise<BenchDoc[]>> = {
    email: async email => await db.docs.where('email').equals(email).toArray(),
    range: async () => await db.docs.where('age').between(AGE_RANGE.$gte, AGE_RANGE.$lte, true, true).limit(50).toArray(),
    // toArray (one getAll) and a JS filter: much faster than Dexie's cursor-based Collection.filter
    city: async city => (await db.docs.toArray()).filter(d => d.nested.city === city)
  }
  return {
    insertMany: async docs => { await db.docs.bulkPut(docs) },
    insertOne: async doc => { await db.docs.put(doc) },
    find: async (kind, arg) => (await finds[kind](arg)).map(d => d._id),
    summary: async () => ({ docs: await db.docs.count(), archived: await db.docs.filter(d => d.status === 'archived').count() }),
    updateMany: async changed => { await db.docs.bulkPut(changed) },
    notes: [],
    close: async () => { db.close() }
  }
}

/** RxDB's primary key is `id` (RxDB reserves top-level names starting with `_`); otherwise the same document. */
type RxBenchDoc = Omit<BenchDoc, '_id'> & { id: string }

const rxSchema: RxJsonSchema<RxBenchDoc> = {
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: {
    id: { type: 'string', maxLength: 32 },
    name: { type: 'string' },
    email: { type: 'string', maxLength: 100 },
    age: { type: 'integer', minimum: 0, maximum: 200, multipleOf: 1 },
    active: { type: 'boolean' },
    score: { type: 'number' },
    createdAt: { type: 'number' },
    nested: { type: 'object' },
    tags: { type: 'array', items: { type: 'string' } },
    bio: { type: 'string' },
    status: { type: 'string' }
  },
  required: ['id', 'email', 'age'],
  indexes: ['age', 'email']
}

function toRx ({ _id, ...rest }: BenchDoc): RxBenchDoc {
  return { id: _id, ...rest }
}

async function openRxdb (name: string): Promise<Store> {
  const db: RxDatabase = await createRxDatabase({ name, storage: getRxStorageDexie(), multiInstance: false })
  await db.addCollections({ docs: { schema: rxSchema } })
  const coll = db.docs as RxCollection<RxBenchDoc>
  // RxDB answers a repeated query from its query cache while nothing changed; drop the query
  // after each run so every run reads storage, as the other systems do.
  const queries: Record<FindKind, (arg: string) => MangoQuery<RxBenchDoc>> = {
    email: email => ({ selector: { email } }),
    range: () => ({ selector: { age: AGE_RANGE }, sort: [{ age: 'asc' }], limit: 50 }),
    city: city => ({ selector: { 'nested.city': city } })
  }
  return {
    insertMany: async docs => {
      const res = await coll.bulkInsert(docs.map(toRx))
      if (res.error.length > 0) throw new Error(`RxDB bulkInsert: ${res.error.length} errors, e.g. ${JSON.stringify(res.error[0])}`)
    },
    insertOne: async doc => { await coll.insert(toRx(doc)) },
    find: async (kind, arg) => {
      const q = coll.find(queries[kind](arg))
      const docs = await q.exec()
      uncacheRxQuery(coll._queryCache, q)
      return docs.map(d => d.id)
    },
    summary: async () => ({ docs: (await coll.find().exec()).length, archived: (await coll.find({ selector: { status: 'archived' } }).exec()).length }),
    updateMany: async () => { await coll.find({ selector: UPDATE_FILTER }).incrementalPatch({ status: 'archived' }) },
    notes: [],
    close: async () => { await db.close() }
  }
}

/** The KiteDB query and find options of each find measure. */
const kiteQueries: Record<FindKind, (arg: string) => [Filter<AnyDoc>, FindOptions]> = {
  email: email => [{ email }, {}],
  range: () => [{ age: AGE_RANGE }, { sort: { age: 1 }, limit: 50 }],
  city: city => [{ 'nested.city': city }, {}]
}

async function openKite (name: string): Promise<Store> {
  // Plain, as docs/benchmarks.md's figures were measured (databases are encrypted by default).
  const db: Database = await KiteDB.init(name, { storage: 'indexeddb', encrypt: false })
  // The indexes are declared with the collection, as Dexie's stores() and RxDB's schema declare
  // theirs: on a reopened database, the read that finds the collection finds them built.
  const coll = await db.initCollection<BenchDoc>('docs', { indexes: ['age', 'email'] })
  const notes: string[] = []
  return {
    insertMany: async docs => { await coll.insert(docs) },
    insertOne: async doc => { await coll.insertOne(doc) },
    find: async (kind, arg) => {
      const [query, options] = kiteQueries[kind](arg)
      return (await coll.find(query, undefined, options)).map(d => d._id)
    },
    summary: async () => ({ docs: await coll.countDocuments(), archived: await coll.countDocuments({ status: 'archived' }) }),
    updateMany: async () => { await coll.updateMany(UPDATE_FILTER, { $set: { status: 'archived' } }) },
    explain: async (kind, arg) => {
      const e = await coll.explain(...kiteQueries[kind](arg))
      return `plan: ${e.strategy}${e.index !== undefined ? ` ${e.index}` : ''}${e.sortedByIndex ? ' (sorted by index)' : ''}, ${e.entriesRead} index entries and ${e.docsRead} docs read`
    },
    notes,
    close: async () => { await db.close() }
  }
}

/** Open (creating it when new) the database `name` of `system`. */
export async function openStore (system: LocalSystem, name: string): Promise<Store> {
  if (system === 'dexie') return await openDexie(name)
  if (system === 'rxdb') return await openRxdb(name)
  return await openKite(name)
}
