/** Run a suite against each storage provider: memory, and Dexie over a fresh fake-indexeddb. */
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { DexieStorageProvider, MemoryStorageProvider, type StorageProvider } from '../../src/store/index.js'

export const storageKinds: Array<[string, () => StorageProvider]> = [
  ['memory', () => new MemoryStorageProvider()],
  ['indexeddb', () => new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange })]
]
