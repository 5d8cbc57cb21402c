/**
 * A database: a named set of collections with one address, one Merkle-DAG and one gossip topic.
 * Local-first: it opens and works from local storage at once; replication starts in the
 * background and retries until the network is reachable.
 *
 * One piece, though over 400 lines: it is the API's database object, whose public members each
 * hand over to the part that does the work (the replica, storage, the replicator, presence, the
 * tab channel) and share one state — the open collections and their watchers, the network lease
 * and status, the listeners. Its shapes are in database-types.ts.
 */
import {
  CollectionExistsError, CollectionNotFoundError, DatabaseClosedError, NetworkError, TimeoutError, ValidationError
} from '../errors.js'
import { type Op, formatKey, formatPublicKey, isValidCollectionName, manifestName, parseCid } from '../crdt/index.js'
import { type DocChange, type Storage } from '../store/index.js'
import {
  type BeforeCheck, type ChangeOrigin, type ChangeSet, type KeeperStatus, type NetworkState, type Replica, type Replicator, type ReplicatorOptions,
  type SnapshotPreview, type SyncState, type WhenKeptOptions
} from '../sync/index.js'
import { type NetworkLease } from '../net/index.js'
import { createLogger, recentWarnings } from '../log.js'
import { formatShareLink, formatShortLink } from '../share/index.js'
import { type Announcement, startAnnouncing } from './announce.js'
import { Collection, type CollectionHost, type WriteHints, normaliseIndexSpec } from './collection.js'
import { TabChannel, type TabMessage } from './tabs.js'
import { Presence } from './presence.js'
import { noteIndexes } from './planner.js'
import { compileSchema } from './schema.js'
import { type AnyDoc } from './types.js'
import {
  type PeerInfo, type NetworkStatus, type DatabaseNetworkState, type DatabaseEvents, type DatabaseInspection, type ShareLinkOptions, type CollectionOptions, type NetworkConnector, type DatabaseParts
} from './database-types.js'

export {
  type PeerInfo, type NetworkStatus, type DatabaseNetworkState, type DatabaseEvents, type DatabaseInspection, type ShareLinkOptions, type CollectionOptions, type NetworkConnector, type DatabaseParts
} from './database-types.js'

const log = createLogger('db')

/** An open database. Get one from `KiteDB.init` or `KiteDB.open`. */
export class Database {
  private nameValue: string
  /** `/kite/<manifest-cid>` */
  readonly address: string
  private readonly storage: Storage
  private readonly replica: Replica
  private readonly collections = new Map<string, Collection<AnyDoc>>()
  private readonly watchers = new Map<string, Set<(changes: DocChange[]) => void>>()
  /** ids shown to live queries by a snapshot join's preview not yet ended, by collection */
  private previewed = new Map<string, Set<string>>()
  private readonly listeners: { [K in keyof DatabaseEvents]: Set<DatabaseEvents[K]> } = {
    update: new Set(), peers: new Set(), 'peer:join': new Set(), 'peer:leave': new Set(), 'sync:progress': new Set(), network: new Set(), manifest: new Set(), error: new Set(), kept: new Set()
  }
  private readonly cleanups: Array<() => void> = []
  private replicator?: Replicator
  private lease?: NetworkLease
  private status: NetworkStatus
  private network?: NetworkState
  private closed = false
  private retryTimer?: ReturnType<typeof setTimeout>
  /** resolves when `close` begins: ends the network loop */
  private readonly closing: Promise<void>
  private beginClosing!: () => void
  /** the network loop, while it runs */
  private networkLoop?: Promise<void>
  private readonly tabs?: TabChannel
  /**
   * Each peer's ephemeral state — who is here, what they are editing: `presence.set(state)`,
   * `presence.get()`, `presence.on('change', …)`. Sent over the database's topic (sealed for an
   * encrypted database), never stored, gone a few seconds after a peer leaves. See presence.ts.
   */
  readonly presence: Presence
  private readonly onClose?: () => void
  /** whether this database is announced (an opt-in of `KiteDB.init`/`open`) */
  private readonly announcing: boolean

  /** @internal */
  constructor (parts: DatabaseParts) {
    this.nameValue = parts.name
    this.address = parts.address
    this.storage = parts.storage
    this.replica = parts.replica
    this.host = this.makeHost()
    this.onClose = parts.onClose
    this.announcing = parts.announce === true
    this.status = parts.connect === undefined ? 'local' : 'connecting'
    this.closing = new Promise(resolve => { this.beginClosing = resolve })
    this.presence = new Presence(this.replica.dbId, this.replica.key)
    if (parts.tabChannel !== undefined && TabChannel.supported) {
      this.tabs = new TabChannel(parts.tabChannel, this.replica.dbId, msg => { void this.onTabMessage(msg) })
    }
    this.cleanups.push(
      this.replica.onChange((change, origin) => {
        this.tabs?.post(change.changes, change.collections, origin)
        this.onChanges(change, origin)
      }),
      this.replica.onManifest(manifest => {
        try { this.nameValue = manifestName(manifest, this.replica.key) } catch { /* a name this key does not open: keep the one known */ }
        this.emit('manifest')
      })
    )
    if (parts.connect !== undefined) this.networkLoop = this.runNetwork(parts.connect, parts.replication ?? {})
  }

  /** The name given at creation (the address, for a joined database whose manifest has not arrived yet). */
  get name (): string { return this.nameValue }

  /** This device's writer key (`z…` base58btc), which signs every block it writes here. */
  get publicKey (): string { return formatPublicKey(this.replica.signer.publicKey) }

  /**
   * Whether this replica may write: its key is on the write list (or the list is `['*']`). False
   * while the manifest of a database joined by address has not arrived. Writes otherwise throw
   * `AccessError`.
   */
  get canWrite (): boolean { return this.replica.canWrite }

  /** Whether the database is encrypted (`undefined` while its manifest has not arrived). */
  get encrypted (): boolean | undefined {
    const m = this.replica.manifest
    return m == null ? undefined : m.enc !== undefined
  }

  /** Who may write: public keys, or `['*']` (`undefined` while the manifest has not arrived). */
  get writers (): string[] | undefined {
    const m = this.replica.manifest
    return m == null ? undefined : [...m.write]
  }

  /** This replica's libp2p peer id, once online. */
  get peerId (): string | undefined { return this.lease?.transport.peerId }

  /** Relay multiaddrs this database uses (empty when local-only). */
  get relays (): string[] { return this.lease?.relays ?? [] }

  /** `'local'` (no network configured), `'connecting'`, `'online'` or `'offline'` (retrying): see `NetworkStatus`. */
  get networkStatus (): NetworkStatus { return this.status }

  /**
   * The network in detail: the status, when the next attempt starts (`'offline'`), how many relays
   * hold a reservation and peers are connected, each relay's state and last error.
   */
  networkState (): DatabaseNetworkState {
    const n = this.network
    return {
      status: this.status,
      nextAttemptAt: n?.nextAttemptAt ?? null,
      reserved: n?.reserved ?? 0,
      connectedPeers: n?.connectedPeers ?? 0,
      relays: n?.relays ?? [],
      error: n?.error ?? null
    }
  }

  /** Try to reach the relays now instead of after the current backoff (e.g. from a "retry" button). */
  reconnect (): void {
    this.assertOpen()
    this.lease?.transport.reconnect?.()
  }

  /**
   * Resolves once the network is up (`networkStatus` is `'online'`). Throws `ValidationError` for a
   * local-only database; rejects with `DatabaseClosedError` if the database is closed first.
   */
  async whenOnline (): Promise<void> {
    this.assertOpen()
    if (this.status === 'local') throw new ValidationError('this database was opened without a network')
    if (this.status !== 'online') {
      await new Promise<void>(resolve => {
        const off = this.on('network', status => { if (status === 'online') { off(); resolve() } })
        void this.closing.then(() => { off(); resolve() })
      })
    }
    this.assertOpen()
  }

  /**
   * Open the collection `name`, creating it (a replicated create) if it does not exist, and
   * declare `options.indexes`. On a replica that may not write (see `canWrite`), a missing
   * collection is opened without being created: it fills when a writer's data arrives. Throws `ValidationError` for a bad name (1–128 characters without
   * `$` or NUL) or index spec.
   */
  async initCollection<T extends object = AnyDoc> (name: string, options: CollectionOptions = {}): Promise<Collection<T>> {
    return await this.openCollection<T>(name, { ...options, create: true })
  }

  /** Create the collection `name`; throws `CollectionExistsError` if it exists. Options as `initCollection`. */
  async createCollection<T extends object = AnyDoc> (name: string, options: CollectionOptions = {}): Promise<Collection<T>> {
    this.assertCollectionName(name)
    if (await this.collectionExists(name)) throw new CollectionExistsError(name)
    return await this.openCollection<T>(name, { ...options, create: true })
  }

  /**
   * Open an existing collection; with `{create: true}` create it when missing. Throws
   * `CollectionNotFoundError` when it does not exist and `create` is not set.
   */
  async openCollection<T extends object = AnyDoc> (name: string, options: CollectionOptions & { create?: boolean } = {}): Promise<Collection<T>> {
    this.assertCollectionName(name)
    const specs = (options.indexes ?? []).map(normaliseIndexSpec)
    const check = options.schema === undefined ? undefined : await compileSchema(options.schema) // before anything is written
    // Whether it exists and which of its indexes are built (on every open after the first, all of
    // them): what the storage read as it opened, if still current; else one read transaction, one
    // IndexedDB round trip rather than two. The first query plans from that list (`noteIndexes`).
    const known = this.storage.openedCollection?.(name)
    const [exists, indexes] = known !== undefined ? [true, known] : await this.storage.read(async () => await Promise.all([
      this.collectionExists(name),
      this.storage.listIndexes(name)
    ]))
    noteIndexes(this.storage, name, indexes)
    if (!exists) {
      if (options.create !== true) throw new CollectionNotFoundError(`collection "${name}" does not exist`)
      // A replica that may not write (a reader of a write-list database) cannot create it: it
      // opens it as it is, empty until a writer's create and documents arrive.
      if (this.replica.canWrite) await this.host.write(async () => await this.collectionExists(name) ? [] : [{ op: 'coll', coll: name }])
    }
    let c = this.collections.get(name)
    if (c === undefined) this.collections.set(name, c = new Collection<AnyDoc>(this.host, name))
    if (check !== undefined) c.setSchema(check)
    // The indexes not built yet are declared and built one after another.
    const built = indexes.filter(i => i.ready)
    for (const paths of specs) {
      if (built.some(i => i.paths.length === paths.length && i.paths.every((p, k) => p === paths[k]))) continue
      await this.storage.createIndex(name, paths, options.onIndexProgress === undefined ? undefined : p => { options.onIndexProgress?.(paths.join('+'), p) })
    }
    return c as unknown as Collection<T>
  }

  /** An already opened collection. Throws `CollectionNotFoundError` if it was not opened on this database. */
  collection<T extends object = AnyDoc> (name: string): Collection<T> {
    this.assertOpen()
    const c = this.collections.get(name)
    if (c === undefined) throw new CollectionNotFoundError(`collection "${name}" is not open: call initCollection("${name}") first`)
    return c as unknown as Collection<T>
  }

  /** Names of existing collections (created, or holding documents, and not dropped since), sorted. */
  async listCollections (): Promise<string[]> {
    this.assertOpen()
    return await this.storage.getCollections()
  }

  /**
   * Drop a collection on every replica: a replicated tombstone that hides every document written
   * before it (a write made later, or concurrently with a later clock, revives its document).
   * Throws `CollectionNotFoundError` if it does not exist.
   */
  async dropCollection (name: string): Promise<void> {
    this.assertCollectionName(name)
    if (!await this.collectionExists(name)) throw new CollectionNotFoundError(`collection "${name}" does not exist`)
    await this.host.write(async () => [{ op: 'drop', coll: name }])
  }

  /** A CID string naming this replica's current state (AvionDB's `getHeadHash`). */
  async getHeadHash (): Promise<string> {
    this.assertOpen()
    return await this.replica.headHash()
  }

  /**
   * Resolves once this replica has the state a head hash names (and all its history but blocks no
   * peer could serve: `syncState().unavailable`), fetching it from peers. Rejects with `TimeoutError` after `timeoutMs` (default 30000), `ValidationError`
   * for a malformed hash, `NetworkError` when a local-only database lacks it.
   */
  async syncFromHeadHash (hash: string, options: { timeoutMs?: number } = {}): Promise<void> {
    this.assertOpen()
    if (parseCid(hash) === undefined) throw new ValidationError(`"${String(hash)}" is not a head hash (a CID string)`)
    const deadline = Date.now() + (options.timeoutMs ?? 30_000)
    let lastAsk = 0
    for (;;) {
      this.assertOpen()
      const heads = await this.replica.resolveHeadHash(hash)
      const absent: string[] = []
      for (const h of heads ?? []) if (!await this.storage.hasBlock(h)) absent.push(h)
      // Missing blocks no peer could serve (unavailable) do not hold it back: see `SyncState.unavailable`.
      const outstanding = this.replicator !== undefined ? await this.replicator.outstanding() : await this.replica.missing()
      if (heads !== undefined && absent.length === 0 && outstanding.length === 0) return
      if (this.status === 'local') throw new NetworkError(`this local-only database does not have the state ${hash}`)
      if (this.replicator !== undefined && Date.now() - lastAsk > 1000) {
        this.replicator.want(heads === undefined ? [hash] : absent)
        lastAsk = Date.now()
      }
      if (Date.now() > deadline) throw new TimeoutError(`state ${hash} not reached within ${options.timeoutMs ?? 30_000} ms`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  /**
   * A link that opens this database in an app served at `baseUrl`: the address, the relays,
   * the device's peer id (held by one of its open tabs at a time, so the link outlives the tab that
   * made it) and, for an encrypted database, its key, all in the URL fragment,
   * which browsers never send to a server (see `formatShareLink`); with `short`, the address, the
   * key and the relays only, compactly (see `formatShortLink`). Anyone holding a link to an
   * encrypted database can read it, and write to it unless it has a write list. Throws
   * `ValidationError` for `readOnly` on a database anyone who reads may write.
   */
  shareLink (baseUrl: string, options: ShareLinkOptions = {}): string {
    this.assertOpen()
    if (options.readOnly === true && (this.replica.manifest == null || this.replica.manifest.write[0] === '*')) {
      throw new ValidationError("a read-only link needs a database with a write list: here anyone who can read may write (create it with access: {write: [...]})")
    }
    const key = this.replica.key
    if (options.short === true) {
      return formatShortLink(baseUrl, { address: this.address, relays: this.relays, ...(key !== undefined ? { key: formatKey(key) } : {}) },
        options.appRelays !== undefined ? { relays: options.appRelays } : {})
    }
    return formatShareLink(baseUrl, {
      address: this.address,
      relays: this.relays,
      ...(this.peerId !== undefined ? { peer: this.lease?.devicePeerId ?? this.peerId } : {}),
      ...(key !== undefined ? { key: formatKey(key) } : {})
    })
  }

  /** Remote replicas of this database we currently hear from, with how each is connected. */
  peers (): PeerInfo[] {
    const r = this.replicator
    if (r === undefined || this.closed) return []
    return r.peers().map(id => ({ id, ...r.transport.connection(id) }))
  }

  /** Heads, number of blocks still to fetch, peers, time of the last block received, snapshot joined from. */
  async syncState (): Promise<SyncState> {
    this.assertOpen()
    if (this.replicator !== undefined) return await this.replicator.state()
    return { heads: await this.replica.heads(), missing: (await this.replica.missing()).length, unavailable: 0, peers: [], lastSyncedAt: null, snapshot: await this.replica.snapshotRoot() ?? null, audit: null, holders: 0, kept: false }
  }

  /**
   * The keepers this replica reached in this session (relays that keep, see docs/keepers.md) and
   * where each stands: `state` (`'kept'`, `'saving'`, `'refused'`, `'unreachable'`, `'idle'`),
   * blocks acknowledged, the snapshot acknowledged, when it last confirmed keeping everything,
   * and its refusal or failure (`KeeperFullError`, `KeeperRefusedError`, `NetworkError`).
   */
  keepers (): KeeperStatus[] {
    this.assertOpen()
    return this.replicator?.keeping?.keepers() ?? []
  }

  /**
   * Resolves once everything this replica holds is stored by at least one keeper, as the keeper
   * acknowledged after its commit (so it survives the keeper being killed), e.g. before closing a
   * tab that made changes nobody else has seen. With `snapshot: true`, also waits for a keeper to
   * hold a snapshot of the current heads (made by writers holding at least `snapshotMinBlocks`
   * blocks, once writes go quiet), so a device opening the link later joins fast. Rejects with
   * `TimeoutError` after `timeoutMs` (default 30000; also when no keeper is reached), at once with
   * `KeeperFullError`/`KeeperRefusedError` when every keeper reached refused, `ValidationError`
   * for a local-only database, `DatabaseClosedError` when closed.
   */
  async whenKept (options: WhenKeptOptions = {}): Promise<void> {
    this.assertOpen()
    if (this.status === 'local') throw new ValidationError('this database was opened without a network: nothing can keep it')
    const timeoutMs = options.timeoutMs ?? 30_000
    const deadline = Date.now() + timeoutMs
    for (;;) {
      this.assertOpen()
      const keeping = this.replicator?.keeping
      const left = deadline - Date.now()
      if (keeping !== undefined) {
        await keeping.whenKept({ ...options, timeoutMs: Math.max(1, left) })
        return
      }
      if (left <= 0) throw new TimeoutError(`not kept within ${timeoutMs} ms: not connected to any keeper`)
      await new Promise(resolve => setTimeout(resolve, Math.min(100, left)))
    }
  }

  /**
   * How much storage this origin uses and may use, bytes (`navigator.storage.estimate()`: for the
   * whole origin, every database included), and whether the browser keeps it (`persisted`, see
   * `KiteDB.persist`); `undefined` where the API is missing (Node, insecure origins).
   */
  async storageEstimate (): Promise<{ usage: number, quota: number, persisted: boolean } | undefined> {
    this.assertOpen()
    const storage = (globalThis as { navigator?: { storage?: { estimate?: () => Promise<{ usage?: number, quota?: number }>, persisted?: () => Promise<boolean> } } }).navigator?.storage
    if (typeof storage?.estimate !== 'function') return undefined
    const { usage, quota } = await storage.estimate()
    const persisted = typeof storage.persisted === 'function' ? await storage.persisted() : false
    return { usage: usage ?? 0, quota: quota ?? 0, persisted }
  }

  /**
   * What a "details" panel shows, read now: the heads; the blocks still missing (the first 100) and
   * how many are unavailable; every peer with how it is connected and, when not directly, why
   * not; the network (relays and their states, `networkState()`); the keepers (`keepers()`); and
   * the last warnings logged in this page — refused input (bad blocks, messages over a rate,
   * malformed requests) with its reason, for every database of the page.
   */
  async inspect (): Promise<DatabaseInspection> {
    this.assertOpen()
    const state = await this.syncState()
    const missing = await this.replica.missing()
    return {
      address: this.address,
      heads: state.heads,
      missing: missing.slice(0, 100),
      missingCount: state.missing,
      unavailable: state.unavailable,
      peers: this.peers(),
      network: this.networkState(),
      keepers: this.keepers(),
      refused: recentWarnings()
    }
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
    this.replica.close(new DatabaseClosedError(this.name))
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
    this.beginClosing()
    for (const c of this.cleanups.splice(0)) c()
    this.tabs?.close()
    await this.networkLoop
    await this.storage.close()
    this.onClose?.()
  }

  /** @internal throws `DatabaseClosedError` once closed */
  assertOpen (): void {
    if (this.closed) throw new DatabaseClosedError(this.name)
  }

  /** Whether this instance is closed. */
  get isClosed (): boolean { return this.closed }

  private assertCollectionName (name: string): void {
    this.assertOpen()
    if (!isValidCollectionName(name)) throw new ValidationError('a collection name must be 1–128 characters without "$" or NUL')
  }

  private async collectionExists (name: string): Promise<boolean> {
    return await this.storage.hasCollection(name)
  }

  private readonly host: CollectionHost

  private makeHost (): CollectionHost {
    return {
    assertOpen: () => { this.assertOpen() },
    storage: this.storage,
    write: async (prepare: () => Promise<Op[]>, check?: BeforeCheck, hints: WriteHints = {}): Promise<ChangeSet> => {
      this.assertOpen()
      const applied = await this.replica.commit(prepare, { ...(check !== undefined ? { check } : {}), ...hints })
      if (applied === undefined) return { changes: [], collections: [] }
      if (this.replicator !== undefined) void this.replicator.publishLocal(applied)
      return { changes: applied.changes, collections: applied.collections }
    },
    getHeadHash: async () => await this.getHeadHash(),
    syncFromHeadHash: async (hash, options) => { await this.syncFromHeadHash(hash, options) },
    watch: (coll: string, listener: (changes: DocChange[]) => void): (() => void) => {
      let set = this.watchers.get(coll)
      if (set === undefined) this.watchers.set(coll, set = new Set())
      set.add(listener)
      return () => { set.delete(listener) }
    }
    }
  }

  /**
   * A snapshot join's preview (see `SnapshotPreview`): live queries (the collections' watchers)
   * see each page's documents before the install commits; `update` listeners, `find` and the rest
   * see only what storage holds. When the preview ends (installed or not), the shown documents no
   * committed change has reported since are read again from storage and reported as they are.
   */
  private onPreview (p: SnapshotPreview): void {
    if (this.closed) return
    if (p.kind === 'docs') {
      for (const c of p.changes) {
        let ids = this.previewed.get(c.coll)
        if (ids === undefined) this.previewed.set(c.coll, ids = new Set())
        ids.add(c.id)
      }
      this.notifyWatchers(p.changes, [])
      return
    }
    // Read back what was shown and no committed change has reported since (see `onChanges`): a
    // failed join's documents, or one the install left as a block had already stored it.
    const shown = this.previewed
    this.previewed = new Map()
    void this.retractPreview(shown)
  }

  private async retractPreview (shown: Map<string, Set<string>>): Promise<void> {
    try {
      for (const [coll, set] of shown) {
        const ids = [...set]
        const docs = await this.storage.getDocsById(coll, ids)
        if (this.closed) return
        this.notifyWatchers(ids.map((id, i) => ({ coll, id, before: null, after: docs[i] ?? null })), [])
      }
    } catch (err) {
      if (!this.closed) log.warn('cannot read back the documents a snapshot preview showed', err)
    }
  }

  private onChanges ({ changes, collections }: ChangeSet, origin: ChangeOrigin): void {
    // A committed change supersedes what a snapshot preview showed of that document.
    if (this.previewed.size > 0) for (const c of changes) this.previewed.get(c.coll)?.delete(c.id)
    this.notifyWatchers(changes, collections)
    this.emit('update', changes, origin, collections)
  }

  /** Hand each collection's watchers (live queries) its document changes. */
  private notifyWatchers (changes: DocChange[], collections: string[]): void {
    const colls = new Set([...changes.map(c => c.coll), ...collections])
    for (const coll of colls) {
      const watchers = this.watchers.get(coll)
      if (watchers === undefined || watchers.size === 0) continue
      // Watchers get the collection's document changes. They are complete even when the block
      // created or dropped the collection (a drop's merge loads every document of it, and a
      // snapshot install reports every document it changed), so nobody re-reads everything.
      const mine = changes.filter(c => c.coll === coll)
      for (const w of watchers) w(mine)
    }
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

  /** Set the status; emit `network` when it changed (or, with `always`, on every call: the details may have). */
  private setStatus (status: NetworkStatus, error?: Error, always = false): void {
    if (this.status === status && !always) return
    this.status = status
    this.emit('network', status, error)
  }

  /**
   * Lease the network and replicate over it until the database closes. A lease that cannot be had
   * (the node did not start) is retried with backoff (1 s … 30 s); a lease whose node is replaced
   * (see `NetworkLease.replaced`) is given up for a new one.
   */
  private async runNetwork (connect: NetworkConnector, replication: ReplicatorOptions): Promise<void> {
    let failures = 0
    while (!this.closed) {
      let lease: NetworkLease
      let Engine: typeof Replicator
      try {
        // The replication engine loads beside the network, on first use: a local-only app never
        // loads it (docs/design.md, "Rooms").
        const [engine, leased] = await Promise.allSettled([import('../sync/replicator.js'), connect()])
        if (engine.status === 'rejected') {
          if (leased.status === 'fulfilled') await leased.value.release()
          throw engine.reason
        }
        if (leased.status === 'rejected') throw leased.reason
        Engine = engine.value.Replicator
        lease = leased.value
      } catch (err) {
        if (this.closed) return
        const delay = Math.min(30_000, 1000 * 2 ** failures++)
        log.warn(`network unavailable for ${this.address} (retrying in ${delay} ms): ${(err as Error).message}`)
        this.network = { status: 'offline', nextAttemptAt: Date.now() + delay, reserved: 0, connectedPeers: 0, relays: [], error: (err as Error).message }
        this.setStatus('offline', err as Error)
        await Promise.race([this.closing, new Promise(resolve => { this.retryTimer = setTimeout(resolve, delay) })])
        continue
      }
      failures = 0
      if (this.closed) { await lease.release(); return }
      const stop = this.replicate(Engine, lease, replication)
      const replaced = await Promise.race([lease.replaced.then(() => true), this.closing.then(() => false)])
      stop()
      await lease.release()
      if (!replaced) return
      log.debug(`the network node of ${this.address} was replaced: moving to the new one`)
    }
  }

  /** Replicate over `lease` with a replicator of class `Engine` (loaded on demand) until the returned function is called. */
  private replicate (Engine: typeof Replicator, lease: NetworkLease, replication: ReplicatorOptions): () => void {
    this.lease = lease
    const transport = lease.transport
    const replicator = new Engine(this.replica, transport, replication)
    this.replicator = replicator
    replicator.start()
    this.presence.attach(transport)
    // Emit 'peers' whenever the list or how a peer is connected changes. Connection events can
    // precede the connection manager's bookkeeping, so the view is also re-checked every second.
    let last = ''
    let known = new Set<string>()
    const refreshPeers = (): void => {
      if (this.closed) return
      const peers = this.peers()
      const key = JSON.stringify(peers)
      if (key === last) return
      last = key
      const now = new Set(peers.map(p => p.id))
      for (const p of peers) if (!known.has(p.id)) this.emit('peer:join', p)
      for (const id of known) if (!now.has(id)) this.emit('peer:leave', id)
      known = now
      this.emit('peers', peers)
    }
    // After every reconnect (a relay reservation gained), heads go out at once both ways: ours are
    // published, and peers that hear them answer with theirs (see `Replicator.reconnected`).
    let reserved = 0
    const onNetwork = (state: NetworkState): void => {
      if (this.closed) return
      if (state.reserved > reserved || (state.status === 'online' && this.status !== 'online')) replicator.reconnected()
      reserved = state.reserved
      this.network = state
      this.setStatus(state.status, state.status === 'online' || state.error === null ? undefined : new NetworkError(state.error), true)
    }
    const timer = setInterval(refreshPeers, 1000)
    let kept = false
    const keeping = replicator.keeping
    const offs = [
      keeping?.onChange(() => {
        if (this.closed || keeping.kept === kept) return
        kept = keeping.kept
        this.emit('kept', kept)
      }) ?? (() => {}),
      keeping?.onError(err => { this.emit('error', err) }) ?? (() => {}),
      () => { clearInterval(timer) },
      replicator.onPeers(refreshPeers),
      replicator.onProgress(p => { this.emit('sync:progress', p) }),
      replicator.onPreview(p => { this.onPreview(p) }),
      replicator.onError(err => { this.emit('error', err) }),
      transport.onConnectionChange?.(() => { refreshPeers(); setTimeout(refreshPeers, 100) }) ?? (() => {}),
      transport.onNetworkChange?.(onNetwork) ?? (() => {}),
      this.announcing ? startAnnouncing(transport, async () => await this.announcement(), this.replica.key) : () => {}
    ]
    onNetwork(transport.networkState?.() ?? { status: 'online', nextAttemptAt: null, reserved: 0, connectedPeers: 0, relays: [], error: null })
    return () => {
      this.presence.close()
      for (const off of offs) off()
      replicator.stop()
      if (this.replicator === replicator) this.replicator = undefined
      if (this.lease === lease) this.lease = undefined
    }
  }

  /** Another tab applied a block: read what it changed from the shared storage and report it as ours. */
  private async onTabMessage (msg: TabMessage): Promise<void> {
    if (this.closed) return
    this.replica.refresh()
    const byColl = new Map<string, string[]>()
    for (const k of msg.keys) {
      let ids = byColl.get(k.coll)
      if (ids === undefined) byColl.set(k.coll, ids = [])
      ids.push(k.id)
    }
    const changes: DocChange[] = []
    try {
      for (const [coll, ids] of byColl) {
        const docs = await this.storage.getDocsById(coll, ids)
        ids.forEach((id, i) => { changes.push({ coll, id, before: null, after: docs[i] ?? null }) })
      }
    } catch (err) {
      if (!this.closed) log.warn('cannot read the documents another tab changed', err)
      return
    }
    if (this.closed) return
    this.onChanges({ changes, collections: msg.collections }, msg.origin)
  }

  /**
   * What `announce: true` publishes. An encrypted database's announcement is sealed with its key
   * (`startAnnouncing` is given it), so its address and collection names reach key holders only.
   */
  private async announcement (): Promise<Announcement> {
    return { address: this.address, collections: await this.listCollections(), relays: this.relays }
  }
}
