/**
 * In-memory `Storage`: for Node, tests and `storage: 'memory'`. Nothing survives the process.
 * Semantics are identical to `DexieStorage` (both pass test/store-conformance.ts).
 */
import { type Doc } from '../crdt/index.js'
import {
  type ApplyBlockInput, type ApplyBlockResult, type DocRecord, type Storage, type StorageProvider,
  dagUpdate, diffRecords
} from './storage.js'

/** A `Storage` kept in plain Maps. */
export class MemoryStorage implements Storage {
  readonly kind = 'memory'
  private readonly blocks = new Map<string, Uint8Array>()
  private readonly heads = new Set<string>()
  private readonly missing = new Set<string>()
  private readonly docs = new Map<string, Map<string, DocRecord>>()
  private readonly meta = new Map<string, unknown>()

  async hasBlock (cid: string): Promise<boolean> { return this.blocks.has(cid) }

  async getBlocks (cids: string[]): Promise<Array<Uint8Array | undefined>> {
    return cids.map(c => this.blocks.get(c))
  }

  async getHeads (): Promise<string[]> { return [...this.heads].sort() }

  async getMissing (): Promise<string[]> { return [...this.missing].sort() }

  async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> {
    if (this.blocks.has(input.cid)) return { applied: false, changes: [] }
    const before = input.keys.map(k => this.docs.get(k.coll)?.get(k.id))
    const after = input.merge(before.map(r => r?.state))
    // Everything below is synchronous: the block is applied atomically.
    const dag = dagUpdate(input.cid, input.parents, c => this.blocks.has(c), this.missing.has(input.cid))
    for (const rec of after) {
      let coll = this.docs.get(rec.coll)
      if (coll === undefined) this.docs.set(rec.coll, coll = new Map())
      coll.set(rec.id, structuredClone(rec))
    }
    this.blocks.set(input.cid, input.bytes)
    for (const p of dag.removeHeads) this.heads.delete(p)
    if (dag.addHead) this.heads.add(input.cid)
    this.missing.delete(input.cid)
    for (const p of dag.addMissing) this.missing.add(p)
    return { applied: true, changes: diffRecords(before, after) }
  }

  async getDocs (coll: string): Promise<Doc[]> {
    const records = [...(this.docs.get(coll)?.values() ?? [])]
    return records.filter(r => r.doc !== null).sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0).map(r => structuredClone(r.doc as Doc))
  }

  async getDoc (coll: string, id: string): Promise<Doc | undefined> {
    const doc = this.docs.get(coll)?.get(id)?.doc
    return doc == null ? undefined : structuredClone(doc)
  }

  async getCollections (): Promise<string[]> { return [...this.docs.keys()].sort() }

  async getMeta<T> (key: string): Promise<T | undefined> {
    return this.meta.has(key) ? structuredClone(this.meta.get(key)) as T : undefined
  }

  async setMeta (key: string, value: unknown): Promise<void> { this.meta.set(key, structuredClone(value)) }

  async close (): Promise<void> {}
}

/**
 * Memory storages, one per database id, kept for the life of the provider so that closing and
 * reopening a database within one process finds its data again.
 */
export class MemoryStorageProvider implements StorageProvider {
  readonly kind = 'memory'
  private readonly storages = new Map<string, MemoryStorage>()
  private readonly names = new Map<string, string>()

  async open (dbId: string): Promise<MemoryStorage> {
    let s = this.storages.get(dbId)
    if (s === undefined) this.storages.set(dbId, s = new MemoryStorage())
    return s
  }

  async lookupName (name: string): Promise<string | undefined> { return this.names.get(name) }

  async registerName (name: string, address: string): Promise<void> { this.names.set(name, address) }

  async listNames (): Promise<Array<{ name: string, address: string }>> {
    return [...this.names].map(([name, address]) => ({ name, address })).sort((a, b) => a.name < b.name ? -1 : 1)
  }
}
