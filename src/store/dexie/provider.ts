/**
 * Opens `DexieStorage`s, one IndexedDB database per KiteDB database (`kitedb/<manifest-cid>`), and
 * keeps the registry of local names and device-wide secrets in one more (`kitedb`). A copy of
 * each name's address is kept as a hint in a synchronous store (the page's `localStorage`), so a
 * reopen by name opens both IndexedDB databases at once (docs/design.md, "Storage").
 */
import { Dexie, type Table } from 'dexie'
import { type StorageProvider } from '../storage.js'
import { type DexieOptions, type NameRow, RegistryDb, type SecretRow } from './schema.js'
import { DexieStorage } from './storage.js'

/** A synchronous key → text store for name hints (`localStorage` fits). */
export type NameHints = Pick<globalThis.Storage, 'getItem' | 'setItem' | 'removeItem'>

/** Prefix of the hint keys: `kitedb:name:<name>` → address. */
const HINT_PREFIX = 'kitedb:name:'
/** Key of the registry's generation token in the hints store (see `registryGeneration`). */
const GENERATION_KEY = 'kitedb:registry'

/** A fresh generation token: random, so two tabs moving it at once never write the same one. */
function newGeneration (): string {
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(12)), b => b.toString(16).padStart(2, '0')).join('')
}

/** The page's `localStorage`, where there is one and it may be used. */
function pageLocalStorage (): NameHints | undefined {
  try {
    const ls = (globalThis as { localStorage?: NameHints }).localStorage
    return ls ?? undefined
  } catch { return undefined } // a sandboxed frame throws on access
}

/** Opens `DexieStorage`s and keeps the name → address registry in IndexedDB. */
export class DexieStorageProvider implements StorageProvider {
  readonly kind = 'indexeddb'
  /** `'indexeddb'` with the page's own IndexedDB (shared by its tabs); with an explicit `indexedDB`, `options.channel` */
  readonly channel?: string
  private readonly options: DexieOptions
  private registry?: RegistryDb
  private readonly hints?: NameHints
  /** set when a change of the registry could not move the generation token */
  private tokenStale = false

  /**
   * `options.hints`: where name → address hints are kept (see `guessName`); default the page's
   * `localStorage` with the page's own IndexedDB, none with an explicit `indexedDB` (another
   * IndexedDB's names must not mix with the page's).
   */
  constructor (options: DexieOptions & { channel?: string, hints?: NameHints } = {}) {
    const { channel, hints, ...rest } = options
    this.options = rest
    const shared = channel ?? (options.indexedDB === undefined ? 'indexeddb' : undefined)
    if (shared !== undefined) this.channel = shared
    const store = hints ?? (options.indexedDB === undefined ? pageLocalStorage() : undefined)
    if (store !== undefined) this.hints = store
  }

  async open (dbId: string): Promise<DexieStorage> {
    return await DexieStorage.open(`kitedb/${dbId}`, this.options)
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

  async saveSecret (name: string, bytes: Uint8Array): Promise<void> {
    this.moveGeneration()
    await this.secrets.put({ name, bytes })
  }

  async lookupName (name: string): Promise<string | undefined> {
    const address = (await this.names.get(name))?.address
    // the registry is the truth: the hint follows it (set again if lost, removed if stale)
    if (address !== this.guessName(name)) this.hint(name, address)
    return address
  }

  async registerName (name: string, address: string): Promise<void> {
    this.moveGeneration()
    await this.names.put({ name, address })
    this.hint(name, address)
  }

  async unregisterName (name: string): Promise<void> {
    this.moveGeneration()
    this.hint(name, undefined)
    await this.names.delete(name)
  }

  /**
   * The registry's generation token (see `StorageProvider.registryGeneration`), kept in the hints
   * store beside the name hints: made when there is none, moved before every change of the
   * registry. `undefined` without a hints store, or one that refuses.
   */
  registryGeneration (): string | undefined {
    if (this.hints === undefined || this.tokenStale) return undefined
    try {
      const token = this.hints.getItem(GENERATION_KEY)
      if (token !== null) return token
      const made = newGeneration()
      this.hints.setItem(GENERATION_KEY, made)
      return made
    } catch { return undefined }
  }

  /** Before a change of the registry: a new generation token, or none if the store refuses one (then nothing is trusted). */
  private moveGeneration (): void {
    try {
      this.hints?.setItem(GENERATION_KEY, newGeneration())
    } catch {
      try {
        this.hints?.removeItem(GENERATION_KEY)
      } catch {
        // The old token stays: this provider trusts none from now on.
        this.tokenStale = true
      }
    }
  }

  /** The address hint of `name`, if any (see `StorageProvider.guessName`). */
  guessName (name: string): string | undefined {
    try { return this.hints?.getItem(HINT_PREFIX + name) ?? undefined } catch { return undefined }
  }

  /** Set (or with `undefined` remove) the address hint of `name`; a store that refuses is ignored: hints are optional. */
  private hint (name: string, address: string | undefined): void {
    try {
      if (address === undefined) this.hints?.removeItem(HINT_PREFIX + name)
      else this.hints?.setItem(HINT_PREFIX + name, address)
    } catch { /* full or refused: no hint, the registry still answers */ }
  }

  async listNames (): Promise<Array<{ name: string, address: string }>> {
    return (await this.names.orderBy('name').toArray()).map(({ name, address }) => ({ name, address }))
  }
}
