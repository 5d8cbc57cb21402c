/**
 * The network seam of the replication engine. `src/net` implements it over libp2p (gossipsub +
 * stream protocols); tests implement it in memory. The engine never talks to libp2p directly.
 * Both pass the same conformance suite (`transportConformance`, sync/transport-conformance.ts),
 * which any other implementation can run too.
 */
import { type Limits } from './limits.js'

/** How this replica is connected to a peer. */
export interface PeerConnection {
  /** `'direct'`: an unlimited direct connection (WebRTC in browsers); `'relayed'`: through a relay; `'none'`: reached only by gossip forwarded by others, or not at all (its `transport` is then `'none'`) */
  kind: 'direct' | 'relayed' | 'none'
  /** transport name for display, e.g. `'webrtc'`, `'websockets'`, `'circuit-relay'`, `'none'` */
  transport: string
  /**
   * bytes the connection may still carry, both ways together, when it is limited (a relayed
   * circuit: the relay closes it beyond); absent when unlimited or unknown
   */
  remainingBytes?: number
  /** when not direct: why not (WebRTC off, the peer is relay-only, the last upgrade's error…), for diagnostics */
  whyNotDirect?: string
}

/** Where one relay stands (see `NetworkState`). */
export interface RelayStatus {
  /** the relay's multiaddr as configured */
  addr: string
  /** its peer id */
  peer: string
  /**
   * `'reserved'`: connected and holding a reservation (peers can reach this node through it);
   * `'connected'`: connected without a reservation (gossip flows; the reservation is retried);
   * `'connecting'`: an attempt is under way; `'waiting'`: the next attempt is at `nextAttemptAt`
   */
  state: 'reserved' | 'connected' | 'connecting' | 'waiting'
  /** failed attempts since it was last reserved */
  failures: number
  /** when the next attempt starts, ms since the epoch (`'waiting'`), else null */
  nextAttemptAt: number | null
  /** why the last attempt failed, or null */
  error: string | null
  /** since when it has been in this state, ms since the epoch */
  since: number
}

/** How a transport reaches the network as a whole. */
export interface NetworkState {
  /**
   * `'online'` while a relay reservation or a connection to a peer is up; otherwise
   * `'connecting'` while an attempt is under way, or `'offline'` until `nextAttemptAt`
   */
  status: 'online' | 'connecting' | 'offline'
  /** when the next attempt starts (`'offline'` only), ms since the epoch, else null */
  nextAttemptAt: number | null
  /** relays holding a reservation now */
  reserved: number
  /** peers (not relays) with an open connection now */
  connectedPeers: number
  /** every relay, in the configured order */
  relays: RelayStatus[]
  /** why the last attempt failed (offline or connecting only), or null */
  error: string | null
}

/** Options of `Transport.subscribe`. */
export interface SubscribeOptions {
  /**
   * Check a message before it is delivered or forwarded to anyone (gossipsub message
   * validation): resolving false, or rejecting, drops it here and keeps it from propagating
   * further. It may still reach peers over other paths, which check it themselves. `from` is the
   * publisher, as the handler gets it.
   */
  validate?: (data: Uint8Array, from: string) => Promise<boolean>
}

/** Publish/subscribe plus request/response between peers, addressed by peer id strings. */
export interface Transport {
  /** this node's peer id */
  readonly peerId: string
  /**
   * The limits this transport holds peers to; the replication engine applies their want-list and
   * snapshot-build bounds too (default `DEFAULT_LIMITS`)
   */
  readonly limits?: Limits
  /**
   * Receive messages published on `topic` by other peers (never this node's own). `from` is the
   * peer that published it (not the one that forwarded it). Returns a function that unsubscribes
   * this handler; once a topic's last handler is gone, this node no longer subscribes to it.
   */
  subscribe (topic: string, handler: (data: Uint8Array, from: string) => void, options?: SubscribeOptions): () => void
  /** Publish to every subscriber of `topic`. Resolves once handed to the network (no delivery guarantee). */
  publish (topic: string, data: Uint8Array): Promise<void>
  /**
   * Called with the peer id of every peer heard to newly subscribe to `topic` (relays included;
   * never this node). Returns a function that removes this handler.
   */
  onSubscriber (topic: string, handler: (peer: string) => void): () => void
  /** Peers (other than relays and this node) currently known to subscribe to `topic`; a peer that unsubscribed leaves the list. */
  subscribers (topic: string): string[]
  /**
   * Send one request on `protocol` to `peer` and resolve with its one response. Rejects with
   * `NetworkError` when the peer cannot be reached, does not handle `protocol`, or its handler
   * rejects; with `TimeoutError` when no response came within `timeoutMs` (default 10000). A
   * failed request leaves other requests in flight to that peer alone.
   */
  request (peer: string, protocol: string, data: Uint8Array, options?: { timeoutMs?: number }): Promise<Uint8Array>
  /**
   * Answer requests on `protocol`: the handler's resolved bytes are the response; a rejection
   * closes the stream without a response. One handler per protocol (remove it before handling the
   * protocol again). Returns a function that removes the handler: later requests on `protocol`
   * reject with `NetworkError` and never reach it.
   */
  handle (protocol: string, handler: (data: Uint8Array, from: string) => Promise<Uint8Array>): () => void
  /** How this node is connected to `peer` right now (`kind: 'none'` for a peer it has no connection to). */
  connection (peer: string): PeerConnection
  /** Called whenever a connection to any peer opens or closes. Returns an unsubscribe function. */
  onConnectionChange? (handler: () => void): () => void
  /** How the transport reaches the network now (a transport without relays may omit it: always online). */
  networkState? (): NetworkState
  /** Called with the new state whenever `networkState()` changes. Returns an unsubscribe function. */
  onNetworkChange? (handler: (state: NetworkState) => void): () => void
  /** Try to reach the network now rather than after the current backoff (the browser came back online, say). */
  reconnect? (): void
  /**
   * Peers connected now that keep replicas (they announced the keep protocol, `/kitedb/1/keep`:
   * see docs/keepers.md); a transport without keepers may omit it.
   */
  keepers? (): string[]
  /** Called whenever `keepers()` changes. Returns an unsubscribe function. */
  onKeepers? (handler: () => void): () => void
}
