/**
 * `kitedb/storage`: the storage seam for implementers. The `Storage` and `StorageProvider`
 * interfaces and their types, the helpers an implementation needs (index keys, the DAG update,
 * collection existence), the in-memory reference implementation, and `storageConformance`, the
 * suite every implementation must pass. The IndexedDB implementation (`DexieStorageProvider`) is
 * exported by `kitedb` itself, so this entry loads no IndexedDB code.
 */
export type {
  Storage, StorageProvider, DocKey, MergeInput, MergeOutput, ApplyBlockInput, ApplyBlockResult, StoredNode,
  InstallSnapshotInput, InstallSnapshotResult, SnapshotSource, DocChange, IndexInfo, IndexProgress, IndexEntry,
  IndexDocEntry, ScanOptions, ReadOptions
} from './store/storage.js'
export { docKey, indexName, dagUpdate, indexDiff } from './store/storage.js'
export { type IndexKey, type KeyPart, type KeyRange, RANK, compareKeys, encodeValue, inRange, indexKeys, isMultikey } from './store/keys.js'
export { MemoryStorage } from './store/memory.js'
export { MemoryStorageProvider } from './store/memory-provider.js'
export { storageConformance, type StorageConformanceOptions } from './store/conformance/index.js'
export { type ConformanceCase } from './check.js'
export { type CollState, type DocState, type Register, type Stamp, collectionCreated, materialise } from './crdt/merge.js'
export { type Doc, type JsonValue, jsonEqual } from './crdt/json.js'
