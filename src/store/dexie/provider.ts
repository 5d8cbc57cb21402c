/**
 * Opens `DexieStorage`s, one IndexedDB database per KiteDB database (`kitedb/<manifest-cid>`), and
 * keeps the registry of local names and device-wide secrets in one more (`kitedb`).
 */
import { Dexie, type Table } from 'dexie'
import { type StorageProvider } from '../storage.js'
import { type DexieOptions, type NameRow, RegistryDb, type SecretRow } from './schema.js'
import { DexieStorage } from './storage.js'

/** Opens `DexieStorage`s and keeps the name → address registry in IndexedDB. */
export class DexieStorageProvider implements StorageProvider {
  readonly kind = 'indexeddb'
  /** `'indexeddb'` with the page's own IndexedDB (shared by its tabs); with an explicit `indexedDB`, `options.channel` */
  readonly channel?: string
  private readonly options: DexieOptions
  private registry?: RegistryDb

  constructor (options: DexieOptions & { channel?: string } = {}) {
    const { channel, ...rest } = options
    this.options = rest
    const shared = channel ?? (options.indexedDB === undefined ? 'indexeddb' : undefined)
    if (shared !== undefined) this.channel = shared
  }

  async open (dbId: string): Promise<DexieStorage> {
    return new DexieStorage(`kitedb/${dbId}`, this.options)
  }

  async destroy (dbId: string): Promise<void> {
    await new Dexie(`kitedb/${dbId}`, this.options).delete()
  }

  private get names (): Table<NameRow, string> {
    this.registry ??= new RegistryDb(this.options)
    return this.registry.names
  }

  private get secrets (): Table<SecretRow, string> {
    this.registry ??= new RegistryDb(this.options)
    return this.registry.secrets
  }

  async loadSecret (name: string): Promise<Uint8Array | undefined> { return (await this.secrets.get(name))?.bytes }

  async saveSecret (name: string, bytes: Uint8Array): Promise<void> { await this.secrets.put({ name, bytes }) }

  async lookupName (name: string): Promise<string | undefined> { return (await this.names.get(name))?.address }

  async registerName (name: string, address: string): Promise<void> { await this.names.put({ name, address }) }

  async unregisterName (name: string): Promise<void> { await this.names.delete(name) }

  async listNames (): Promise<Array<{ name: string, address: string }>> {
    return (await this.names.orderBy('name').toArray()).map(({ name, address }) => ({ name, address }))
  }
}
