/** Storage: the interface, its in-memory and IndexedDB (Dexie) implementations. */
export * from './storage.js'
export * from './memory.js'
export * from './dexie/index.js'
export * from './keys.js'
export * from './device-key.js'
