/**
 * The shapes of a `Database`'s API (database.ts): its events, peers, network state, inspection,
 * options, and the parts it is built from.
 */
import { type KiteError } from '../errors.js'
import { type DocChange, type IndexProgress, type Storage } from '../store/index.js'
import {
  type ChangeOrigin, type KeeperStatus, type NetworkState, type PeerConnection, type Replica, type ReplicatorOptions,
  type SyncProgress
} from '../sync/index.js'
import { type NetworkLease } from '../net/index.js'
import { type Warning } from '../log.js'
import { type IndexSpec } from './collection.js'
import { type JsonSchema } from './schema.js'

/** A remote replica of this database and how we reach it. */
export interface PeerInfo extends PeerConnection {
  /** its libp2p peer id */
  id: string
}

/**
 * State of the database's network connection: `'local'` (opened without a network), `'online'`
 * (a relay holds a reservation for this replica, or a peer is connected), `'connecting'` (an
 * attempt is under way, nothing is up yet), `'offline'` (nothing is up; the next attempt is at
 * `networkState().nextAttemptAt`).
 */
export type NetworkStatus = 'local' | 'connecting' | 'online' | 'offline'

/** The database's network in detail (see `Database.networkState`). */
export interface DatabaseNetworkState extends Omit<NetworkState, 'status'> {
  status: NetworkStatus
}

/** Events of `Database.on`. */
export interface DatabaseEvents {
  /** documents changed (after the block's transaction committed); `collections` came into existence or were dropped */
  update: (changes: DocChange[], origin: ChangeOrigin, collections: string[]) => void
  /** the set of peers, or how we are connected to them, changed (within about a second) */
  peers: (peers: PeerInfo[]) => void
  /** a peer started replicating this database with us */
  'peer:join': (peer: PeerInfo) => void
  /** a peer is no longer heard from */
  'peer:leave': (peerId: string) => void
  /** catching up: after each batch of fetched blocks */
  'sync:progress': (progress: SyncProgress) => void
  /**
   * the network status changed, or (same status) the relays' states or the time of the next attempt
   * did; `error` is the reason of the last failed attempt while not online. See `networkState()`.
   */
  network: (status: NetworkStatus, error?: Error) => void
  /** the manifest of a database joined by address arrived: its name, writers and encryption are known */
  manifest: () => void
  /**
   * whether everything this replica holds is stored by at least one keeper changed: `true` once a
   * keeper acknowledged it all (after its commit), `false` when this replica holds something no
   * keeper has acknowledged yet (a write, say). See `whenKept`, `keepers()`, docs/keepers.md.
   */
  kept: (kept: boolean) => void
  /**
   * replication stopped on an error it cannot retry past (an `AccessError`: e.g. a wrong key),
   * found a peer's input forged after taking it and repaired it (`SnapshotMismatchError`, code
   * `ERR_SNAPSHOT_MISMATCH`: replication goes on), or a keeper refused to keep this database
   * (`KeeperFullError`: a quota; `KeeperRefusedError`: another reason; tried again later)
   */
  error: (error: KiteError) => void
}

/** What `Database.inspect` returns. */
export interface DatabaseInspection {
  address: string
  /** CID strings of the heads */
  heads: string[]
  /** CIDs named as parents but not stored yet (at most 100; `missingCount` counts them all, with wanted heads) */
  missing: string[]
  missingCount: number
  /** missing blocks no peer could serve (not counted in `missingCount`) */
  unavailable: number
  /** remote replicas, how each is connected, and why not directly */
  peers: PeerInfo[]
  network: DatabaseNetworkState
  keepers: KeeperStatus[]
  /** the last warnings logged in this page (refused input with its reason), newest last */
  refused: Warning[]
}

/** Options of `Database.shareLink`. */
export interface ShareLinkOptions {
  /**
   * A link for reading only. Allowed only when the database has a write list (anyone who can
   * read a `['*']` database can write to it, so a read-only link cannot exist for it); the link
   * is then the same, since writing takes a listed key, not the link. Throws `ValidationError`
   * otherwise.
   */
  readOnly?: boolean
  /**
   * The short form (`formatShortLink`): only what a join needs — the address, the key and the
   * relays, in one uppercase base32 fragment that a QR code holds in alphanumeric mode. Relays
   * that are in `appRelays` are named by their index there (not at all when the database's relays
   * are exactly those); others by their text. No peer id.
   */
  short?: boolean
  /** with `short`: the relays of the app that opens the link (its configuration) */
  appRelays?: string[]
}

/** Options of `initCollection`, `createCollection` and `openCollection`. */
export interface CollectionOptions {
  /**
   * a JSON Schema (draft 2020-12) every document this replica writes must fit, checked with Ajv: a
   * write that does not fit throws `SchemaError` (a `ValidationError` naming the path) and writes
   * nothing. Local to this replica, like indexes; documents other replicas wrote may not fit (see
   * `Collection.invalid`). Throws `ValidationError` for an invalid schema.
   */
  schema?: JsonSchema
  /** secondary indexes to declare (and build over existing documents): paths, or lists of paths for compound indexes */
  indexes?: IndexSpec[]
  /** progress of index builds over existing documents */
  onIndexProgress?: (index: string, progress: IndexProgress) => void
}

/** How a database reaches the network: a function that leases it (retried on failure). */
export type NetworkConnector = () => Promise<NetworkLease>

/** @internal everything `Database` is built from; see `KiteDB.init` / `KiteDB.open`. */
export interface DatabaseParts {
  name: string
  address: string
  storage: Storage
  replica: Replica
  connect?: NetworkConnector
  replication?: ReplicatorOptions
  /** the channel of the storage shared with other tabs (`StorageProvider.channel`), if any */
  tabChannel?: string
  /** publish this database's address on the node's announce topic (see `announce.ts`) */
  announce?: boolean
  /** called once when the database closes */
  onClose?: () => void
}
