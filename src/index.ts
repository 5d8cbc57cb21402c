/**
 * KiteDB — a browser-first, local-first document database that replicates peer to peer.
 * Public exports only.
 */
export { KiteDB, type OpenOptions, type DiscoverOptions } from './db/kitedb.js'
export { Database, type DatabaseInspection, type PeerInfo, type NetworkStatus, type DatabaseEvents, type CollectionOptions, type ShareLinkOptions } from './db/database.js'
export { Collection, type CreateIndexOptions, type IndexSpec } from './db/collection.js'
export { Presence, type PresenceEntry } from './db/presence.js'
export { type JsonSchema } from './db/schema.js'
export { LiveQuery, type LiveQueryOptions, type Observer, type Subscription } from './db/live.js'
export { type Explain } from './db/planner.js'
export type { Filter, UpdateFilter, LooseFilter, LooseUpdate, Projection, Sort, WithId, OptionalId, Condition, FieldOperators, PushModifiers, AnyDoc, FindOptions } from './db/types.js'
export { type Announcement } from './db/announce.js'
export { newObjectId } from './db/ops.js'
export * from './errors.js'
export { setLogLevel, recentWarnings, type LogLevel, type Warning } from './log.js'
export { formatShareLink, formatShortLink, parseShareLink, renderQrSvg, renderQrDataUrl, type ShareInfo, type ShortLinkOptions } from './share/index.js'
export { type Doc, type JsonValue } from './crdt/index.js'
export { type DocChange, type StorageProvider, type IndexInfo, type IndexProgress, MemoryStorageProvider, DexieStorageProvider } from './store/index.js'
export { type SyncState, type SyncProgress, type ReplicatorOptions, type Limits, type LimitsOptions, DEFAULT_LIMITS, type KeeperStatus, type WhenKeptOptions } from './sync/index.js'
