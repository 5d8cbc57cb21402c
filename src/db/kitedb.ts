/**
 * `KiteDB`: the entry point. Creates, reopens and joins databases, and discovers a peer's shared
 * database from its peer id.
 *
 * One piece, though over 400 lines: every entry point runs one open sequence (`beginOpen`,
 * `openAddress`) whose steps overlap on purpose — storage, the device key, the name registry and
 * the network node start together, and a reopen by name skips the registry when the database's
 * record of its last open stands in for it (opened-as.ts; docs/design.md, "Storage" and "Staying
 * connected") — and each must release what the others started when one fails.
 */
import { type CID } from 'multiformats/cid'
import { DatabaseExistsError, InvalidAddressError, NotFoundError, TimeoutError, ValidationError } from '../errors.js'
import {
  type Manifest, type Signer, createManifest, decodeManifestAsync, encodeManifest, formatAddress, formatPublicKey, generateKey,
  manifestName, parseAddress, parseKey, signerFromSeed
} from '../crdt/index.js'
import { DexieStorageProvider, MemoryStorageProvider, type Storage, type StorageProvider, loadDeviceKeyPair } from '../store/index.js'
import { MANIFEST_KEY, Replica, resolveLimits, type LimitsOptions, type ReplicatorOptions, type Transport } from '../sync/index.js'
import { type AcquireOptions } from '../net/index.js'
import { type Announcement, announceTopic, decodeAnnouncement, isSealedAnnouncement } from './announce.js'
import { Database } from './database.js'
import { OPENED_AS_KEY, type OpenedAs, deferredSigner, parseOpenedAs } from './opened-as.js'

/** Options of `KiteDB.init` and `KiteDB.open`. */
export interface OpenOptions {
  /** relay multiaddr(s), each ending in `/p2p/<relay-peer-id>`; without relays (or an empty list) the database is local-only */
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
   * STUN/TURN servers for WebRTC (`RTCIceServer`s), for devices on different networks whose host
   * addresses cannot reach each other (a NAT): e.g. `[{ urls: 'stun:stun.example.org:3478' }, {
   * urls: 'turn:turn.example.org:3478', username: 'kite', credential: 'secret' }]`. Default none:
   * direct connections within one network; where none can be made, peers sync through the relays.
   */
  iceServers?: RTCIceServer[]
  /**
   * `init`, when it creates the database: who may write, fixed in the manifest for good (OrbitDB's
   * immutable access controller). `write` lists writers' public keys (see `KiteDB.publicKey`), or
   * is `['*']` for anyone who can read (of an encrypted database: anyone holding its link; of a
   * plain one: anyone at all). Default: only this device, encrypted or not — a link then lets
   * others read, not write. Ignored when the database already exists.
   */
  access?: { write: string[] }
  /**
   * `init`, when it creates the database: whether to encrypt it (XChaCha20-Poly1305) with a new
   * random 256-bit key. Default `true`: the key travels only in share links' fragments, and relays
   * and peers without it see ciphertext. `false` makes a PUBLIC database: anyone who learns its
   * address (every relay it goes through learns it) can read all of it. Ignored when the database
   * already exists.
   */
  encrypt?: boolean
  /**
   * Publish this database's address (with its collection names and relays) on this node's
   * announce topic, so that `KiteDB.discover(peerId)` finds it from the peer id alone. Default
   * `false`: nothing is announced. An encrypted database's announcement is sealed with its key:
   * only those who hold the key (a link) can read it and find the database.
   */
  announce?: boolean
  /**
   * `open`: the key of an encrypted database (43 characters of base64url, the `key` of its share
   * link). Kept in local storage, so later opens need not repeat it. A wrong key throws
   * `AccessError` (at once when the manifest is known here, else replication stops with an
   * `error` event when it arrives).
   */
  key?: string | Uint8Array
  /**
   * Per-peer limits on network input (see `Limits` and docs/api.md, "Limits on network input"):
   * `requestsPerSecond` (default 50) and `requestBurst` (100) of stream requests per peer; `messagesPerSecond` (100) and
   * `messageBurst` (200) of gossip messages per peer and topic; a peer refused `maxRefusals` (100)
   * times within `refusalWindowMs` (10000 ms) is disconnected and refused for `banMs` (60000 ms);
   * streams, answer bytes, wanted blocks and snapshot builds per peer (`streamsPerPeer`,
   * `requestReadMs`, `responseDrainMs`, `answerBytesPerSecond`, `answerBurstBytes`,
   * `maxWantsPerPeer`, `maxWants`, `snapshotBuildPerPeerMs`). The size limits (block 1 MiB,
   * message 4 MiB, 1000 CIDs per request, 64 parents per block) are protocol constants.
   * Throws `ValidationError` for an unknown key or a non-positive value. With `transport`, the
   * limits are that transport's (`Transport.limits`).
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
  /**
   * the key of the encrypted database to find (a link's `key`): its sealed announcement is opened
   * with it. Without a key, only plain (public) databases' announcements are read.
   */
  key?: string | Uint8Array
}

/** Storage meta key of an encrypted database's key. */
const DB_KEY = 'key'
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

/**
 * The network layer (libp2p and all of src/net), loaded the first time a database opens with
 * relays, so a local-only app never loads it (docs/design.md, "Rooms").
 */
async function network (): Promise<typeof import('../net/index.js')> {
  return await import('../net/index.js')
}

/** Network options, with the device identity of the node (kept by the storage provider, so it survives reloads). */
function networkOptions (net: typeof import('../net/index.js'), options: Pick<OpenOptions, 'node' | 'directConnections' | 'limits' | 'storage' | 'iceServers'>): AcquireOptions {
  const provider = providerFor(options.storage)
  return {
    ...(options.node !== undefined ? { node: options.node } : {}),
    ...(options.directConnections !== undefined ? { directConnections: options.directConnections } : {}),
    ...(options.limits !== undefined ? { limits: options.limits } : {}),
    ...(options.iceServers !== undefined ? { iceServers: options.iceServers } : {}),
    identity: async () => await net.claimIdentity(provider, options.node ?? 'default')
  }
}

/** The relays of `options` (empty: local-only). Throws `ValidationError` for a bad multiaddr or bad limits, before anything is opened. */
async function relayList (options: OpenOptions): Promise<string[]> {
  if (options.network === false || options.relays === undefined) return []
  const list = typeof options.relays === 'string' ? [options.relays] : options.relays
  if (Array.isArray(list) && list.length === 0) return [] // no relays: local-only
  ;(await network()).parseRelays(list)
  resolveLimits(options.limits)
  return list
}

/** The device's block signer for a node name: its persistent Ed25519 key (see src/store/device-key.ts). */
async function deviceSigner (options: Pick<OpenOptions, 'node' | 'storage'>): Promise<Signer> {
  const { seed, publicKey } = await loadDeviceKeyPair(providerFor(options.storage), options.node ?? 'default')
  return signerFromSeed(seed, publicKey)
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
    const node = options.node ?? 'default'
    // Read before the registry: a record of this open is valid for this token (opened-as.ts).
    const gen = provider.registryGeneration?.()
    // With the provider's hint of the address, that database opens first. When it remembers
    // being opened under this name with the registry as it still is, the registry is not opened
    // at all; else it is read, at once when there is no such record to look for (two IndexedDB
    // opens at once, not one after the other; docs/design.md, "Storage"). A stale hint's opening
    // is dropped.
    const guess = guessAddress(provider, name)
    let early = guess === undefined ? undefined : beginOpen(provider, guess.cid)
    let relays: string[]
    let found: string | undefined
    let signer: Signer
    let record: OpenedAs | undefined
    try {
      const listed = relayList(options)
      listed.catch(() => {}) // awaited below
      const remembered = early !== undefined && gen !== undefined ? await early.reads.then(r => r[3], () => undefined) : undefined
      if (guess !== undefined && remembered !== undefined && remembered.gen === gen && remembered.name === name && remembered.node === node) {
        found = guess.address
        signer = deferredSigner(remembered.publicKey, async () => await deviceSigner(options))
        relays = await listed
      } else {
        [relays, found, signer] = await Promise.all([listed, provider.lookupName(name), deviceSigner(options)])
        if (gen !== undefined) record = { gen, name, node, publicKey: signer.publicKey }
      }
    } catch (err) {
      if (early !== undefined) abandon(early)
      throw err
    }
    if (early !== undefined && found !== guess?.address) {
      abandon(early)
      early = undefined
    }
    let cid = found === undefined ? undefined : found === guess?.address ? guess.cid : parseAddress(found)
    let created: { bytes: Uint8Array, key?: Uint8Array } | undefined
    if (cid === undefined) {
      // Encrypted unless asked not to; only this device writes unless told otherwise.
      const key = options.encrypt === false ? undefined : generateKey()
      const write = options.access?.write ?? [formatPublicKey(signer.publicKey)]
      const encoded = encodeManifest(createManifest(name, write, key))
      cid = encoded.cid
      created = { bytes: encoded.bytes, ...(key !== undefined ? { key } : {}) }
    }
    // A database made here is registered after it opens: the registry moves on then, so there is
    // nothing yet to remember (its next open reads the registry and remembers that).
    const db = await openAddress(provider, cid, relays, options, signer, early ?? beginOpen(provider, cid, created), created === undefined ? record : undefined)
    if (created !== undefined) await provider.registerName(name, formatAddress(cid))
    return db
  }

  /**
   * This device's public key (`z…` base58btc), the writer key its blocks are signed with: put it
   * in another database's `access.write` to let this device write there.
   */
  static async publicKey (options: Pick<OpenOptions, 'node' | 'storage'> = {}): Promise<string> {
    return formatPublicKey((await deviceSigner(options)).publicKey)
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
    const cid = parseAddress(address)
    const provider = providerFor(options.storage)
    // the database opens while the device key is read (two IndexedDB opens at once)
    const opening = beginOpen(provider, cid)
    let relays: string[]
    let signer: Signer
    try {
      [relays, signer] = await Promise.all([relayList(options), deviceSigner(options)])
    } catch (err) {
      abandon(opening)
      throw err
    }
    return await openAddress(provider, cid, relays, options, signer, opening)
  }

  /**
   * Ask the browser to keep this origin's storage (`navigator.storage.persist()`): without it, a
   * browser short of disk may evict the origin's IndexedDB, and with it every local-only change.
   * Resolves with the answer (browsers decide: Chromium grants it to installed or much-used
   * sites, Firefox asks the user), `false` where the API is missing (Node, insecure origins).
   */
  static async persist (): Promise<boolean> {
    const storage = (globalThis as { navigator?: { storage?: { persist?: () => Promise<boolean> } } }).navigator?.storage
    if (typeof storage?.persist !== 'function') return false
    try { return await storage.persist() } catch { return false }
  }

  /**
   * Names and addresses of the databases created on this device with `init`, for a storage kind.
   */
  static async listDatabases (options: Pick<OpenOptions, 'storage'> = {}): Promise<Array<{ name: string, address: string }>> {
    return await providerFor(options.storage).listNames()
  }

  /**
   * Learn what database the peer `peerId` announces (see `OpenOptions.announce`): resolves with
   * its announcement `{address, collections, relays}` — with `options.key`, that of the encrypted
   * database the key opens; without, that of a plain database. Rejects with `TimeoutError` when
   * the peer announces no such database within `timeoutMs`, `NetworkError` when no relay can be
   * reached, `ValidationError` for a malformed key.
   */
  static async discover (peerId: string, options: DiscoverOptions): Promise<Announcement> {
    if (typeof peerId !== 'string' || peerId.length === 0) throw new ValidationError('discover takes a peer id string')
    let key: Uint8Array | undefined
    try {
      key = options.key === undefined ? undefined : parseKey(options.key)
    } catch (err) {
      throw new ValidationError(`discover: the key is malformed: ${(err as Error).message}`, { cause: err })
    }
    const relays = typeof options.relays === 'string' ? [options.relays] : options.relays
    const timeoutMs = options.timeoutMs ?? 15_000
    const net = await network()
    const lease = await net.acquireNetwork(relays, networkOptions(net, options))
    try {
      return await new Promise<Announcement>((resolve, reject) => {
        const timer = setTimeout(() => { off(); reject(new TimeoutError(`peer ${peerId} announced nothing within ${timeoutMs} ms`)) }, timeoutMs)
        const off = lease.transport.subscribe(announceTopic(peerId), (data, from) => {
          if (from !== peerId) return
          // With a key, only the sealed announcement it opens; without, only a plain one.
          if (isSealedAnnouncement(data) !== (key !== undefined)) return
          try {
            const a = decodeAnnouncement(data, key === undefined ? undefined : { key, peerId })
            clearTimeout(timer)
            off()
            resolve(a)
          } catch { /* not a valid announcement from that peer: wait for one */ }
        })
      })
    } finally {
      // Keep the node a little longer: the caller usually opens the database next.
      setTimeout(() => { void lease.release() }, 10_000)
    }
  }
}

/** A database's storage being opened, and its first reads under way (`beginOpen`). */
interface Opening {
  storage: Promise<Storage>
  /**
   * the saved key, the stored manifest (`null`: none stored; an `Error`: the stored bytes are not
   * this database's manifest), the replica id, the record of its last open by name (opened-as.ts)
   */
  reads: Promise<[Uint8Array | undefined, Manifest | Error | null, string, OpenedAs | undefined]>
}

/** The address the provider remembers for `name` without a round trip, if any and well-formed, with its CID. */
function guessAddress (provider: StorageProvider, name: string): { address: string, cid: CID } | undefined {
  const address = provider.guessName?.(name)
  if (address === undefined) return undefined
  try {
    const cid = parseAddress(address)
    return formatAddress(cid) === address ? { address, cid } : undefined
  } catch { return undefined }
}

/**
 * Open the storage of the database `cid` (its address's CID) and send its first reads (the saved
 * key, the manifest, the replica id) together, each one IndexedDB round trip; `created`: the
 * manifest (and key) of a database `init` just made, written first. Not awaited here, so they can
 * run beside other reads. The stored manifest is decoded and checked against `cid` as soon as it
 * is read, hashed by the platform (`decodeManifestAsync`): hashed in JavaScript, in a reloaded page
 * that took 0.3–0.4 ms of the open's critical path.
 */
function beginOpen (provider: StorageProvider, cid: CID, created?: { bytes: Uint8Array, key?: Uint8Array }): Opening {
  const storage = provider.open(cid.toString())
  const reads = storage.then(async s => {
    if (created !== undefined) {
      await s.setMeta(MANIFEST_KEY, created.bytes)
      if (created.key !== undefined) await s.setMeta(DB_KEY, created.key)
    }
    const manifest = s.getMeta<Uint8Array>(MANIFEST_KEY).then(async bytes => {
      if (bytes === undefined) return null
      try { return await decodeManifestAsync(bytes, cid) } catch (err) { return err as Error }
    })
    return await Promise.all([s.getMeta<Uint8Array>(DB_KEY), manifest, Replica.loadId(s), s.getMeta(OPENED_AS_KEY).then(parseOpenedAs)])
  })
  // an opening may be abandoned before anyone awaits its reads (see `abandon`)
  reads.catch(() => {})
  return { storage, reads }
}

/**
 * Close the storage of an opening that is not used after all (a stale name hint) once its reads
 * are done, whatever they did; not awaited, so an opening that waits (a blocked IndexedDB
 * upgrade) never holds up the open that goes on without it.
 */
function abandon (opening: Opening): void {
  void opening.reads.catch(() => {}).then(async () => { await (await opening.storage.catch(() => undefined))?.close() })
}

/**
 * Open the local replica of the database `cid` (its address's CID), signing as `signer`, from
 * `opening` (its storage and first reads); `record`: what to remember of this open by name, saved
 * once the replica opened (opened-as.ts).
 */
async function openAddress (provider: StorageProvider, cid: CID, relays: string[], options: OpenOptions, signer: Signer,
  opening: Opening, record?: OpenedAs): Promise<Database> {
  const address = formatAddress(cid)
  const dbId = cid.toString()
  // The network node starts while the replica opens: the Database's first connect takes this lease.
  let earlyLease = relays.length > 0 && options.transport === undefined
    ? network().then(async net => await net.acquireNetwork(relays, networkOptions(net, options)))
    : undefined
  earlyLease?.catch(() => {}) // a failure is the first connect's to report
  const releaseEarly = (): void => { void earlyLease?.then(async lease => { await lease.release() }, () => {}) }
  const storage = await opening.storage.catch((err: unknown) => { releaseEarly(); throw err })
  try {
    const given = options.key !== undefined ? parseKey(options.key) : undefined
    const [savedKey, manifest, replicaId] = await opening.reads
    const key = given ?? savedKey
    if (manifest instanceof Error) throw new NotFoundError(`the stored manifest of ${address} is corrupt: ${manifest.message}`)
    // Throws AccessError for a key that does not fit a known manifest, before anything is kept.
    const replica = await Replica.open(storage, dbId, { signer, manifest, replicaId, ...(key !== undefined ? { key } : {}) })
    if (given !== undefined) await storage.setMeta(DB_KEY, given)
    if (record !== undefined) await storage.setMeta(OPENED_AS_KEY, record)
    const db = new Database({
      name: manifest === null ? address : manifestName(manifest, key),
      address,
      storage,
      replica,
      ...(options.transport !== undefined
        ? { connect: async () => ({ transport: options.transport as Transport, relays: [], replaced: new Promise<void>(() => {}), release: async () => {} }) }
        : relays.length > 0
          ? {
              connect: async () => {
                const net = await network()
                const started = earlyLease
                earlyLease = undefined
                const lease = await started ?? await net.acquireNetwork(relays, networkOptions(net, options))
                return { ...lease, devicePeerId: await net.devicePeerId(provider, options.node ?? 'default') }
              }
            }
          : {}),
      ...(options.replication !== undefined ? { replication: options.replication } : {}),
      ...(provider.channel !== undefined ? { tabChannel: `${provider.kind}:${provider.channel}` } : {}),
      announce: options.announce === true,
      onClose: () => { openDatabases.delete(db) }
    })
    openDatabases.add(db)
    openedWith.set(db, provider)
    return db
  } catch (err) {
    releaseEarly()
    await storage.close()
    throw err
  }
}
