/**
 * In-memory `Storage`: for Node, tests and `storage: 'memory'`. Nothing survives the process.
 * Semantics are identical to `DexieStorage` (both pass `storageConformance`).
 */
import { type CollState, type Doc, type DocState, collectionCreated, dagUpdate, jsonEqual, snapshotDagUpdate } from '../crdt/index.js'
import { type IndexKey, type KeyRange, compareKeys, inRange, indexKeys, isMultikey } from './keys.js'
import {
  type ApplyBlockInput, type ApplyBlockResult, type DocChange, type IndexDocEntry, type IndexEntry, type IndexInfo, type IndexProgress,
  type InstallSnapshotInput, type InstallSnapshotParts, type InstallSnapshotResult, type MergeOutput, type ScanOptions, type SnapshotSource,
  type DocKey, type MergeInput, type Storage, type StoredNode, docKey, indexDiff, indexName
} from './storage.js'

interface MemoryIndex {
  info: IndexInfo
  /** sorted by (key, id) */
  entries: IndexEntry[]
  /** the build over existing documents, until it is done (what a second declaration waits for) */
  built?: Promise<IndexInfo>
}

const byId = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

function compareEntries (a: IndexEntry, b: IndexEntry): number {
  return compareKeys(a.key, b.key) || byId(a.id, b.id)
}

/** First position in `entries` whose entry is not before `probe` (binary search). */
function lowerBound (entries: IndexEntry[], probe: (e: IndexEntry) => boolean): number {
  let lo = 0
  let hi = entries.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (probe(entries[mid])) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** A `Storage` kept in plain Maps. */
export class MemoryStorage implements Storage {
  readonly kind = 'memory'
  /** blocks and chunks by CID */
  private readonly blocks = new Map<string, Uint8Array>()
  /** which stored CIDs are blocks (not chunks) */
  private readonly blockCids = new Set<string>()
  private readonly covered = new Set<string>()
  private readonly heads = new Set<string>()
  private readonly missing = new Set<string>()
  private readonly states = new Map<string, Map<string, DocState>>()
  private readonly docs = new Map<string, Map<string, Doc>>()
  private readonly colls = new Map<string, CollState>()
  private readonly indexes = new Map<string, Map<string, MemoryIndex>>()
  private readonly meta = new Map<string, unknown>()
  /** `read` calls running: writes wait until none is, so each sees one state */
  private reading = 0
  private readsDone: Promise<void> = Promise.resolve()
  private releaseReads: () => void = () => {}

  async hasBlock (cid: string): Promise<boolean> { return this.known(cid) }

  async countBlocks (): Promise<number> { return this.blockCids.size + this.covered.size }

  async getBlocks (cids: string[]): Promise<Array<Uint8Array | undefined>> {
    return cids.map(c => this.blocks.get(c))
  }

  async putNodes (nodes: StoredNode[]): Promise<void> {
    for (const n of nodes) if (!this.blocks.has(n.cid)) this.blocks.set(n.cid, n.bytes)
  }

  async getHeads (): Promise<string[]> { return [...this.heads].sort() }

  async getMissing (): Promise<string[]> { return [...this.missing].sort() }

  async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> {
    if (this.reading > 0) await this.readsEnded()
    if (this.known(input.cid)) return { applied: false, changes: [], collections: [], heads: [...this.heads].sort() }
    const { changes, collections } = this.merge(input)
    // Everything here is synchronous: the block is applied atomically.
    const dag = dagUpdate(input.cid, input.parents, c => this.known(c), this.missing.has(input.cid))
    this.blocks.set(input.cid, input.bytes)
    this.blockCids.add(input.cid)
    for (const n of input.nodes ?? []) this.blocks.set(n.cid, n.bytes)
    for (const p of dag.removeHeads) this.heads.delete(p)
    if (dag.addHead) this.heads.add(input.cid)
    this.missing.delete(input.cid)
    for (const p of dag.addMissing) this.missing.add(p)
    return { applied: true, changes, collections, heads: [...this.heads].sort() }
  }

  async installSnapshot (input: InstallSnapshotInput | InstallSnapshotParts): Promise<InstallSnapshotResult> {
    // Every part first (a rejection writes nothing), then all of them at once.
    const parts: InstallSnapshotInput[] = []
    if ('next' in input) {
      for (let part = await input.next(); part !== undefined; part = await input.next()) parts.push(part)
    } else {
      parts.push(input)
    }
    if (this.reading > 0) await this.readsEnded()
    // Synchronous from here on, as in applyBlock: the snapshot is installed atomically.
    const changes: DocChange[] = []
    const collections = new Set<string>()
    for (const part of parts) {
      const merged = this.merge(part)
      changes.push(...merged.changes)
      for (const c of merged.collections) collections.add(c)
    }
    const heads = parts.flatMap(p => p.heads)
    const dag = snapshotDagUpdate({
      heads: [...this.heads],
      snapshotHeads: heads.map(h => h.cid),
      covered: parts.flatMap(p => p.covered),
      isStored: c => this.blockCids.has(c),
      isMissing: c => this.missing.has(c)
    })
    const store = new Set(dag.store)
    for (const h of heads) {
      if (!store.has(h.cid)) continue
      this.blocks.set(h.cid, h.bytes)
      this.blockCids.add(h.cid)
    }
    for (const n of parts.flatMap(p => p.nodes ?? [])) this.blocks.set(n.cid, n.bytes)
    for (const c of dag.cover) this.covered.add(c)
    for (const c of dag.found) this.missing.delete(c)
    this.heads.clear()
    for (const h of dag.heads) this.heads.add(h)
    return { changes, collections: [...collections], heads: [...this.heads].sort() }
  }

  async readSnapshotSource (): Promise<SnapshotSource> {
    const docs: SnapshotSource['docs'] = []
    for (const coll of [...this.states.keys()].sort(byId)) {
      const states = this.states.get(coll) as Map<string, DocState>
      for (const id of [...states.keys()].sort(byId)) docs.push({ coll, id, state: states.get(id) as DocState })
    }
    return {
      heads: [...this.heads].sort(),
      missing: this.missing.size,
      docs,
      colls: [...this.colls.keys()].sort(byId).map(coll => ({ coll, state: this.colls.get(coll) as CollState })),
      blocks: [...this.blockCids, ...this.covered].sort()
    }
  }

  /** Whether a CID is a stored block or chunk, or covered. */
  private known (cid: string): boolean { return this.blocks.has(cid) || this.covered.has(cid) }

  /**
   * Run a merge over the local states of `input` and write its states, documents and index
   * entries (synchronously, once the merge returned): what applyBlock and installSnapshot share.
   */
  private merge (input: { keys: DocKey[], colls: string[], dropped: string[], merge: (i: MergeInput) => MergeOutput }): { changes: DocChange[], collections: string[] } {
    const docsIn = new Map<string, DocState | undefined>()
    for (const k of input.keys) docsIn.set(docKey(k.coll, k.id), this.states.get(k.coll)?.get(k.id))
    for (const coll of input.dropped) {
      for (const [id, state] of this.states.get(coll) ?? []) docsIn.set(docKey(coll, id), state)
    }
    const existedBefore = new Map(input.colls.map(c => [c, this.collectionExists(c)]))
    // The merge reports each document as it materialises before (as in DexieStorage).
    const before = new Map<string, Doc | null>()
    const out = input.merge({ docs: docsIn, colls: new Map(input.colls.map(c => [c, this.colls.get(c)])), before })
    const changes: DocChange[] = []
    for (const rec of out.docs) {
      mapOf(this.states, rec.coll).set(rec.id, structuredClone(rec.state))
      const coll = mapOf(this.docs, rec.coll)
      const was = before.get(docKey(rec.coll, rec.id)) ?? null
      if (jsonEqual(was, rec.doc)) continue
      if (rec.doc === null) coll.delete(rec.id)
      else coll.set(rec.id, structuredClone(rec.doc))
      for (const index of this.indexes.get(rec.coll)?.values() ?? []) {
        if (rec.doc !== null && !index.info.multikey && isMultikey(rec.doc, index.info.paths)) index.info.multikey = true
        const diff = indexDiff(index.info.paths, was, rec.doc)
        for (const key of diff.remove) removeEntry(index.entries, { key, id: rec.id })
        for (const key of diff.add) insertEntry(index.entries, { key, id: rec.id })
      }
      changes.push({ coll: rec.coll, id: rec.id, before: was, after: rec.doc })
    }
    for (const { coll, state } of out.colls) this.colls.set(coll, structuredClone(state))
    return { changes, collections: input.colls.filter(c => existedBefore.get(c) !== this.collectionExists(c)) }
  }

  async getDocs (coll: string): Promise<Doc[]> {
    const docs = this.docs.get(coll)
    if (docs === undefined) return []
    return [...docs.keys()].sort(byId).map(id => structuredClone(docs.get(id) as Doc))
  }

  async getDoc (coll: string, id: string): Promise<Doc | undefined> {
    const doc = this.docs.get(coll)?.get(id)
    return doc === undefined ? undefined : structuredClone(doc)
  }

  async getDocsById (coll: string, ids: string[]): Promise<Array<Doc | undefined>> {
    const docs = this.docs.get(coll)
    return ids.map(id => { const d = docs?.get(id); return d === undefined ? undefined : structuredClone(d) })
  }

  async countDocs (coll: string): Promise<number> { return this.docs.get(coll)?.size ?? 0 }

  async getCollections (): Promise<string[]> {
    const names = new Set([...this.colls.keys(), ...this.docs.keys()])
    return [...names].filter(c => this.collectionExists(c)).sort()
  }

  async hasCollection (coll: string): Promise<boolean> { return this.collectionExists(coll) }

  async listIndexes (coll: string): Promise<IndexInfo[]> {
    return [...(this.indexes.get(coll)?.values() ?? [])].map(i => ({ ...i.info, paths: [...i.info.paths] }))
  }

  async createIndex (coll: string, paths: string[], onProgress?: (p: IndexProgress) => void): Promise<IndexInfo> {
    const name = indexName(paths)
    const byName = mapOf(this.indexes, coll)
    const existing = byName.get(name)
    if (existing !== undefined) return existing.built !== undefined ? await existing.built : { ...existing.info, paths: [...existing.info.paths] }
    const index: MemoryIndex = { info: { name, paths: [...paths], ready: false, multikey: false }, entries: [] }
    byName.set(name, index)
    index.built = this.build(coll, index, onProgress)
    try {
      return await index.built
    } finally {
      delete index.built
    }
  }

  /** Index the documents `coll` holds now, in batches between which blocks may apply; mark the index ready. */
  private async build (coll: string, index: MemoryIndex, onProgress?: (p: IndexProgress) => void): Promise<IndexInfo> {
    const { paths } = index.info
    // Blocks applied during the build maintain the index already; the build adds what existed before.
    const ids = [...(this.docs.get(coll)?.keys() ?? [])]
    const total = ids.length
    onProgress?.({ done: 0, total })
    for (let i = 0; i < total; i += 1000) {
      if (this.reading > 0) await this.readsEnded()
      for (const id of ids.slice(i, i + 1000)) {
        const doc = this.docs.get(coll)?.get(id)
        if (doc === undefined) continue
        if (!index.info.multikey && isMultikey(doc, paths)) index.info.multikey = true
        for (const key of indexKeys(doc, paths)) insertEntry(index.entries, { key, id })
      }
      onProgress?.({ done: Math.min(total, i + 1000), total })
      await new Promise(resolve => setTimeout(resolve, 0))
    }
    index.info.ready = true
    return { ...index.info, paths: [...paths] }
  }

  async dropIndex (coll: string, name: string): Promise<void> {
    if (this.reading > 0) await this.readsEnded()
    this.indexes.get(coll)?.delete(name)
  }

  async scanIndex (coll: string, name: string, range: KeyRange, options: ScanOptions = {}): Promise<IndexEntry[]> {
    const index = this.indexes.get(coll)?.get(name)
    if (index === undefined) return []
    const entries = index.entries
    const limit = options.limit ?? Infinity
    const out: IndexEntry[] = []
    if (options.reverse !== true) {
      let i = options.after !== undefined
        ? lowerBound(entries, e => compareEntries(e, options.after as IndexEntry) <= 0)
        : lowerBound(entries, e => compareKeys(e.key, range.lower) < 0)
      for (; i < entries.length && out.length < limit; i++) {
        const e = entries[i]
        if (!inRange(e.key, range)) {
          if (compareKeys(e.key, range.upper) > 0) break
          continue
        }
        out.push({ key: e.key, id: e.id })
      }
    } else {
      let i = options.after !== undefined
        ? lowerBound(entries, e => compareEntries(e, options.after as IndexEntry) < 0) - 1
        : lowerBound(entries, e => compareKeys(e.key, range.upper) <= 0) - 1
      for (; i >= 0 && out.length < limit; i--) {
        const e = entries[i]
        if (!inRange(e.key, range)) {
          if (compareKeys(e.key, range.lower) < 0) break
          continue
        }
        out.push({ key: e.key, id: e.id })
      }
    }
    return out
  }

  async scanIndexDocs (coll: string, name: string, range: KeyRange, options: ScanOptions = {}): Promise<IndexDocEntry[]> {
    const docs = this.docs.get(coll)
    return (await this.scanIndex(coll, name, range, options)).map(e => ({ ...e, doc: structuredClone(docs?.get(e.id) as Doc) }))
  }

  async read<T> (fn: () => Promise<T>): Promise<T> {
    if (this.reading++ === 0) this.readsDone = new Promise(resolve => { this.releaseReads = resolve })
    try {
      return await fn()
    } finally {
      if (--this.reading === 0) this.releaseReads()
    }
  }

  /**
   * Resolves once no `read` runs, so a write never lands in the middle of one. Writes call it
   * only while a read runs: otherwise they stay synchronous from their call to their last change.
   */
  private async readsEnded (): Promise<void> {
    while (this.reading > 0) await this.readsDone
  }

  async getMeta<T> (key: string): Promise<T | undefined> {
    return this.meta.has(key) ? structuredClone(this.meta.get(key)) as T : undefined
  }

  async setMeta (key: string, value: unknown): Promise<void> { this.meta.set(key, structuredClone(value)) }

  async close (): Promise<void> {}

  private collectionExists (coll: string): boolean {
    return collectionCreated(this.colls.get(coll)) || (this.docs.get(coll)?.size ?? 0) > 0
  }
}

function mapOf<V> (outer: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let inner = outer.get(key)
  if (inner === undefined) outer.set(key, inner = new Map<string, V>())
  return inner
}

function insertEntry (entries: IndexEntry[], entry: IndexEntry): void {
  const at = lowerBound(entries, e => compareEntries(e, entry) < 0)
  if (at < entries.length && compareEntries(entries[at], entry) === 0) return
  entries.splice(at, 0, entry)
}

function removeEntry (entries: IndexEntry[], entry: { key: IndexKey, id: string }): void {
  const at = lowerBound(entries, e => compareEntries(e, entry) < 0)
  if (at < entries.length && compareEntries(entries[at], entry) === 0) entries.splice(at, 1)
}
