/** The IndexedDB (Dexie) implementation of the storage seam. */
export { type DexieOptions } from './schema.js'
export { DexieStorage } from './storage.js'
export { DexieStorageProvider } from './provider.js'
