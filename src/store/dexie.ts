/**
 * IndexedDB `Storage` through Dexie. One IndexedDB database per KiteDB database
 * (`kitedb/<manifest-cid>`), plus one registry database (`kitedb`) mapping local names to
 * addresses. Each applied block is one read-write transaction over blocks, heads, missing and
 * docs, so a reload at any moment leaves all of a block or none of it.
 */
import { Dexie, type Table } from 'dexie'
import { type Doc } from '../crdt/index.js'
import {
  type ApplyBlockInput, type ApplyBlockResult, type DocRecord, type Storage, type StorageProvider,
  dagUpdate, diffRecords
} from './storage.js'

interface BlockRow { cid: string, bytes: Uint8Array }
interface CidRow { cid: string }
interface MetaRow { key: string, value: unknown }
interface NameRow { name: string, address: string }

/** Options shared by Dexie storages: which IndexedDB implementation to use (browser default). */
export interface DexieOptions {
  /** an `IDBFactory`, e.g. from fake-indexeddb in Node; defaults to the global `indexedDB` */
  indexedDB?: IDBFactory
  /** the matching `IDBKeyRange` constructor */
  IDBKeyRange?: typeof IDBKeyRange
}

class ReplicaDb extends Dexie {
  blocks!: Table<BlockRow, string>
  heads!: Table<CidRow, string>
  missing!: Table<CidRow, string>
  docs!: Table<DocRecord, [string, string]>
  meta!: Table<MetaRow, string>

  constructor (name: string, options: DexieOptions) {
    super(name, options)
    this.version(1).stores({
      blocks: 'cid',
      heads: 'cid',
      missing: 'cid',
      docs: '[coll+id], coll',
      meta: 'key'
    })
  }
}

/** A `Storage` in one IndexedDB database. */
export class DexieStorage implements Storage {
  readonly kind = 'indexeddb'
  private readonly db: ReplicaDb

  /** @param name IndexedDB database name */
  constructor (name: string, options: DexieOptions = {}) {
    this.db = new ReplicaDb(name, options)
  }

  async hasBlock (cid: string): Promise<boolean> {
    return (await this.db.blocks.where('cid').equals(cid).count()) > 0
  }

  async getBlocks (cids: string[]): Promise<Array<Uint8Array | undefined>> {
    const rows = await this.db.blocks.bulkGet(cids)
    return rows.map(r => r?.bytes)
  }

  async getHeads (): Promise<string[]> { return (await this.db.heads.toCollection().primaryKeys()).sort() }

  async getMissing (): Promise<string[]> { return (await this.db.missing.toCollection().primaryKeys()).sort() }

  async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> {
    const { db } = this
    return await db.transaction('rw', [db.blocks, db.heads, db.missing, db.docs], async () => {
      if ((await db.blocks.where('cid').equals(input.cid).count()) > 0) return { applied: false, changes: [] }
      const [before, wasMissing, storedParents] = await Promise.all([
        db.docs.bulkGet(input.keys.map(k => [k.coll, k.id] as [string, string])),
        db.missing.get(input.cid),
        input.parents.length > 0 ? db.blocks.where('cid').anyOf(input.parents).primaryKeys() : Promise.resolve([] as string[])
      ])
      const after = input.merge(before.map(r => r?.state))
      const stored = new Set(storedParents)
      const dag = dagUpdate(input.cid, input.parents, c => stored.has(c), wasMissing !== undefined)
      await Promise.all([
        db.docs.bulkPut(after),
        db.blocks.add({ cid: input.cid, bytes: input.bytes }),
        db.heads.bulkDelete(dag.removeHeads),
        dag.addHead ? db.heads.put({ cid: input.cid }) : undefined,
        db.missing.delete(input.cid),
        dag.addMissing.length > 0 ? db.missing.bulkPut(dag.addMissing.map(cid => ({ cid }))) : undefined
      ])
      return { applied: true, changes: diffRecords(before, after) }
    })
  }

  async getDocs (coll: string): Promise<Doc[]> {
    const rows = await this.db.docs.where('[coll+id]').between([coll, Dexie.minKey], [coll, Dexie.maxKey]).toArray()
    const out: Doc[] = []
    for (const r of rows) if (r.doc !== null) out.push(r.doc)
    return out
  }

  async getDoc (coll: string, id: string): Promise<Doc | undefined> {
    return (await this.db.docs.get([coll, id]))?.doc ?? undefined
  }

  async getCollections (): Promise<string[]> {
    return (await this.db.docs.orderBy('coll').uniqueKeys()) as string[]
  }

  async getMeta<T> (key: string): Promise<T | undefined> {
    return (await this.db.meta.get(key))?.value as T | undefined
  }

  async setMeta (key: string, value: unknown): Promise<void> { await this.db.meta.put({ key, value }) }

  async close (): Promise<void> { this.db.close() }
}

class RegistryDb extends Dexie {
  names!: Table<NameRow, string>
  constructor (options: DexieOptions) {
    super('kitedb', options)
    this.version(1).stores({ names: 'name, address' })
  }
}

/** Opens `DexieStorage`s and keeps the name → address registry in IndexedDB. */
export class DexieStorageProvider implements StorageProvider {
  readonly kind = 'indexeddb'
  private readonly options: DexieOptions
  private registry?: RegistryDb

  constructor (options: DexieOptions = {}) {
    this.options = options
  }

  async open (dbId: string): Promise<DexieStorage> {
    return new DexieStorage(`kitedb/${dbId}`, this.options)
  }

  private get names (): Table<NameRow, string> {
    this.registry ??= new RegistryDb(this.options)
    return this.registry.names
  }

  async lookupName (name: string): Promise<string | undefined> { return (await this.names.get(name))?.address }

  async registerName (name: string, address: string): Promise<void> { await this.names.put({ name, address }) }

  async listNames (): Promise<Array<{ name: string, address: string }>> {
    return (await this.names.orderBy('name').toArray()).map(({ name, address }) => ({ name, address }))
  }
}
