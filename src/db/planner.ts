/**
 * The query planner over our secondary indexes. A query is answered from an index when a ready
 * index's leading paths carry equality (`v`, `$eq`, `$in`) and optionally one range (`$gt $gte
 * $lt $lte`, numbers or strings) predicates at the top level of the query (or of a top-level
 * `$and`), or when the sort is on an index's first path. The index scan gives the candidate
 * documents (`Storage.scanIndexDocs`: entries and documents in one request); only those documents
 * are read, and the full query is always applied to them again with mingo, so a
 * plan can only change speed, never results. Everything else scans the collection.
 *
 * Results are exactly those of mingo over all documents in `_id` order: candidates are put in
 * `_id` order before mingo sorts them (mingo's sort is stable), so ties break the same way.
 */
import { type Query } from 'mingo/query'
import { ValidationError } from '../errors.js'
import { type Doc, type JsonValue, isPlainObject } from '../crdt/index.js'
import {
  type IndexEntry, type IndexInfo, type IndexKey, type KeyPart, type KeyRange, type ReadOptions, type Storage,
  RANK, compareKeys, encodeValue, keyPartsAt, valuesAt
} from '../store/index.js'
import { checkPath, checkProjection, checkQuery, mingoQuery, prepareRegex } from './query.js'

/** Options of a find: sort, skip, limit (as MongoDB's). */
export interface QueryOptions {
  sort?: Record<string, 1 | -1>
  skip?: number
  limit?: number
}

/** How a query was (or would be) answered. */
export interface Explain {
  /** `'index'`: from index entries; `'scan'`: every document of the collection was read */
  strategy: 'index' | 'scan'
  /** the index used, when `strategy` is `'index'` */
  index?: string
  /** whether the sort was answered by walking the index in order (stopping early with a limit) */
  sortedByIndex: boolean
  /** index entries read */
  entriesRead: number
  /** documents read from storage */
  docsRead: number
  /** documents returned */
  returned: number
}

/** One part of the plan: what to look up in the index. */
interface IndexPlan {
  index: IndexInfo
  ranges: KeyRange[]
  /** walk in sort order and stop early (sort on the index's first path, no other ordering needs) */
  sorted?: { path: string, reverse: boolean }
  score: number
}

type Range = { lower: KeyPart, lowerOpen: boolean, upper: KeyPart, upperOpen: boolean, rank: number, hasLower: boolean, hasUpper: boolean }
type Predicate = { eq: KeyPart[] } | Range

/** The indexable predicates of a query, by path. */
function predicates (query: Record<string, unknown>): Map<string, Predicate> {
  const out = new Map<string, Predicate>()
  const conjuncts: Array<Record<string, unknown>> = [query]
  if (Array.isArray(query.$and)) for (const c of query.$and) if (isPlainObject(c)) conjuncts.push(c)
  for (const c of conjuncts) {
    for (const [path, cond] of Object.entries(c)) {
      if (path.startsWith('$') || path.split('.').some(p => /^\d+$/.test(p))) continue
      const p = predicateOf(cond)
      if (p !== undefined && !out.has(path)) out.set(path, p)
    }
  }
  return out
}

function isScalar (v: unknown): v is null | boolean | number | string {
  return v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string'
}

function predicateOf (cond: unknown): Predicate | undefined {
  if (isScalar(cond)) return { eq: [encodeValue(cond)] }
  if (!isPlainObject(cond)) return undefined
  const ops = Object.keys(cond)
  if (ops.length === 0 || !ops.every(o => o.startsWith('$'))) return undefined
  if ('$eq' in cond && isScalar(cond.$eq)) return { eq: [encodeValue(cond.$eq)] }
  if (Array.isArray(cond.$in) && cond.$in.length > 0 && cond.$in.length <= 100 && cond.$in.every(isScalar)) {
    return { eq: cond.$in.map(v => encodeValue(v as JsonValue)) }
  }
  // A range applies to one type: MongoDB's comparison operators bracket by type.
  let type: 'number' | 'string' | undefined
  const bound = (v: unknown): KeyPart | undefined => {
    if (typeof v !== 'number' && typeof v !== 'string') return undefined
    if (type !== undefined && typeof v !== type) return undefined
    type = typeof v as 'number' | 'string'
    return encodeValue(v)
  }
  let lower: KeyPart | undefined
  let upper: KeyPart | undefined
  let lowerOpen = false
  let upperOpen = false
  for (const [op, v] of Object.entries(cond)) {
    if (op === '$gt' || op === '$gte') {
      const b = bound(v)
      if (b === undefined) return undefined
      lower = b
      lowerOpen = op === '$gt'
    } else if (op === '$lt' || op === '$lte') {
      const b = bound(v)
      if (b === undefined) return undefined
      upper = b
      upperOpen = op === '$lt'
    }
  }
  if (type === undefined) return undefined
  const rank = type === 'number' ? RANK.number : RANK.string
  // Missing bounds close the range at the edges of the type: [rank] sorts below [rank, v], [rank + 1] above.
  return {
    lower: lower ?? [rank],
    lowerOpen: lower !== undefined && lowerOpen,
    upper: upper ?? [rank + 1],
    upperOpen: upper === undefined ? true : upperOpen,
    rank,
    hasLower: lower !== undefined,
    hasUpper: upper !== undefined
  }
}

/** On a multikey index the bounds of a range cannot be intersected: keep the lower one only. */
function singleBound (r: Range): Range {
  if (!r.hasLower || !r.hasUpper) return r
  return { ...r, upper: [r.rank + 1], upperOpen: true, hasUpper: false }
}

const MAX_PART: KeyPart = [RANK.max]

/** Key ranges for equality on `prefixes` (one list of parts per path) and an optional range after them. */
function rangesFor (prefixes: KeyPart[][], range: Predicate | undefined, morePathsAfter: boolean): KeyRange[] {
  let combos: IndexKey[] = [[]]
  for (const parts of prefixes) {
    const next: IndexKey[] = []
    for (const c of combos) for (const p of parts) next.push([...c, p])
    combos = next
    if (combos.length > 256) return []
  }
  return combos.map(prefix => {
    if (range === undefined || 'eq' in range) return { lower: prefix, upper: [...prefix, MAX_PART] }
    const lower = [...prefix, range.lower]
    const upper = [...prefix, range.upper]
    // With paths after the ranged one, keys extend past the bound part: widen the bounds to match.
    if (morePathsAfter && range.lowerOpen) lower.push(MAX_PART)
    if (morePathsAfter && !range.upperOpen) upper.push(MAX_PART)
    return { lower, upper, lowerOpen: range.lowerOpen, upperOpen: range.upperOpen }
  })
}

/** Choose the best ready index for a query and sort, or `undefined` to scan. */
export function choosePlan (query: Record<string, unknown>, options: QueryOptions, indexes: IndexInfo[]): IndexPlan | undefined {
  const preds = predicates(query)
  const sortKeys = Object.keys(options.sort ?? {})
  let best: IndexPlan | undefined
  for (const index of indexes) {
    if (!index.ready) continue
    const prefixes: KeyPart[][] = []
    let range: Predicate | undefined
    let score = 0
    for (const path of index.paths) {
      const p = preds.get(path)
      if (p === undefined) break
      if ('eq' in p) {
        prefixes.push(p.eq)
        score += 2
      } else {
        range = index.multikey ? singleBound(p) : p
        score += 1
        break
      }
    }
    const first = index.paths[0]
    const sortable = sortKeys.length === 1 && sortKeys[0] === first && prefixes.length === 0
    if (score === 0 && !sortable) continue
    const usedPaths = prefixes.length + (range !== undefined ? 1 : 0)
    const ranges = score === 0
      ? [{ lower: [], upper: [MAX_PART] }]
      : rangesFor(prefixes, range, usedPaths < index.paths.length)
    if (ranges.length === 0) continue
    const plan: IndexPlan = { index, ranges, score: score + (sortable ? 0.5 : 0) }
    const reverse = options.sort?.[first] === -1
    // A walk in sort order finds each document at its sort key (its smallest value at the path),
    // except ascending on a multikey index over a range that does not start at the index's
    // beginning: `{a: {$gte: 2}}` finds `{a: [9, 0]}` at 9, though it sorts first (at 0).
    if (sortable && ranges.length === 1 && !(index.multikey && !reverse && score > 0)) plan.sorted = { path: first, reverse }
    if (best === undefined || plan.score > best.score) best = plan
  }
  return best
}

/**
 * Compile a query once with mingo (a `Query`: `test(doc)` for one document, `find(docs)` for a
 * cursor), after `checkQuery` (no operator that runs code, no odd key, regular expressions that
 * run in linear time: see query.ts). Throws `ValidationError` for an invalid query (unknown or
 * refused operators, a bad path, a bad or backtracking-only regex…). A find
 * compiles its query once: each mingo `Query` copies mingo's whole operator table (its context),
 * and `mingo.find` wraps its options twice, copying it twice more — about 1 ms of a 6 ms indexed
 * find when a query was compiled for checking, filtering and sorting separately.
 */
export function compileQuery (query: unknown): Query {
  if (!isPlainObject(query)) throw new ValidationError('a query must be a plain object')
  checkQuery(query)
  try {
    return mingoQuery(query)
  } catch (err) {
    throw new ValidationError(`invalid query: ${(err as Error).message}`, { cause: err })
  }
}

/** Run a compiled query over `docs` (already in `_id` order): filter, project, sort, skip, limit. Throws `ValidationError` for an invalid projection or sort. */
export function runCompiled (compiled: Query, docs: Doc[], projection: Record<string, unknown> | undefined, options: QueryOptions): Doc[] {
  checkProjection(projection)
  try {
    let cursor = compiled.find(docs, projection)
    if (options.sort !== undefined) cursor = cursor.sort(options.sort)
    if (options.skip !== undefined) cursor = cursor.skip(options.skip)
    if (options.limit !== undefined && options.limit > 0) cursor = cursor.limit(options.limit) // 0: no limit, as in MongoDB
    return cursor.all() as Doc[]
  } catch (err) {
    throw new ValidationError(`invalid query: ${(err as Error).message}`, { cause: err })
  }
}

const byId = (a: Doc, b: Doc): number => a._id < b._id ? -1 : a._id > b._id ? 1 : 0

/**
 * Answer a query over collection `coll`: from the best index, or by a scan. Returns the documents
 * and how they were found. `read`: passed to `Storage.read` (`forWrite` when the documents are
 * the targets of a write about to be made, which then must not modify them).
 */
export async function executeQuery (
  storage: Storage, coll: string, query: Record<string, unknown>, projection: Record<string, unknown> | undefined,
  options: QueryOptions, read: ReadOptions = {}
): Promise<{ docs: Doc[], explain: Explain }> {
  await prepareRegex(query)
  const compiled = compileQuery(query)
  checkOptions(options)
  return await storage.read(async () => await runPlan(storage, coll, query, compiled, projection, options), read)
}

/** The index list each storage last gave for each collection (a guess: `runPlan` checks it). */
const lastIndexes = new WeakMap<Storage, Map<string, IndexInfo[]>>()

/**
 * Note the index list of `coll` just read from `storage` elsewhere (opening the collection reads
 * it), so the first query plans from it and waits for one IndexedDB request, not two in a row.
 */
export function noteIndexes (storage: Storage, coll: string, indexes: IndexInfo[]): void {
  let known = lastIndexes.get(storage)
  if (known === undefined) lastIndexes.set(storage, known = new Map<string, IndexInfo[]>())
  known.set(coll, indexes)
}

/**
 * Inside a read transaction: plan and run the query. The index list is read in the same round trip
 * as the query itself: the plan is made from the list read last time, and made again (and run
 * again) only if the list read now differs — an index created, dropped, finished or turned
 * multikey meanwhile, here or in another tab. An indexed query thus waits for one IndexedDB
 * request instead of two in a row.
 */
async function runPlan (
  storage: Storage, coll: string, query: Record<string, unknown>, compiled: Query, projection: Record<string, unknown> | undefined,
  options: QueryOptions
): Promise<{ docs: Doc[], explain: Explain }> {
  const guess = lastIndexes.get(storage)?.get(coll)
  const guessed = guess !== undefined ? choosePlan(query, options, guess) : undefined
  const listing = storage.listIndexes(coll)
  // Only an index plan is run on a guess: a full scan that an index might spare is not.
  if (guess !== undefined && guessed !== undefined) {
    const [indexes, result] = await Promise.all([listing, runChosenPlan(storage, coll, compiled, projection, options, guessed)])
    if (sameIndexes(indexes, guess)) return result
    noteIndexes(storage, coll, indexes)
    return await runChosenPlan(storage, coll, compiled, projection, options, choosePlan(query, options, indexes))
  }
  const indexes = await listing
  noteIndexes(storage, coll, indexes)
  return await runChosenPlan(storage, coll, compiled, projection, options, choosePlan(query, options, indexes))
}

function sameIndexes (a: IndexInfo[], b: IndexInfo[]): boolean {
  return a.length === b.length && a.every((x, i) => {
    const y = b[i]
    return x.name === y.name && x.ready === y.ready && x.multikey === y.multikey && x.paths.join('\u0000') === y.paths.join('\u0000')
  })
}

async function runChosenPlan (
  storage: Storage, coll: string, compiled: Query, projection: Record<string, unknown> | undefined,
  options: QueryOptions, plan: IndexPlan | undefined
): Promise<{ docs: Doc[], explain: Explain }> {
  if (plan === undefined) {
    const all = await storage.getDocs(coll)
    const docs = runCompiled(compiled, all, projection, options)
    return { docs, explain: { strategy: 'scan', sortedByIndex: false, entriesRead: 0, docsRead: all.length, returned: docs.length } }
  }
  // limit 0 means no limit, as in MongoDB
  const need = options.limit !== undefined && options.limit > 0 ? (options.skip ?? 0) + options.limit : Infinity
  const candidates = new Map<string, Doc>()
  let entriesRead = 0
  let docsRead = 0
  if (plan.sorted !== undefined && need !== Infinity) {
    // Walk the index in sort order; stop once `need` matching documents sort strictly before the
    // current key: any document not seen yet sorts at or after it. (A document's sort key is its
    // minimum value at the path, as mingo sorts arrays, whichever the direction.)
    const { path, reverse } = plan.sorted
    const range = plan.ranges[0]
    const seen = new Set<string>()
    const sortKeys = new Map<string, KeyPart>()
    let after: IndexEntry | undefined
    const matches = (doc: Doc): boolean => compiled.test(doc)
    // The first batch is what is needed when every entry matches; later ones double (up to 1000).
    let batch = Math.min(Math.max(need + 2, 16), 1000)
    for (;;) {
      const entries = await storage.scanIndexDocs(coll, plan.index.name, range, { reverse, limit: batch, ...(after !== undefined ? { after } : {}) })
      entriesRead += entries.length
      if (entries.length === 0) break
      const last = entries[entries.length - 1] as IndexEntry
      after = { key: last.key, id: last.id }
      for (const { id, doc } of entries) {
        if (seen.has(id)) continue
        seen.add(id)
        docsRead++
        if (!matches(doc)) continue
        candidates.set(doc._id, doc)
        sortKeys.set(doc._id, minPart(doc, path))
      }
      if (entries.length < batch) break
      batch = Math.min(batch * 2, 1000)
      // Objects, and arrays held as values, are keyed by their JSON text, which does not order them
      // as mingo does ('{"v":10}' before '{"v":9}'): never stop among them. Between ranks, and
      // within the others, the index orders keys as mingo does.
      if (!orderedAsMingo(after.key[0])) continue
      // Ascending on a single-path, single-valued index, the first `need` matches in index order are
      // the answer: each document appears once, at its sort key, and ties come in `_id` order, as
      // mingo breaks them (on a compound index, ties are ordered by the next path instead) — unless
      // the ties at the last key taken hold distinct values (`null` and `[null]`, `5` and `[5]`):
      // mingo orders those by value, each value's group at its first `_id`, so the walk goes on.
      if (!reverse && !plan.index.multikey && plan.index.paths.length === 1 && candidates.size >= need && oneValueAtLastKey(candidates, sortKeys, path, need)) break
      if (!reverse && !plan.index.multikey && plan.index.paths.length === 1 && candidates.size < need) continue
      const current = after.key[0]
      let ahead = 0
      for (const k of sortKeys.values()) {
        const c = compareKeys(k, current)
        if (reverse ? c > 0 : c < 0) ahead++
      }
      if (ahead >= need) break
    }
  } else {
    for (const range of plan.ranges) {
      const entries = await storage.scanIndexDocs(coll, plan.index.name, range)
      entriesRead += entries.length
      for (const e of entries) candidates.set(e.id, e.doc)
    }
    docsRead += candidates.size
  }
  const docs = runCompiled(compiled, [...candidates.values()].sort(byId), projection, options)
  return {
    docs,
    explain: { strategy: 'index', index: plan.index.name, sortedByIndex: plan.sorted !== undefined && need !== Infinity, entriesRead, docsRead, returned: docs.length }
  }
}

/** Whether index order among keys of `part`'s rank is mingo's order: not for objects and arrays held as values (keyed by JSON text). */
function orderedAsMingo (part: KeyPart): boolean {
  return part[0] !== RANK.object && part[0] !== RANK.array
}

/**
 * Whether the first `need` candidates (in index order, as `candidates` was filled) that share the
 * key of the `need`-th hold one value at `path`: then they are the first of that key in mingo's
 * order too, which groups equal-sorting documents by their value.
 */
function oneValueAtLastKey (candidates: Map<string, Doc>, sortKeys: Map<string, KeyPart>, path: string, need: number): boolean {
  const first = [...candidates.values()].slice(0, need)
  const lastKey = sortKeys.get(first[need - 1]._id) as KeyPart
  const values = new Set(first.filter(d => compareKeys(sortKeys.get(d._id), lastKey) === 0).map(d => JSON.stringify(valuesAt(d, path))))
  return values.size === 1
}

function minPart (doc: Doc, path: string): KeyPart {
  const parts = keyPartsAt(doc, path)
  return parts.reduce((m, p) => compareKeys(p, m) < 0 ? p : m, parts[0])
}

function checkOptions (options: QueryOptions): void {
  if (!isPlainObject(options)) throw new ValidationError('find options must be an object {sort, skip, limit}')
  const { sort, skip, limit } = options as QueryOptions
  if (sort !== undefined && (!isPlainObject(sort) || !Object.values(sort).every(v => v === 1 || v === -1))) {
    throw new ValidationError('sort must map fields to 1 (ascending) or -1 (descending)')
  }
  for (const path of Object.keys(sort ?? {})) checkPath(path, 'sort')
  if (skip !== undefined && (!Number.isInteger(skip) || skip < 0)) throw new ValidationError('skip must be a non-negative integer')
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) throw new ValidationError('limit must be a non-negative integer')
}
