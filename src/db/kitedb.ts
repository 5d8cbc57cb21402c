/**
 * `KiteDB`: the entry point. Creates, reopens and joins databases, and discovers a peer's shared
 * database from its peer id.
 */
import { DatabaseExistsError, InvalidAddressError, NotFoundError, TimeoutError, ValidationError } from '../errors.js'
import { type Manifest, decodeManifest, encodeManifest, formatAddress, parseAddress } from '../crdt/index.js'
import { DexieStorageProvider, MemoryStorageProvider, type StorageProvider } from '../store/index.js'
import { Replica, randomHex, resolveLimits, type LimitsOptions, type ReplicatorOptions, type Transport } from '../sync/index.js'
import { type AcquireOptions, acquireNetwork, claimIdentity, parseRelays } from '../net/index.js'
import { type Announcement, announceTopic, decodeAnnouncement } from './announce.js'
import { Database } from './database.js'

/** Options of `KiteDB.init` and `KiteDB.open`. */
export interface OpenOptions {
  /** relay multiaddr(s), each ending in `/p2p/<relay-peer-id>`; without relays the database is local-only */
  relays?: string | string[]
  /** `false`: local-only even if relays are given (default: replicate when relays are given) */
  network?: boolean
  /**
   * Where data lives: `'indexeddb'` (the default where `indexedDB` exists), `'memory'` (the
   * default elsewhere; kept for the life of the page/process), or your own `StorageProvider`.
   */
  storage?: 'indexeddb' | 'memory' | StorageProvider
  /** replication tuning (intervals, batch sizes, timeouts) */
  replication?: ReplicatorOptions
  /**
   * Name of the libp2p node to use: databases opened with the same `node` and relays share one
   * node (default `'default'`). Different names run independent peers in one page or process.
   */
  node?: string
  /**
   * false: talk to peers only through the relays, never over direct WebRTC connections (where
   * WebRTC is blocked, or to keep peers' IP addresses from each other). Default true.
   */
  directConnections?: boolean
  /**
   * Per-peer limits on network input (see `Limits` and the README's limits table): `requestsPerSecond`
   * (default 50) and `requestBurst` (100) of stream requests per peer; `messagesPerSecond` (100) and
   * `messageBurst` (200) of gossip messages per peer and topic; a peer refused `maxRefusals` (100)
   * times within `refusalWindowMs` (10000 ms) is disconnected and refused for `banMs` (60000 ms).
   * The size limits (block 1 MiB, message 4 MiB, 1000 CIDs per request) are protocol constants.
   * Throws `ValidationError` for an unknown key or a non-positive value. Ignored with `transport`.
   */
  limits?: LimitsOptions
  /**
   * Replicate over this transport instead of libp2p (`relays` and `node` are then ignored): for
   * custom networks and tests. The transport stays open when the database closes.
   */
  transport?: Transport
}

/** Options of `KiteDB.discover`. */
export interface DiscoverOptions {
  /** relay multiaddr(s) through which the peer is reachable (required) */
  relays: string | string[]
  /** give up after this many ms (default 15000) */
  timeoutMs?: number
  /** libp2p node name, as in `OpenOptions.node` */
  node?: string
  /** as in `OpenOptions.directConnections` */
  directConnections?: boolean
  /** as in `OpenOptions.limits` */
  limits?: LimitsOptions
  /** where the device identity is kept, as in `OpenOptions.storage` */
  storage?: OpenOptions['storage']
}

const MANIFEST_KEY = 'manifest'
/** Databases open in this page/process, and the storage provider each was opened with. */
const openDatabases = new Set<Database>()
const openedWith = new WeakMap<Database, StorageProvider>()
let memoryProvider: MemoryStorageProvider | undefined
let indexedDbProvider: DexieStorageProvider | undefined

function providerFor (storage: OpenOptions['storage']): StorageProvider {
  if (storage !== undefined && typeof storage === 'object') return storage
  const kind = storage ?? (typeof globalThis.indexedDB !== 'undefined' ? 'indexeddb' : 'memory')
  if (kind === 'memory') return (memoryProvider ??= new MemoryStorageProvider())
  if (kind === 'indexeddb') {
    if (typeof globalThis.indexedDB === 'undefined') throw new ValidationError("storage 'indexeddb' needs IndexedDB (in Node, import 'fake-indexeddb/auto' first)")
    return (indexedDbProvider ??= new DexieStorageProvider())
  }
  throw new ValidationError(`unknown storage ${JSON.stringify(storage)}: use 'indexeddb', 'memory' or a StorageProvider`)
}

/** Network options, with the device identity of the node (kept by the storage provider, so it survives reloads). */
function networkOptions (options: Pick<OpenOptions, 'node' | 'directConnections' | 'limits' | 'storage'>): AcquireOptions {
  const provider = providerFor(options.storage)
  return {
    ...(options.node !== undefined ? { node: options.node } : {}),
    ...(options.directConnections !== undefined ? { directConnections: options.directConnections } : {}),
    ...(options.limits !== undefined ? { limits: options.limits } : {}),
    identity: async () => await claimIdentity(provider, options.node ?? 'default')
  }
}

function relayList (options: OpenOptions): string[] {
  if (options.network === false || options.relays === undefined) return []
  const list = typeof options.relays === 'string' ? [options.relays] : options.relays
  parseRelays(list) // throws ValidationError for a bad multiaddr, before anything is opened
  resolveLimits(options.limits) // and for bad limits
  return list
}

/** Static entry points, after AvionDB's `AvionDB.init` / `AvionDB.open`. */
export class KiteDB {
  private constructor () {}

  /**
   * Create the database `name`, or reopen it if this device already has one of that name.
   * Resolves once it is open locally; replication (when `relays` are given) starts in the
   * background. Throws `ValidationError` for a bad name or option.
   */
  static async init (name: string, options: OpenOptions = {}): Promise<Database> {
    if (typeof name !== 'string' || name.length === 0 || name.length > 256) throw new ValidationError('a database name must be a non-empty string of at most 256 characters')
    const provider = providerFor(options.storage)
    const relays = relayList(options)
    let address = await provider.lookupName(name)
    let manifestBytes: Uint8Array | undefined
    if (address === undefined) {
      const manifest: Manifest = { v: 1, name, created: Date.now(), nonce: randomHex(8) }
      const encoded = encodeManifest(manifest)
      address = encoded.address
      manifestBytes = encoded.bytes
    }
    const db = await openAddress(provider, address, relays, options, manifestBytes)
    if (manifestBytes !== undefined) await provider.registerName(name, address)
    return db
  }

  /**
   * Create a new database `name`; throws `DatabaseExistsError` if this device already has one of
   * that name (use `init` to create or reopen).
   */
  static async create (name: string, options: OpenOptions = {}): Promise<Database> {
    if (await providerFor(options.storage).lookupName(name) !== undefined) throw new DatabaseExistsError(name)
    return await KiteDB.init(name, options)
  }

  /**
   * Delete this device's replica of a database, by local name or address: closes it where it is
   * open in this page/process, then removes its local data (other replicas keep theirs). Throws
   * `NotFoundError` for a name this device does not know.
   */
  static async drop (nameOrAddress: string, options: Pick<OpenOptions, 'storage'> = {}): Promise<void> {
    const provider = providerFor(options.storage)
    let address: string
    try {
      address = formatAddress(parseAddress(nameOrAddress))
    } catch (err) {
      if (!(err instanceof InvalidAddressError)) throw err
      const found = await provider.lookupName(nameOrAddress)
      if (found === undefined) throw new NotFoundError(`no database named "${nameOrAddress}" on this device`)
      address = found
    }
    for (const db of [...openDatabases]) {
      if (db.address === address && openedWith.get(db) === provider) await db.close()
    }
    await provider.destroy(parseAddress(address).toString())
    for (const { name, address: a } of await provider.listNames()) if (a === address) await provider.unregisterName(name)
  }

  /**
   * Open the database at `address` (`/kite/<cid>`), e.g. from a share link: reopens the local
   * replica if there is one, else starts an empty one that fills as it syncs. Throws
   * `InvalidAddressError` for a malformed address.
   */
  static async open (address: string, options: OpenOptions = {}): Promise<Database> {
    const canonical = formatAddress(parseAddress(address))
    return await openAddress(providerFor(options.storage), canonical, relayList(options), options)
  }

  /**
   * Names and addresses of the databases created on this device with `init`, for a storage kind.
   */
  static async listDatabases (options: Pick<OpenOptions, 'storage'> = {}): Promise<Array<{ name: string, address: string }>> {
    return await providerFor(options.storage).listNames()
  }

  /**
   * Learn what database the peer `peerId` shares: resolves with its announcement
   * `{address, collections, relays}`. Rejects with `TimeoutError` when the peer does not announce
   * within `timeoutMs`, `NetworkError` when no relay can be reached.
   */
  static async discover (peerId: string, options: DiscoverOptions): Promise<Announcement> {
    if (typeof peerId !== 'string' || peerId.length === 0) throw new ValidationError('discover takes a peer id string')
    const relays = typeof options.relays === 'string' ? [options.relays] : options.relays
    const timeoutMs = options.timeoutMs ?? 15_000
    const lease = await acquireNetwork(relays, networkOptions(options))
    try {
      return await new Promise<Announcement>((resolve, reject) => {
        const timer = setTimeout(() => { off(); reject(new TimeoutError(`peer ${peerId} announced nothing within ${timeoutMs} ms`)) }, timeoutMs)
        const off = lease.transport.subscribe(announceTopic(peerId), (data, from) => {
          if (from !== peerId) return
          try {
            const a = decodeAnnouncement(data)
            clearTimeout(timer)
            off()
            resolve(a)
          } catch {}
        })
      })
    } finally {
      // Keep the node a little longer: the caller usually opens the database next.
      setTimeout(() => { void lease.release() }, 10_000)
    }
  }
}

async function openAddress (provider: StorageProvider, address: string, relays: string[], options: OpenOptions, manifestBytes?: Uint8Array): Promise<Database> {
  const cid = parseAddress(address)
  const dbId = cid.toString()
  const storage = await provider.open(dbId)
  if (manifestBytes !== undefined) await storage.setMeta(MANIFEST_KEY, manifestBytes)
  let name = address
  const stored = await storage.getMeta<Uint8Array>(MANIFEST_KEY)
  if (stored !== undefined) {
    try {
      name = decodeManifest(stored, cid).name
    } catch (err) {
      throw new NotFoundError(`the stored manifest of ${address} is corrupt: ${(err as Error).message}`)
    }
  }
  const replica = await Replica.open(storage, dbId)
  const db = new Database({
    name,
    address,
    storage,
    replica,
    ...(options.transport !== undefined
      ? { connect: async () => ({ transport: options.transport as Transport, relays: [], release: async () => {} }) }
      : relays.length > 0 ? { connect: async () => await acquireNetwork(relays, networkOptions(options)) } : {}),
    ...(options.replication !== undefined ? { replication: options.replication } : {}),
    onClose: () => { openDatabases.delete(db) }
  })
  openDatabases.add(db)
  openedWith.set(db, provider)
  return db
}
