/**
 * A database: a named set of collections with one address, one Merkle-DAG and one gossip topic.
 * Local-first: it opens and works from local storage at once; replication starts in the
 * background and retries until the network is reachable.
 */
import { DatabaseClosedError, ValidationError } from '../errors.js'
import { type Doc, type Op, isValidCollectionName } from '../crdt/index.js'
import { type DocChange, type Storage } from '../store/index.js'
import { type ChangeOrigin, type PeerConnection, type Replica, Replicator, type ReplicatorOptions, type SyncState } from '../sync/index.js'
import { type NetworkLease } from '../net/index.js'
import { createLogger } from '../log.js'
import { formatShareLink } from '../share/index.js'
import { type Announcement, startAnnouncing } from './announce.js'
import { Collection, type CollectionHost } from './collection.js'

const log = createLogger('db')

/** A remote replica of this database and how we reach it. */
export interface PeerInfo extends PeerConnection {
  /** its libp2p peer id */
  id: string
}

/** State of the database's network connection. */
export type NetworkStatus = 'local' | 'connecting' | 'online' | 'offline'

/** Events of `Database.on`. */
export interface DatabaseEvents {
  /** documents changed (after the block's transaction committed) */
  update: (changes: DocChange[], origin: ChangeOrigin) => void
  /** the set of peers, or how we are connected to them, changed (within about a second) */
  peers: (peers: PeerInfo[]) => void
  /** the network status changed; `error` is set when it went offline because of one */
  network: (status: NetworkStatus, error?: Error) => void
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
}

/** An open database. Get one from `KiteDB.init` or `KiteDB.open`. */
export class Database {
  /** local name (the manifest's name; the address for a joined database whose name is unknown) */
  readonly name: string
  /** `/kite/<manifest-cid>` */
  readonly address: string
  private readonly storage: Storage
  private readonly replica: Replica
  private readonly collections = new Map<string, Collection<any>>()
  private readonly watchers = new Map<string, Set<() => void>>()
  private readonly listeners: { [K in keyof DatabaseEvents]: Set<DatabaseEvents[K]> } = { update: new Set(), peers: new Set(), network: new Set() }
  private readonly cleanups: Array<() => void> = []
  private replicator?: Replicator
  private lease?: NetworkLease
  private status: NetworkStatus
  private closed = false
  private retryTimer?: ReturnType<typeof setTimeout>
  private readonly online: Promise<void>
  private resolveOnline!: () => void

  /** @internal */
  constructor (parts: DatabaseParts) {
    this.name = parts.name
    this.address = parts.address
    this.storage = parts.storage
    this.replica = parts.replica
    this.status = parts.connect === undefined ? 'local' : 'connecting'
    this.online = new Promise(resolve => { this.resolveOnline = resolve })
    this.cleanups.push(this.replica.onChange((changes, origin) => { this.onChanges(changes, origin) }))
    if (parts.connect !== undefined) void this.connect(parts.connect, parts.replication ?? {}, 0)
  }

  /** This replica's libp2p peer id, once online. */
  get peerId (): string | undefined { return this.lease?.transport.peerId }

  /** Relay multiaddrs this database uses (empty when local-only). */
  get relays (): string[] { return this.lease?.relays ?? [] }

  /** `'local'` (no network configured), `'connecting'`, `'online'` or `'offline'` (retrying). */
  get networkStatus (): NetworkStatus { return this.status }

  /**
   * Resolves once the network is up (immediately for a local-only database never). Rejects with
   * `DatabaseClosedError` if the database is closed first.
   */
  async whenOnline (): Promise<void> {
    this.assertOpen()
    if (this.status === 'local') throw new ValidationError('this database was opened without a network')
    await this.online
    this.assertOpen()
  }

  /**
   * Open a collection (created implicitly by its first write). Throws `ValidationError` for a bad
   * name: 1–128 characters without `$` or NUL.
   */
  async initCollection<T extends Record<string, unknown> = Record<string, unknown>> (name: string): Promise<Collection<T>> {
    this.assertOpen()
    if (!isValidCollectionName(name)) throw new ValidationError('a collection name must be 1–128 characters without "$" or NUL')
    let c = this.collections.get(name)
    if (c === undefined) this.collections.set(name, c = new Collection<T>(this.host, name))
    return c as Collection<T>
  }

  /** Names of collections that are open here or hold documents, sorted. */
  async listCollections (): Promise<string[]> {
    this.assertOpen()
    return [...new Set([...this.collections.keys(), ...await this.storage.getCollections()])].sort()
  }

  /**
   * A link that opens this database in an app served at `baseUrl`: the address, the relays and
   * this replica's peer id in the URL fragment (see `formatShareLink`).
   */
  shareLink (baseUrl: string): string {
    this.assertOpen()
    return formatShareLink(baseUrl, { address: this.address, relays: this.relays, ...(this.peerId !== undefined ? { peer: this.peerId } : {}) })
  }

  /** Remote replicas of this database we currently hear from, with how each is connected. */
  peers (): PeerInfo[] {
    const r = this.replicator
    if (r === undefined || this.closed) return []
    return r.peers().map(id => ({ id, ...r.transport.connection(id) }))
  }

  /** Heads, number of blocks still to fetch, peers, time of the last block received. */
  async syncState (): Promise<SyncState> {
    this.assertOpen()
    if (this.replicator !== undefined) return await this.replicator.state()
    return { heads: await this.replica.heads(), missing: (await this.replica.missing()).length, peers: [], lastSyncedAt: null }
  }

  /** Listen to an event; returns a function that removes the listener. */
  on<K extends keyof DatabaseEvents> (event: K, listener: DatabaseEvents[K]): () => void {
    this.listeners[event].add(listener)
    return () => { this.off(event, listener) }
  }

  /** Remove a listener added with `on`. */
  off<K extends keyof DatabaseEvents> (event: K, listener: DatabaseEvents[K]): void {
    this.listeners[event].delete(listener)
  }

  /** Stop replicating and release storage. Later calls on the database throw `DatabaseClosedError`. Idempotent. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
    for (const c of this.cleanups.splice(0)) c()
    this.replicator?.stop()
    this.replicator = undefined
    await this.lease?.release()
    this.lease = undefined
    await this.storage.close()
    this.resolveOnline()
  }

  /** @internal throws `DatabaseClosedError` once closed */
  assertOpen (): void {
    if (this.closed) throw new DatabaseClosedError(this.name)
  }

  private readonly host: CollectionHost = {
    assertOpen: () => { this.assertOpen() },
    readDocs: async (coll: string): Promise<Doc[]> => await this.storage.getDocs(coll),
    readDoc: async (coll: string, id: string): Promise<Doc | undefined> => await this.storage.getDoc(coll, id),
    write: async (prepare: () => Promise<Op[]>): Promise<DocChange[]> => {
      const applied = await this.replica.commit(prepare)
      if (applied === undefined) return []
      if (this.replicator !== undefined) void this.replicator.publishLocal(applied)
      return applied.changes
    },
    watch: (coll: string, listener: () => void): (() => void) => {
      let set = this.watchers.get(coll)
      if (set === undefined) this.watchers.set(coll, set = new Set())
      set.add(listener)
      return () => { set.delete(listener) }
    }
  }

  private onChanges (changes: DocChange[], origin: ChangeOrigin): void {
    const colls = new Set(changes.map(c => c.coll))
    for (const coll of colls) for (const w of this.watchers.get(coll) ?? []) w()
    this.emit('update', changes, origin)
  }

  private emit<K extends keyof DatabaseEvents> (event: K, ...args: Parameters<DatabaseEvents[K]>): void {
    for (const l of this.listeners[event]) {
      try {
        (l as (...a: unknown[]) => void)(...args)
      } catch (err) {
        log.warn(`"${event}" listener threw`, err)
      }
    }
  }

  private setStatus (status: NetworkStatus, error?: Error): void {
    if (this.status === status) return
    this.status = status
    this.emit('network', status, error)
  }

  /** Lease the network and start replicating; on failure retry with backoff (1 s … 30 s). */
  private async connect (connect: NetworkConnector, replication: ReplicatorOptions, attempt: number): Promise<void> {
    try {
      const lease = await connect()
      if (this.closed) { await lease.release(); return }
      this.lease = lease
      const replicator = new Replicator(this.replica, lease.transport, replication)
      this.replicator = replicator
      replicator.start()
      // Emit 'peers' whenever the list or how a peer is connected changes. Connection events can
      // precede the connection manager's bookkeeping, so the view is also re-checked every second.
      let last = ''
      const refreshPeers = (): void => {
        if (this.closed) return
        const peers = this.peers()
        const key = JSON.stringify(peers)
        if (key === last) return
        last = key
        this.emit('peers', peers)
      }
      const timer = setInterval(refreshPeers, 1000)
      this.cleanups.push(
        () => { clearInterval(timer) },
        replicator.onPeers(refreshPeers),
        lease.transport.onConnectionChange?.(() => { refreshPeers(); setTimeout(refreshPeers, 100) }) ?? (() => {}),
        startAnnouncing(lease.transport, async () => await this.announcement())
      )
      this.setStatus('online')
      this.resolveOnline()
    } catch (err) {
      if (this.closed) return
      const delay = Math.min(30_000, 1000 * 2 ** attempt)
      log.warn(`network unavailable for ${this.address} (retrying in ${delay} ms): ${(err as Error).message}`)
      this.setStatus('offline', err as Error)
      this.retryTimer = setTimeout(() => { void this.connect(connect, replication, attempt + 1) }, delay)
    }
  }

  private async announcement (): Promise<Announcement> {
    return { address: this.address, collections: await this.listCollections(), relays: this.relays }
  }
}
