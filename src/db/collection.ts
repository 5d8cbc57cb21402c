/**
 * A collection: the AvionDB-style document API over one namespace of a database.
 * Query semantics are MongoDB's, evaluated by mingo over the materialised documents.
 */
import { find as mingoFind } from 'mingo'
import { DuplicateKeyError, InvalidBlockError, ValidationError } from '../errors.js'
import { type Doc, type Op, isPlainObject, jsonEqual } from '../crdt/index.js'
import { type DocChange } from '../store/index.js'
import { applyUpdate, insertOp, prepareInsert } from './ops.js'

/** A MongoDB query document, e.g. `{done: false, n: {$gt: 2}}`. */
export type Query = Record<string, unknown>
/** A MongoDB update document, e.g. `{$set: {done: true}}`. */
export type Update = Record<string, unknown>
/** A MongoDB projection, e.g. `{title: 1}`. */
export type Projection = Record<string, 0 | 1 | boolean>
/** Sort specification: field (dotted paths allowed) → 1 ascending, -1 descending. */
export type Sort = Record<string, 1 | -1>

/** Options of `find` and `observe`. */
export interface FindOptions {
  sort?: Sort
  skip?: number
  limit?: number
}

/** What a collection needs from its database (kept narrow so the two stay decoupled). */
export interface CollectionHost {
  /** throws `DatabaseClosedError` when closed */
  assertOpen (): void
  /** all documents of a collection */
  readDocs (coll: string): Promise<Doc[]>
  /** one document */
  readDoc (coll: string, id: string): Promise<Doc | undefined>
  /** write ops as one block; `prepare` runs inside the write queue and may throw to abort */
  write (prepare: () => Promise<Op[]>): Promise<DocChange[]>
  /** listen to changes of documents of `coll`; returns unsubscribe */
  watch (coll: string, listener: () => void): () => void
}

/**
 * Documents are plain objects with a string `_id`. Every write method writes one block (or nothing,
 * when it changes nothing), so a multi-document call is atomic on every replica.
 */
export class Collection<T extends Record<string, unknown> = Record<string, unknown>> {
  readonly name: string
  private readonly host: CollectionHost

  /** @internal created by `Database.initCollection` */
  constructor (host: CollectionHost, name: string) {
    this.host = host
    this.name = name
  }

  /**
   * Insert documents as one block and return them with their `_id`s. Throws `ValidationError`
   * for a bad document and `DuplicateKeyError` when an `_id` exists (in the collection or twice in
   * `docs`); nothing is written then.
   */
  async insert (docs: T[]): Promise<Array<T & { _id: string }>> {
    this.host.assertOpen()
    if (!Array.isArray(docs)) throw new ValidationError('insert takes an array of documents')
    if (docs.length === 0) return []
    const prepared = docs.map(prepareInsert)
    const ids = new Set<string>()
    for (const d of prepared) {
      if (ids.has(d._id)) throw new DuplicateKeyError(this.name, d._id)
      ids.add(d._id)
    }
    await this.writeOps(async () => {
      for (const d of prepared) {
        if (await this.host.readDoc(this.name, d._id) !== undefined) throw new DuplicateKeyError(this.name, d._id)
      }
      return prepared.map(d => insertOp(this.name, d))
    })
    return prepared as Array<T & { _id: string }>
  }

  /** Insert one document; returns it with its `_id`. Errors as `insert`. */
  async insertOne (doc: T): Promise<T & { _id: string }> {
    return (await this.insert([doc]))[0] as T & { _id: string }
  }

  /**
   * Documents matching `query` (all when omitted), optionally projected, sorted, skipped and
   * limited. Returns `[]` when none match. Throws `ValidationError` for an invalid query.
   */
  async find (query: Query = {}, projection?: Projection, options: FindOptions = {}): Promise<Array<T & { _id: string }>> {
    this.host.assertOpen()
    return runQuery(await this.host.readDocs(this.name), query, projection, options) as Array<T & { _id: string }>
  }

  /** The first document matching `query`, or `null`. */
  async findOne (query: Query = {}, projection?: Projection): Promise<(T & { _id: string }) | null> {
    return (await this.find(query, projection, { limit: 1 }))[0] ?? null
  }

  /** The document with this `_id`, or `undefined`. */
  async findById (id: string): Promise<(T & { _id: string }) | undefined> {
    this.host.assertOpen()
    if (typeof id !== 'string') throw new ValidationError('findById takes a string _id')
    return await this.host.readDoc(this.name, id) as (T & { _id: string }) | undefined
  }

  /**
   * Apply `update` to the first document matching `filter`; returns the updated document, or
   * `null` when none matches. With `{upsert: true}` and no match, inserts the filter's equality
   * fields with the update applied. Throws `ValidationError` for a bad filter or update.
   */
  async updateOne (filter: Query, update: Update, options: { upsert?: boolean } = {}): Promise<(T & { _id: string }) | null> {
    this.host.assertOpen()
    let result: Doc | null = null
    await this.writeOps(async () => {
      const target = runQuery(await this.host.readDocs(this.name), filter, undefined, { limit: 1 })[0]
      if (target === undefined) {
        if (options.upsert !== true) return []
        const seed = prepareInsert(equalityFields(filter))
        const { after } = applyUpdate(this.name, seed, update)
        result = after
        return [insertOp(this.name, after)]
      }
      const { after, op } = applyUpdate(this.name, target, update)
      result = after
      return op === undefined ? [] : [op]
    })
    return result
  }

  /** Delete the first document matching `filter`; returns it, or `null` when none matches. */
  async deleteOne (filter: Query): Promise<(T & { _id: string }) | null> {
    this.host.assertOpen()
    let deleted: Doc | null = null
    await this.writeOps(async () => {
      deleted = runQuery(await this.host.readDocs(this.name), filter, undefined, { limit: 1 })[0] ?? null
      return deleted === null ? [] : [{ op: 'del', coll: this.name, id: deleted._id }]
    })
    return deleted
  }

  /**
   * Watch a query: `callback` gets the full result set now and again after every local or remote
   * change that alters it (changes are coalesced; the callback never sees a half-applied block).
   * Returns a function that stops watching.
   */
  observe (query: Query, callback: (docs: Array<T & { _id: string }>) => void, options: FindOptions & { projection?: Projection } = {}): () => void {
    this.host.assertOpen()
    let stopped = false
    let running = false
    let dirty = false
    let last: Array<T & { _id: string }> | undefined
    const run = async (): Promise<void> => {
      if (running) { dirty = true; return }
      running = true
      try {
        do {
          dirty = false
          const docs = await this.find(query, options.projection, options)
          if (stopped) return
          if (last === undefined || !jsonEqual(last as never, docs as never)) {
            last = docs
            callback(docs)
          }
        } while (dirty && !stopped)
      } catch (err) {
        if (!stopped) console.error(`[kitedb] observe on "${this.name}" failed`, err)
      } finally {
        running = false
      }
    }
    let scheduled = false
    const unwatch = this.host.watch(this.name, () => {
      if (scheduled) return
      scheduled = true
      queueMicrotask(() => { scheduled = false; void run() })
    })
    void run()
    return () => { stopped = true; unwatch() }
  }

  private async writeOps (prepare: () => Promise<Op[]>): Promise<void> {
    try {
      await this.host.write(prepare)
    } catch (err) {
      if (err instanceof InvalidBlockError) throw new ValidationError(err.message.replace(/^invalid block: /, ''), { cause: err })
      throw err
    }
  }
}

/** Run a Mongo query with mingo; wraps mingo's errors in `ValidationError`. */
function runQuery (docs: Doc[], query: Query, projection: Projection | undefined, options: FindOptions): Doc[] {
  if (!isPlainObject(query)) throw new ValidationError('a query must be a plain object')
  try {
    let cursor = mingoFind(docs, query, projection)
    if (options.sort !== undefined) cursor = cursor.sort(options.sort)
    if (options.skip !== undefined) cursor = cursor.skip(options.skip)
    if (options.limit !== undefined) cursor = cursor.limit(options.limit)
    return cursor.all() as Doc[]
  } catch (err) {
    throw new ValidationError(`invalid query: ${(err as Error).message}`, { cause: err })
  }
}

/** The `{field: value}` equalities of a filter (what an upsert seeds the new document with). */
function equalityFields (filter: Query): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(filter)) {
    if (k.startsWith('$') || k.includes('.')) continue
    if (isPlainObject(v) && Object.keys(v).some(x => x.startsWith('$'))) continue
    out[k] = v
  }
  return out
}
