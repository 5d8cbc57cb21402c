/**
 * Storage: the interface, its in-memory and IndexedDB (Dexie) implementations. `MemoryStorage`
 * itself is imported from memory.ts (its provider loads it on first use; see memory-provider.ts).
 */
export * from './storage.js'
export * from './memory-provider.js'
export * from './dexie/index.js'
export * from './keys.js'
export * from './device-key.js'
