/**
 * A collection: the AvionDB-style document API over one namespace of a database. Query and update
 * semantics are MongoDB's (mingo); queries go through the planner (`planner.ts`), which uses the
 * collection's secondary indexes when it can.
 *
 * Every write method builds its ops inside the replica's write queue (so the documents it reads
 * cannot change under it) and writes them as one block, or nothing when it changes nothing. A
 * call that throws writes nothing.
 *
 * One piece, though over 400 lines: the AvionDB/MongoDB method set of one collection, each
 * method a few lines over the same host (query.ts evaluates, ops.ts builds the ops, live.ts
 * pushes live results).
 */
import { DuplicateKeyError, InvalidBlockError, type SchemaProblem, ValidationError } from '../errors.js'
import { type Doc, type JsonValue, type Op, copyJsonValue, isPlainObject } from '../crdt/index.js'
import { type DocChange, type IndexInfo, type IndexProgress, type Storage, docKey, valuesAt } from '../store/index.js'
import { type BeforeCheck, type ChangeSet } from '../sync/index.js'
import { applyUpdate, applyUpdates, checkUpdate, insertOp, prepareInsert, replaceOp } from './ops.js'
import { type SchemaCheck, assertFits } from './schema.js'
import { checkPath, checkQuery, holdsRegex, prepareRegex, regexEngineLoaded } from './query.js'
import { type Explain, compileQuery, executeQuery, runCompiled } from './planner.js'
import { type Evaluator, LiveQuery, type LiveQueryOptions } from './live.js'
import { type AnyDoc, type Filter, type FindOptions, type OptionalId, type Projection, type UpdateFilter, type WithId } from './types.js'
import { createLogger } from '../log.js'

const log = createLogger('db')

/** Options of `createIndex`. */
export interface CreateIndexOptions {
  /** called as the build over existing documents progresses */
  onProgress?: (progress: IndexProgress) => void
}

/** An index specification: a path, or several for a compound index. */
export type IndexSpec = string | string[]

/** What a collection needs from its database (kept narrow so the two stay decoupled). */
export interface CollectionHost {
  /** throws `DatabaseClosedError` when closed */
  assertOpen (): void
  readonly storage: Storage
  /**
   * Write ops as one block; `prepare` runs inside the write queue and may throw to abort; `check`
   * runs inside the block's transaction with the documents as they are just before it; `options`
   * tell the storage what to expect (see `WriteHints`)
   */
  write (prepare: () => Promise<Op[]>, check?: BeforeCheck, options?: WriteHints): Promise<ChangeSet>
  /**
   * Listen to changes of `coll`: called with the documents each block changed (complete, also
   * when the block created or dropped the collection). Returns unsubscribe.
   */
  watch (coll: string, listener: (changes: DocChange[]) => void): () => void
  /** the database's head hash (see `Database.getHeadHash`) */
  getHeadHash (): Promise<string>
  /** resolves when the state named by a head hash is reached (see `Database.syncFromHeadHash`) */
  syncFromHeadHash (hash: string, options?: { timeoutMs?: number }): Promise<void>
}

/** What a write tells the storage in advance (see `Replica.commit`). */
export interface WriteHints {
  /** the documents written are expected not to exist (an insert) */
  expectAbsent?: boolean
}

/** Documents imported per block by `import`. */
const IMPORT_BATCH = 500

/** A collection of documents of shape `T` (each stored with a string `_id`). */
export class Collection<T extends object = AnyDoc> {
  readonly name: string
  private readonly host: CollectionHost
  private schema?: SchemaCheck

  /** @internal created by `Database.initCollection` and friends */
  constructor (host: CollectionHost, name: string) {
    this.host = host
    this.name = name
  }

  /** @internal set by `Database.openCollection` when a schema is declared (see schema.ts) */
  setSchema (check: SchemaCheck | undefined): void {
    this.schema = check
  }

  /**
   * Documents that do not fit the collection's schema, with why: written by other replicas (a
   * replica cannot refuse a peer's valid block), or merged from concurrent writes that each fit.
   * `[]` when no schema is declared here. Reads the whole collection.
   */
  async invalid (): Promise<Array<{ doc: WithId<T>, problems: SchemaProblem[] }>> {
    this.host.assertOpen()
    const check = this.schema
    if (check === undefined) return []
    const out: Array<{ doc: WithId<T>, problems: SchemaProblem[] }> = []
    for (const doc of await this.host.storage.getDocs(this.name)) {
      const problems = check(doc)
      if (problems.length > 0) out.push({ doc: doc as unknown as WithId<T>, problems })
    }
    return out
  }

  // ---- inserts ------------------------------------------------------------------------------

  /**
   * Insert documents as one block and return them with their `_id`s. Throws `ValidationError`
   * for a bad document and `DuplicateKeyError` when an `_id` exists (in the collection or twice in
   * `docs`); nothing is written then.
   */
  async insert (docs: Array<OptionalId<T>>): Promise<Array<WithId<T>>> {
    this.host.assertOpen()
    if (!Array.isArray(docs)) throw new ValidationError('insert takes an array of documents')
    if (docs.length === 0) return []
    const prepared = docs.map(prepareInsert)
    for (const d of prepared) assertFits(this.schema, d, this.name)
    const ids = new Set<string>()
    for (const d of prepared) {
      if (ids.has(d._id)) throw new DuplicateKeyError(this.name, d._id)
      ids.add(d._id)
    }
    // The duplicate check runs inside the block's transaction, against the documents as they are
    // just before it: no separate read, and no race with a block applied in between.
    await this.write(async () => prepared.map(d => insertOp(this.name, d)), before => {
      const dup = prepared.find(d => (before.get(docKey(this.name, d._id)) ?? null) !== null)
      if (dup !== undefined) throw new DuplicateKeyError(this.name, dup._id)
    }, { expectAbsent: true })
    return prepared as unknown as Array<WithId<T>>
  }

  /** Insert one document; returns it with its `_id`. Errors as `insert`. */
  async insertOne (doc: OptionalId<T>): Promise<WithId<T>> {
    return (await this.insert([doc]))[0]
  }

  // ---- reads --------------------------------------------------------------------------------

  /**
   * Documents matching `query` (all when omitted), optionally projected, sorted, skipped and
   * limited, in `_id` order unless sorted. Returns `[]` when none match. Throws `ValidationError`
   * for an invalid query or options.
   */
  async find (query: Filter<T> = {}, projection?: Projection<T>, options: FindOptions<T> = {}): Promise<Array<WithId<T>>> {
    this.host.assertOpen()
    const { docs } = await executeQuery(this.host.storage, this.name, query, projection, options)
    return docs as unknown as Array<WithId<T>>
  }

  /** The first document matching `query` (in `_id` order), or `null`. */
  async findOne (query: Filter<T> = {}, projection?: Projection<T>): Promise<WithId<T> | null> {
    return (await this.find(query, projection, { limit: 1 }))[0] ?? null
  }

  /** The document with this `_id`, or `undefined`. Throws `ValidationError` unless `id` is a string. */
  async findById (id: string): Promise<WithId<T> | undefined> {
    this.host.assertOpen()
    if (typeof id !== 'string') throw new ValidationError('findById takes a string _id')
    return await this.host.storage.getDoc(this.name, id) as WithId<T> | undefined
  }

  /** Number of documents matching `query` (all when omitted). */
  async countDocuments (query: Filter<T> = {}): Promise<number> {
    this.host.assertOpen()
    if (isPlainObject(query) && Object.keys(query).length === 0) return await this.host.storage.countDocs(this.name)
    return (await this.find(query, { _id: 1 })).length
  }

  /**
   * Distinct values of `key` (a dotted path) among documents matching `query`, in first-seen
   * order (documents in `_id` order). Array values contribute their elements, as in MongoDB.
   */
  async distinct (key: string, query: Filter<T> = {}): Promise<JsonValue[]> {
    if (typeof key !== 'string' || key.length === 0) throw new ValidationError('distinct takes a field path')
    checkPath(key, 'distinct')
    const docs = await this.find(query)
    const out: JsonValue[] = []
    const seen = new Set<string>()
    for (const doc of docs) {
      for (const v of valuesAt(doc, key)) {
        if (v === undefined) continue
        for (const x of Array.isArray(v) ? v : [v]) {
          const k = JSON.stringify(x)
          if (!seen.has(k)) { seen.add(k); out.push(x) }
        }
      }
    }
    return out
  }

  /** How `find(query, undefined, options)` is answered: the index used and how much was read. */
  async explain (query: Filter<T> = {}, options: FindOptions<T> = {}): Promise<Explain> {
    this.host.assertOpen()
    return (await executeQuery(this.host.storage, this.name, query, undefined, options)).explain
  }

  // ---- updates ------------------------------------------------------------------------------

  /**
   * Apply `update` to the first document matching `filter`; returns it as updated, or `null` when
   * none matches. With `{upsert: true}` and no match, inserts the filter's equality fields with the
   * update applied. Throws `ValidationError` for a bad filter or update (nothing is written).
   */
  async updateOne (filter: Filter<T>, update: UpdateFilter<T>, options: { upsert?: boolean } = {}): Promise<WithId<T> | null> {
    return (await this.modify(filter, update, { multi: false, upsert: options.upsert === true })).after[0] ?? null
  }

  /** Apply `update` to every document matching `filter`, as one block; returns them as updated (`[]` when none). */
  async updateMany (filter: Filter<T>, update: UpdateFilter<T>, options: { upsert?: boolean } = {}): Promise<Array<WithId<T>>> {
    return (await this.modify(filter, update, { multi: true, upsert: options.upsert === true })).after
  }

  /** AvionDB's `update`: the first match, or every match with `{multi: true}`; returns the updated documents. */
  async update (filter: Filter<T>, update: UpdateFilter<T>, options: { multi?: boolean, upsert?: boolean } = {}): Promise<Array<WithId<T>>> {
    return (await this.modify(filter, update, { multi: options.multi === true, upsert: options.upsert === true })).after
  }

  /**
   * Update the first match and return it `'after'` (default) or `'before'` the update; `null`
   * when none matches (and no upsert happened; with `'before'`, an upsert returns `null`).
   */
  async findOneAndUpdate (filter: Filter<T>, update: UpdateFilter<T>, options: { returnDocument?: 'before' | 'after', upsert?: boolean } = {}): Promise<WithId<T> | null> {
    const res = await this.modify(filter, update, { multi: false, upsert: options.upsert === true })
    return (options.returnDocument === 'before' ? res.before[0] : res.after[0]) ?? null
  }

  /** Update the document with this `_id`; returns it as updated, or `undefined` when absent. */
  async findByIdAndUpdate (id: string, update: UpdateFilter<T>): Promise<WithId<T> | undefined> {
    if (typeof id !== 'string') throw new ValidationError('findByIdAndUpdate takes a string _id')
    return (await this.modify({ _id: id } as Filter<T>, update, { multi: false, upsert: false })).after[0] ?? undefined
  }

  // ---- deletes ------------------------------------------------------------------------------

  /** Delete the first document matching `filter`; returns it, or `null` when none matches. */
  async deleteOne (filter: Filter<T>): Promise<WithId<T> | null> {
    return (await this.remove(filter, false))[0] ?? null
  }

  /** Delete every document matching `filter`, as one block; returns them (`[]` when none). */
  async deleteMany (filter: Filter<T>): Promise<Array<WithId<T>>> {
    return await this.remove(filter, true)
  }

  /** Delete the first match; returns it, or `null`. */
  async findOneAndDelete (filter: Filter<T>): Promise<WithId<T> | null> {
    return await this.deleteOne(filter)
  }

  /** Delete the document with this `_id`; returns it, or `undefined` when absent. */
  async findByIdAndDelete (id: string): Promise<WithId<T> | undefined> {
    if (typeof id !== 'string') throw new ValidationError('findByIdAndDelete takes a string _id')
    return (await this.remove({ _id: id } as Filter<T>, false))[0] ?? undefined
  }

  // ---- live queries -------------------------------------------------------------------------

  /**
   * Watch a query. With a callback: calls it with the full, sorted result set now and again after
   * every local or remote change (or drop) that alters it — coalesced, never a half-applied
   * block — and returns a function that stops watching. Without a callback: returns a `LiveQuery`,
   * usable as an async iterator or an observable (`subscribe`), e.g. with RxJS `from()`.
   * Treat the documents it delivers as read-only: without skip or limit, a live query keeps them
   * and applies each change to them rather than reading the collection again.
   */
  observe (query: Filter<T>, callback: (docs: Array<WithId<T>>) => void, options?: LiveQueryOptions<T>): () => void
  observe (query?: Filter<T>, options?: LiveQueryOptions<T>): LiveQuery<WithId<T>>
  observe (query: Filter<T> = {}, callbackOrOptions?: ((docs: Array<WithId<T>>) => void) | LiveQueryOptions<T>, options: LiveQueryOptions<T> = {}): (() => void) | LiveQuery<WithId<T>> {
    this.host.assertOpen()
    // An invalid query throws here, not in the subscriber; one holding a regular expression before
    // the engine is loaded is checked in full by its first evaluation (see query.ts).
    if (regexEngineLoaded() || !holdsRegex(query)) compileQuery(query)
    else checkQuery(query)
    const opts = typeof callbackOrOptions === 'function' ? options : (callbackOrOptions ?? {})
    const watch = (listener: (changes: DocChange[]) => void): (() => void) => this.host.watch(this.name, listener)
    const live = new LiveQuery<WithId<T>>(
      (opts.skip ?? 0) === 0 && (opts.limit ?? 0) === 0
        ? () => this.incrementalEvaluator(query, opts)
        : () => ({ full: async () => await this.find(query, opts.projection, opts) }),
      watch,
      opts.initial as Array<WithId<T>> | undefined
    )
    if (typeof callbackOrOptions !== 'function') return live
    const sub = live.subscribe({ next: callbackOrOptions, error: (err: unknown) => { log.warn(`observe on "${this.name}" failed`, err) } })
    return () => { sub.unsubscribe() }
  }

  /**
   * A live query's evaluator without skip or limit: after one full read it keeps the matching
   * documents in memory and applies each block's changes to them, so a change costs a re-sort of
   * the result rather than a read of the collection.
   */
  private incrementalEvaluator (query: Filter<T>, opts: LiveQueryOptions<T>): Evaluator<WithId<T>> {
    let compiled: ReturnType<typeof compileQuery> | undefined
    const test = (doc: Doc): boolean => (compiled ??= compileQuery(query)).test(doc)
    const projection = opts.projection as Record<string, unknown> | undefined
    const sort = opts.sort
    let matched: Map<string, Doc> | undefined
    const every = projection === undefined && sort === undefined ? undefined : compileQuery({})
    const present = (): Array<WithId<T>> => {
      const docs = [...(matched as Map<string, Doc>).values()].sort((a, b) => a._id < b._id ? -1 : a._id > b._id ? 1 : 0)
      return (every === undefined ? docs : runCompiled(every, docs, projection, sort !== undefined ? { sort } : {})) as Array<WithId<T>>
    }
    return {
      full: async () => {
        const docs = await this.find(query, undefined) as unknown as Doc[]
        matched = new Map(docs.map(d => [d._id, d]))
        return present()
      },
      apply: changes => {
        if (matched === undefined) return undefined
        let touched = false
        for (const c of changes) {
          const had = matched.delete(c.id)
          const now = c.after !== null && test(c.after)
          if (now) matched.set(c.id, c.after as Doc)
          touched ||= had || now
        }
        return touched ? present() : null
      }
    }
  }

  // ---- indexes ------------------------------------------------------------------------------

  /**
   * Declare a secondary index over a path (or paths, for a compound index) and build it over the
   * existing documents, reporting progress; resolves with the ready index. Idempotent.
   */
  async createIndex (spec: IndexSpec, options: CreateIndexOptions = {}): Promise<IndexInfo> {
    this.host.assertOpen()
    const paths = normaliseIndexSpec(spec)
    return await this.host.storage.createIndex(this.name, paths, options.onProgress)
  }

  /** Declared indexes of this collection. */
  async listIndexes (): Promise<IndexInfo[]> {
    this.host.assertOpen()
    return await this.host.storage.listIndexes(this.name)
  }

  /** Remove an index by name (its paths joined by `+`). */
  async dropIndex (name: string): Promise<void> {
    this.host.assertOpen()
    await this.host.storage.dropIndex(this.name, name)
  }

  // ---- replication and transfer -------------------------------------------------------------

  /** The database's head hash: a CID string naming its current state (AvionDB's `getHeadHash`). */
  async getHeadHash (): Promise<string> {
    this.host.assertOpen()
    return await this.host.getHeadHash()
  }

  /** Resolves when this replica has the state named by `hash` (fetched from peers as needed). */
  async syncFromHeadHash (hash: string, options: { timeoutMs?: number } = {}): Promise<void> {
    this.host.assertOpen()
    await this.host.syncFromHeadHash(hash, options)
  }

  /** The documents matching `query` (all by default) as plain JSON values, in `_id` order. */
  async export (options: { query?: Filter<T> } = {}): Promise<Array<WithId<T>>> {
    return JSON.parse(JSON.stringify(await this.find(options.query ?? {}))) as Array<WithId<T>>
  }

  /**
   * Import documents: each is inserted, or replaces the document with its `_id`. Written in
   * blocks of 500 documents; `onProgress` is called after each. Resolves with the number imported.
   * Validates every document first: a bad one throws `ValidationError` and nothing is written.
   */
  async import (docs: Array<OptionalId<T>>, options: { onProgress?: (p: { done: number, total: number }) => void } = {}): Promise<number> {
    this.host.assertOpen()
    if (!Array.isArray(docs)) throw new ValidationError('import takes an array of documents')
    const prepared = docs.map(prepareInsert)
    for (const d of prepared) assertFits(this.schema, d, this.name)
    for (let i = 0; i < prepared.length; i += IMPORT_BATCH) {
      const batch = prepared.slice(i, i + IMPORT_BATCH)
      await this.write(async () => {
        const existing = await this.host.storage.getDocsById(this.name, batch.map(d => d._id))
        return batch.map((d, j) => replaceOp(this.name, existing[j] ?? null, d))
      })
      options.onProgress?.({ done: Math.min(prepared.length, i + IMPORT_BATCH), total: prepared.length })
    }
    return prepared.length
  }

  // ---- internals ----------------------------------------------------------------------------

  private async modify (filter: Filter<T>, update: UpdateFilter<T>, options: { multi: boolean, upsert: boolean }): Promise<{ before: Array<WithId<T>>, after: Array<WithId<T>> }> {
    this.host.assertOpen()
    await prepareRegex(filter, update)
    const before: Doc[] = []
    const after: Doc[] = []
    await this.write(async () => {
      // The targets' states are what the write merges into: the storage may keep them for it.
      const targets = (await executeQuery(this.host.storage, this.name, filter, undefined, options.multi ? {} : { limit: 1 }, { forWrite: true })).docs
      const ops: Op[] = []
      if (targets.length === 0) {
        if (!options.upsert) {
          checkUpdate(update) // a bad update is rejected even when nothing matches
          return []
        }
        const seed = prepareInsert(equalityFields(filter))
        const { after: doc } = applyUpdate(this.name, seed, update)
        assertFits(this.schema, doc, this.name)
        after.push(doc)
        return [insertOp(this.name, doc)]
      }
      applyUpdates(this.name, targets, update).forEach(({ after: doc, op }, i) => {
        assertFits(this.schema, doc, this.name)
        before.push(targets[i])
        after.push(doc)
        if (op !== undefined) ops.push(op)
      })
      // Read `forWrite`, the targets must stay unchanged until the storage's next write; with no
      // write here, the app gets copies.
      if (ops.length === 0) before.splice(0, before.length, ...before.map(d => copyJsonValue(d) as Doc))
      return ops
    })
    return { before: before as unknown as Array<WithId<T>>, after: after as unknown as Array<WithId<T>> }
  }

  private async remove (filter: Filter<T>, multi: boolean): Promise<Array<WithId<T>>> {
    this.host.assertOpen()
    let deleted: Doc[] = []
    await this.write(async () => {
      deleted = (await executeQuery(this.host.storage, this.name, filter, undefined, multi ? {} : { limit: 1 }, { forWrite: true })).docs
      return deleted.map(d => ({ op: 'del', coll: this.name, id: d._id }))
    })
    return deleted as unknown as Array<WithId<T>>
  }

  private async write (prepare: () => Promise<Op[]>, check?: BeforeCheck, options: WriteHints = {}): Promise<ChangeSet> {
    try {
      return await this.host.write(prepare, check, options)
    } catch (err) {
      if (err instanceof InvalidBlockError) throw new ValidationError(err.message.replace(/^invalid block: /, ''), { cause: err })
      throw err
    }
  }
}

/** Check an index spec and return its paths. Throws `ValidationError`. */
export function normaliseIndexSpec (spec: unknown): string[] {
  const paths = typeof spec === 'string' ? [spec] : spec
  if (!Array.isArray(paths) || paths.length === 0 || paths.length > 8 ||
    !paths.every(p => typeof p === 'string' && p.length > 0 && !p.startsWith('$') && !p.split('.').some(s => s.length === 0)) ||
    new Set(paths).size !== paths.length) {
    throw new ValidationError(`invalid index spec ${JSON.stringify(spec)}: a path like 'age' or 'address.city', or a list of up to 8 distinct paths`)
  }
  for (const p of paths) checkPath(p, 'index path')
  return paths as string[]
}

/** The `{field: value}` equalities of a filter (what an upsert seeds the new document with). */
function equalityFields (filter: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(filter)) {
    if (k.startsWith('$') || k.includes('.')) continue
    if (v instanceof RegExp) continue
    if (isPlainObject(v) && Object.keys(v).some(x => x.startsWith('$'))) {
      if ('$eq' in v) out[k] = v.$eq
      continue
    }
    out[k] = v
  }
  return out
}

