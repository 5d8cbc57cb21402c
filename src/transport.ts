/**
 * `kitedb/transport`: the network seam for implementers. The `Transport` interface and its
 * types, the errors a transport rejects with, and `transportConformance`, the suite every
 * implementation must pass. The libp2p implementation stays inside `kitedb`, so this entry loads
 * no libp2p code.
 */
export type { Transport, PeerConnection, NetworkState, RelayStatus, SubscribeOptions } from './sync/transport.js'
export type { Limits } from './sync/limits.js'
export { transportConformance, type TransportPeers, type TransportConformanceOptions } from './sync/transport-conformance.js'
export { type ConformanceCase } from './check.js'
export { KiteError, NetworkError, TimeoutError } from './errors.js'
