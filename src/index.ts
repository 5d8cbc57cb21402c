/**
 * KiteDB — a browser-first, local-first document database that replicates peer to peer.
 * Public exports only.
 */
export { KiteDB, type OpenOptions, type DiscoverOptions } from './db/kitedb.js'
export { Database, type PeerInfo, type NetworkStatus, type DatabaseEvents } from './db/database.js'
export { Collection, type Query, type Update, type Projection, type Sort, type FindOptions } from './db/collection.js'
export { type Announcement } from './db/announce.js'
export { newObjectId } from './db/ops.js'
export * from './errors.js'
export { setLogLevel, type LogLevel } from './log.js'
export { formatShareLink, parseShareLink, renderQrSvg, renderQrDataUrl, type ShareInfo } from './share/index.js'
export { type Doc, type JsonValue } from './crdt/index.js'
export { type DocChange, type StorageProvider, MemoryStorageProvider, DexieStorageProvider } from './store/index.js'
export { type SyncState, type ReplicatorOptions } from './sync/index.js'
