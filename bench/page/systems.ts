/**
 * The three systems behind one small interface, each over its own IndexedDB database:
 * raw Dexie 4 (a plain table indexed `_id, age, email`), RxDB with its free Dexie storage
 * (dev-mode off, no schema validation) and KiteDB (local-only). Every method runs the same
 * logical operation; the timed part is the method call.
 */
import { Dexie, type Table } from 'dexie'
import { createRxDatabase, uncacheRxQuery, type RxCollection, type RxDatabase, type MangoQuery, type RxJsonSchema } from 'rxdb'
import { getRxStorageDexie } from 'rxdb/plugins/storage-dexie'
import { KiteDB, type Collection, type Query, type Update, type Database } from '../../src/index.js'
import { type BenchDoc } from './docs.js'

/** A system measured locally (replicated KiteDB is driven separately). */
export type LocalSystem = 'dexie' | 'rxdb' | 'kitedb'

/** What every system offers the measures; `updateMany` is absent where the system lacks it. */
export interface Store {
  /** all documents in one call, resolved once persisted */
  insertMany: (docs: BenchDoc[]) => Promise<void>
  insertOne: (doc: BenchDoc) => Promise<void>
  /** number of documents with this (indexed) email */
  findEmail: (email: string) => Promise<number>
  /** number of documents of `age` 30…40 sorted by age, first 50 */
  findAgeRange: () => Promise<number>
  /** number of documents whose (unindexed) `nested.city` is `city` */
  findCity: (city: string) => Promise<number>
  /**
   * set `status: 'archived'` on every document (all have age ≥ 18); `changed` are the documents
   * with that change made, for systems without an update-by-query (raw Dexie puts them)
   */
  updateMany?: (changed: BenchDoc[]) => Promise<void>
  /** what the measures should report about this store (missing features, indexes used) */
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
  return {
    insertMany: async docs => { await db.docs.bulkPut(docs) },
    insertOne: async doc => { await db.docs.put(doc) },
    findEmail: async email => (await db.docs.where('email').equals(email).toArray()).length,
    findAgeRange: async () => (await db.docs.where('age').between(AGE_RANGE.$gte, AGE_RANGE.$lte, true, true).limit(50).toArray()).length,
    findCity: async city => (await db.docs.filter(d => d.nested.city === city).toArray()).length,
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
  const count = async (query: MangoQuery<RxBenchDoc>): Promise<number> => {
    const q = coll.find(query)
    const docs = await q.exec()
    uncacheRxQuery(coll._queryCache, q)
    return docs.length
  }
  return {
    insertMany: async docs => {
      const res = await coll.bulkInsert(docs.map(toRx))
      if (res.error.length > 0) throw new Error(`RxDB bulkInsert: ${res.error.length} errors, e.g. ${JSON.stringify(res.error[0])}`)
    },
    insertOne: async doc => { await coll.insert(toRx(doc)) },
    findEmail: async email => await count({ selector: { email } }),
    findAgeRange: async () => await count({ selector: { age: AGE_RANGE }, sort: [{ age: 'asc' }], limit: 50 }),
    findCity: async city => await count({ selector: { 'nested.city': city } }),
    updateMany: async () => { await coll.find({ selector: UPDATE_FILTER }).incrementalPatch({ status: 'archived' }) },
    notes: ['updateMany = find(selector).incrementalPatch(); query cache dropped after each find'],
    close: async () => { await db.close() }
  }
}

/** KiteDB methods being added now; feature-detected so the benchmark runs before and after. */
interface KiteExtras {
  updateMany?: (filter: Query, update: Update) => Promise<unknown>
  createIndex?: (spec: Record<string, 1 | -1>) => Promise<unknown>
}

async function openKite (name: string): Promise<Store> {
  const db: Database = await KiteDB.init(name, { storage: 'indexeddb' })
  const initCollection = db.initCollection.bind(db) as (name: string, options?: { indexes: string[] }) => Promise<Collection<BenchDoc>>
  const coll = await initCollection('docs', { indexes: ['age', 'email'] }) as Collection<BenchDoc> & KiteExtras
  const notes: string[] = []
  if (typeof coll.createIndex === 'function') {
    await coll.createIndex({ age: 1 })
    await coll.createIndex({ email: 1 })
  } else {
    notes.push('createIndex n/a (indexes passed to initCollection only)')
  }
  const updateMany = coll.updateMany?.bind(coll)
  return {
    insertMany: async docs => { await coll.insert(docs) },
    insertOne: async doc => { await coll.insertOne(doc) },
    findEmail: async email => (await coll.find({ email })).length,
    findAgeRange: async () => (await coll.find({ age: AGE_RANGE }, undefined, { sort: { age: 1 }, limit: 50 })).length,
    findCity: async city => (await coll.find({ 'nested.city': city })).length,
    ...(updateMany !== undefined ? { updateMany: async () => { await updateMany(UPDATE_FILTER, { $set: { status: 'archived' } }) } } : {}),
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
