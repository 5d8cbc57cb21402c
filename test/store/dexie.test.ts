import { IDBFactory, IDBKeyRange } from 'fake-indexeddb'
import { DexieStorageProvider } from '../../src/store/index.js'
import { storageConformance } from './conformance.js'

// A fresh IndexedDB per provider, so tests do not see each other's databases.
storageConformance('indexeddb (Dexie over fake-indexeddb)', () => new DexieStorageProvider({ indexedDB: new IDBFactory(), IDBKeyRange }))
