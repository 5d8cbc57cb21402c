/** Snapshots (docs/snapshots.md): the node format, making one, offering it, fetching one. */
export {
  type SnapshotRoot, type SnapshotPage, type CoveredList, type SnapshotNode, type SnapshotSealing,
  signSnapshotRoot, verifySnapshotRoot, encodeSnapshotNode, decodeSnapshotNode
} from './format.js'
export { type BuiltSnapshot, buildSnapshot } from './build.js'
export { type SnapshotServerOptions, SnapshotServer } from './serve.js'
export { type SnapshotFetchProgress, type SnapshotTrust, fetchSnapshot } from './fetch.js'
export { type SnapshotPreview } from './join.js'
