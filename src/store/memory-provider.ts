/**
 * The provider of in-memory storages (`storage: 'memory'`). `MemoryStorage` itself (memory.ts) is
 * loaded on the first open, so an app that keeps its data in IndexedDB does not load it.
 */
import { type MemoryStorage } from './memory.js'
import { type StorageProvider } from './storage.js'

/**
 * Memory storages, one per database id, kept for the life of the provider so that closing and
 * reopening a database within one process finds its data again.
 */
export class MemoryStorageProvider implements StorageProvider {
  readonly kind = 'memory'
  private readonly storages = new Map<string, MemoryStorage>()
  private readonly names = new Map<string, string>()
  private readonly secrets = new Map<string, Uint8Array>()

  async open (dbId: string): Promise<MemoryStorage> {
    const { MemoryStorage } = await import('./memory.js')
    let s = this.storages.get(dbId)
    if (s === undefined) this.storages.set(dbId, s = new MemoryStorage())
    return s
  }

  async destroy (dbId: string): Promise<void> { this.storages.delete(dbId) }

  async lookupName (name: string): Promise<string | undefined> { return this.names.get(name) }

  async registerName (name: string, address: string): Promise<void> { this.names.set(name, address) }

  async unregisterName (name: string): Promise<void> { this.names.delete(name) }

  async listNames (): Promise<Array<{ name: string, address: string }>> {
    return [...this.names].map(([name, address]) => ({ name, address })).sort((a, b) => a.name < b.name ? -1 : 1)
  }

  async loadSecret (name: string): Promise<Uint8Array | undefined> { return this.secrets.get(name) }

  async saveSecret (name: string, bytes: Uint8Array): Promise<void> { this.secrets.set(name, Uint8Array.from(bytes)) }
}
