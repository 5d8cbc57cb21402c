/**
 * A replica's block log: creates local blocks and applies local and remote blocks to storage,
 * one at a time, each in one storage transaction (go-ds-crdt's `crdt.go` loop, minus the network).
 * The merges it hands the storage are crdt/fold.ts's pure steps.
 *
 * One piece, though over 400 lines: every write to the replica's storage — a local block, a
 * remote one, a chunk, a snapshot install, a repair — goes through its one write queue, and
 * moves the clock and the heads it caches.
 */
import { AccessError, ClockSkewError, InvalidBlockError, StorageFullError, isQuotaError } from '../errors.js'
import {
  type CID, type CollState, type Doc, type DocState, type EncodedBlock, type Manifest, type Op, type Signer, HybridClock, MAX_PARENTS,
  applyBlockOps, asCid, assembleOps, checkKey, cidOf, decode, decodeBlock, decodeChunk, decodeManifestAsync, encode, encodeBlock,
  formatPublicKey, generateSigner, joinSnapshotStates, linkKeyOf, linkSigner, mayWrite, parseCid, readBlockHeader, touchedBy,
  type OpenOptions as BlockOpenOptions
} from '../crdt/index.js'
import { type DocChange, type DocKey, type InstallSnapshotInput, type InstallSnapshotParts, type MergeInput, type MergeOutput, type Storage, docKey, fillBefore } from '../store/index.js'
import { createLogger } from '../log.js'

const log = createLogger('sync')

/** Where a change came from. */
export type ChangeOrigin = 'local' | 'remote'

/**
 * A check of a local write against the documents as they are just before it, inside the block's
 * transaction (by `docKey`: the document, or `null` when absent). Throwing aborts the write.
 */
export type BeforeCheck = (before: Map<string, Doc | null>) => void

/** What one applied block changed. */
export interface ChangeSet {
  /** documents whose materialised value changed */
  changes: DocChange[]
  /** collections that came into existence or were dropped */
  collections: string[]
}

/** Listener of changes; called after the block's transaction committed. */
export type ChangeListener = (change: ChangeSet, origin: ChangeOrigin) => void

/** Result of applying one block. */
export interface Applied {
  cid: CID
  bytes: Uint8Array
  /** false when the block was already stored */
  applied: boolean
  changes: DocChange[]
  /** collections that came into existence or were dropped */
  collections: string[]
  /** the block's parents */
  parents: CID[]
  /** chunks the block waits for (it is held until they arrive, then applied); absent when applied */
  missingChunks?: CID[]
}

/** A verified snapshot, ready to install (`fetchSnapshot`, snapshot/fetch.ts, fetches, verifies and assembles it). */
export interface SnapshotContent {
  /** CID string of the snapshot's root */
  root: string
  /** the states of its documents, in (collection, id) order */
  docs: Array<DocKey & { state: DocState }>
  /** the states of its collections */
  colls: Array<{ coll: string, state: CollState }>
  /** CID strings of every block at or below its heads, heads included */
  covered: string[]
  /** its head blocks, each with its chunks */
  heads: EncodedBlock[]
}

/**
 * A snapshot whose pages arrive over time, for `Replica.installSnapshot`: `next` resolves each
 * page's states in turn (any order), then `end`, the whole snapshot (its documents and collection
 * states already given by the pages); it rejects when the snapshot fails.
 */
export interface SnapshotStream {
  next: () => Promise<{ page: Pick<SnapshotContent, 'docs' | 'colls'> } | { end: SnapshotContent }>
}

const REPLICA_ID_KEY = 'replicaId'
/** Meta key of the manifest's bytes. */
export const MANIFEST_KEY = 'manifest'

/** Who this replica writes as, and what it accepts. */
export interface ReplicaOptions {
  /** signs this replica's blocks (default: a fresh random key, for tests and throwaway replicas) */
  signer?: Signer
  /** the database key of an encrypted database */
  key?: Uint8Array
  /**
   * The database's manifest: remote blocks are accepted only from its writers, and local writes
   * only when the signer is one. `null`: not known yet (a replica that joined by address), so
   * nothing is accepted or written until `setManifest`. Omitted: any correctly signed block is
   * accepted (for tests of the engine; `KiteDB` always passes one).
   */
  manifest?: Manifest | null
  /** the wall clock, ms since the epoch (default `Date.now`; injectable for tests) */
  now?: () => number
  /** the replica id `Replica.loadId` gave for this storage (read by `open` when omitted) */
  replicaId?: string
}
const SNAPSHOT_KEY = 'snapshot'
const HEADSET_PREFIX = 'headset:'

/** Decode a headset (a dag-cbor list of CIDs) that must hash to `hash`. Throws `InvalidBlockError`. */
function decodeHeadset (bytes: Uint8Array, hash: string): string[] {
  if (cidOf(bytes).toString() !== hash) throw new InvalidBlockError('headset bytes do not match its CID')
  let list: unknown
  try { list = decode(bytes) } catch (err) { throw new InvalidBlockError('headset is not dag-cbor', { cause: err }) }
  if (!Array.isArray(list) || list.length > 1024) throw new InvalidBlockError('not a headset')
  return list.map(c => {
    const cid = asCid(c)
    if (cid === undefined) throw new InvalidBlockError('headset holds a non-CID')
    return cid.toString()
  })
}

/** `write`, with a storage quota error turned into `StorageFullError` (the transaction wrote nothing). */
async function storageFull<T> (write: Promise<T>): Promise<T> {
  try {
    return await write
  } catch (err) {
    if (isQuotaError(err)) throw new StorageFullError(undefined, { cause: err })
    throw err
  }
}

/** Random hex string of `bytes` bytes from the platform CSPRNG. */
export function randomHex (bytes: number): string {
  const buf = new Uint8Array(bytes)
  globalThis.crypto.getRandomValues(buf)
  return Array.from(buf, b => b.toString(16).padStart(2, '0')).join('')
}

/** The block log of one database in one storage. */
export class Replica {
  /** manifest CID string of the database */
  readonly dbId: string
  readonly storage: Storage
  readonly clock: HybridClock
  private queue: Promise<void> = Promise.resolve()
  private readonly listeners = new Set<ChangeListener>()
  /** received blocks waiting for chunks, by CID string (in memory: after a reload they are fetched again) */
  private readonly pending = new Map<string, EncodedBlock>()
  /**
   * The heads as of the last block this replica applied (storage stays authoritative; a stale copy,
   * as another tab writing the same database could cause, only gives a new block fewer parents)
   */
  private headsCache?: string[]
  /** set on open and by `refresh`: the clock must observe the stored heads before the next local block */
  private headsMoved = false
  readonly signer: Signer
  /** the database key, when it is encrypted */
  readonly key?: Uint8Array
  private manifestValue: Manifest | null | undefined
  private readonly manifestListeners = new Set<(m: Manifest) => void>()
  /** set by `close`: what later writes reject with */
  private closedBy?: Error
  /** writes waiting for the manifest, rejected by `close` */
  private readonly closeWaiters = new Set<(err: Error) => void>()

  private constructor (storage: Storage, dbId: string, clock: HybridClock, options: ReplicaOptions) {
    this.storage = storage
    this.dbId = dbId
    this.clock = clock
    this.signer = options.signer ?? generateSigner()
    if (options.key !== undefined) this.key = options.key
    this.manifestValue = options.manifest
  }

  /**
   * Open the log of database `dbId` in `storage`: loads (or creates) the persistent replica id and
   * advances the clock past every head, so new local blocks order after everything stored — but
   * never more than `MAX_CLOCK_AHEAD_MS` past the wall clock (see `HybridClock.observe`): a stored
   * block with a far-future HLC cannot stop this replica from writing, nor make its blocks
   * unacceptable to peers. Throws `AccessError` when `options.key` does not fit `options.manifest`.
   */
  static async open (storage: Storage, dbId: string, options: ReplicaOptions = {}): Promise<Replica> {
    if (options.manifest != null) checkKey(options.manifest, options.key)
    const replicaId = options.replicaId ?? await Replica.loadId(storage)
    const replica = new Replica(storage, dbId, new HybridClock(replicaId, options.now), options)
    // The stored heads' HLCs are observed before the first write (see `write`), not here: reading
    // them decodes whole blocks, which opening a database for reading need not pay.
    replica.headsMoved = true
    return replica
  }

  /**
   * The persistent replica id of `storage` (16 hex digits), made and saved the first time. Apart
   * from `open` so that a caller can read it alongside its own first reads (one round trip fewer
   * when opening a database).
   */
  static async loadId (storage: Storage): Promise<string> {
    const saved = await storage.getMeta<string>(REPLICA_ID_KEY)
    if (saved !== undefined) return saved
    const replicaId = randomHex(8)
    await storage.setMeta(REPLICA_ID_KEY, replicaId)
    return replicaId
  }

  /** The manifest (`null` while it has not arrived; `undefined` when the replica checks no access). */
  get manifest (): Manifest | null | undefined { return this.manifestValue }

  /** Whether the manifest lets the holder of `writer` (an Ed25519 public key) write (false while it has not arrived). */
  mayWrite (writer: Uint8Array): boolean {
    if (this.manifestValue === undefined) return true
    return this.manifestValue !== null && mayWrite(this.manifestValue, writer)
  }

  /** Whether this replica's signer may write (false while the manifest has not arrived). */
  get canWrite (): boolean { return this.mayWrite(this.signer.publicKey) }

  /**
   * Adopt the manifest of a database joined by address, fetched from a peer: it must hash to the
   * database id, and the key (if any) must fit it. Stored, so it is known after a reload.
   * Throws `InvalidBlockError` for bytes that are not this database's manifest, `AccessError`
   * when the key does not fit it.
   */
  async setManifest (bytes: Uint8Array): Promise<Manifest> {
    const manifest = await decodeManifestAsync(bytes, parseCid(this.dbId) as CID)
    checkKey(manifest, this.key)
    if (this.manifestValue == null) {
      await this.storage.setMeta(MANIFEST_KEY, bytes)
      this.manifestValue = manifest
      for (const l of this.manifestListeners) l(manifest)
    }
    return manifest
  }

  /** Called once the manifest of a joined database arrives. Returns an unsubscribe function. */
  onManifest (listener: (m: Manifest) => void): () => void {
    this.manifestListeners.add(listener)
    return () => { this.manifestListeners.delete(listener) }
  }

  /** Listen to document changes. Returns a function that removes the listener. */
  onChange (listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /**
   * Write `ops` as one new local block on top of the current heads (at most `MAX_PARENTS` of them,
   * the first in sorted order: the others stay heads) and apply it. In a database
   * joined by address, waits for the manifest first. Throws `AccessError` when this replica's key
   * may not write.
   * `prepare` (optional) runs first inside the write queue and may throw to abort without writing
   * (e.g. a duplicate-key check that must not race other writes). When there are no ops, nothing
   * is written and `undefined` is returned. `options.check`: see `BeforeCheck`;
   * `options.expectAbsent`: the ops write documents expected not to exist (an insert), which lets
   * the storage write without reading them first (it checks, and falls back when one exists).
   */
  async commit (ops: Op[] | (() => Promise<Op[]>), options: { check?: BeforeCheck, expectAbsent?: boolean } = {}): Promise<Applied | undefined> {
    // A database joined by address: wait for its manifest (it says who may write, and whether to encrypt).
    if (this.closedBy !== undefined) throw this.closedBy
    if (this.manifestValue === null) {
      await new Promise<void>((resolve, reject) => {
        const off = this.onManifest(() => { off(); this.closeWaiters.delete(fail); resolve() })
        const fail = (err: Error): void => { off(); reject(err) }
        this.closeWaiters.add(fail)
      })
    }
    return await this.enqueue(async () => {
      if (this.closedBy !== undefined) throw this.closedBy
      this.assertWritable()
      const list = typeof ops === 'function' ? await ops() : ops
      if (list.length === 0) return undefined
      // At most MAX_PARENTS heads (sorted): the rest stay heads, merged by the next writes.
      const heads = (await this.heads()).slice(0, MAX_PARENTS)
      if (this.headsMoved) {
        this.headsMoved = false
        for (const bytes of await this.storage.getBlocks(await this.heads())) if (bytes !== undefined) this.clock.observe(readBlockHeader(bytes).hlc)
      }
      // Local ops come from the API layer, which has checked every value.
      const encoded = await encodeBlock({
        v: 1,
        db: this.dbId,
        parents: heads.map(h => parseCid(h) as CID),
        hlc: this.clock.tick(),
        ops: list
      }, { signer: this.signer, ...(this.key !== undefined ? { key: this.key } : {}), ...(this.link !== undefined ? { link: this.link } : {}), valuesChecked: true })
      return await this.apply(encoded, 'local', options.check, options.expectAbsent)
    })
  }

  /**
   * Stop taking writes: a write waiting for the manifest, queued, or made later rejects with
   * `reason` (the database layer passes `DatabaseClosedError`). A write already in its storage
   * transaction completes.
   */
  close (reason: Error): void {
    this.closedBy ??= reason
    for (const fail of [...this.closeWaiters]) fail(this.closedBy)
    this.closeWaiters.clear()
  }

  /**
   * How received blocks of this database are opened and checked: with its key, and in a
   * link-secret database its link public key (every block must carry the link signature).
   */
  openOptions (): BlockOpenOptions {
    const link = linkKeyOf(this.manifestValue)
    return { ...(this.key !== undefined ? { key: this.key } : {}), ...(link !== undefined ? { link } : {}) }
  }

  /** The link signer of a link-secret database (its blocks and snapshot offers carry its signature), else undefined. */
  get link (): Signer | undefined {
    return linkKeyOf(this.manifestValue) !== undefined && this.key !== undefined ? linkSigner(this.key) : undefined
  }

  /** Throws `AccessError` unless this replica may write. */
  assertWritable (): void {
    if (this.manifestValue === null) throw new AccessError('cannot write yet: the database manifest has not arrived from a peer')
    if (!this.canWrite) throw new AccessError(`this replica's key ${formatPublicKey(this.signer.publicKey)} is not on the database's write list`)
  }

  /**
   * Verify a block received from the network: CID, signature, structure, database, encryption
   * under this replica's key, that the manifest lets its writer write, and that its HLC is at most
   * `MAX_CLOCK_AHEAD_MS` ahead of this replica's wall clock. Throws `InvalidBlockError` when it is
   * not a valid block of this database (or does not hash to `expected`), `ClockSkewError` (an
   * `InvalidBlockError`) when its HLC is too far ahead — the replicator fetches it again later, so
   * it is accepted once this clock is within the bound — and `AccessError` while the manifest has
   * not arrived.
   */
  async verify (bytes: Uint8Array, expected?: CID): Promise<EncodedBlock> {
    if (this.manifestValue === null) throw new AccessError('the database manifest has not arrived yet')
    const encoded = await decodeBlock(bytes, expected, this.openOptions())
    if (encoded.block.db !== this.dbId) throw new InvalidBlockError(`block belongs to database ${encoded.block.db}, not ${this.dbId}`)
    if (!this.mayWrite(encoded.block.writer)) {
      throw new InvalidBlockError(`writer ${formatPublicKey(encoded.block.writer)} is not on the write list`)
    }
    this.assertNotAhead(encoded)
    return encoded
  }

  /**
   * Verify (see `verify`) and apply a block received from the network, or apply one `verify`
   * already returned. Nothing is written when it throws.
   */
  async receive (bytes: Uint8Array | EncodedBlock, expected?: CID): Promise<Applied> {
    const encoded = bytes instanceof Uint8Array ? await this.verify(bytes, expected) : bytes
    return await this.enqueue(async () => await this.applyRemote(encoded))
  }

  /** Throws `ClockSkewError` when the block's HLC is further ahead of the wall clock than the clock's bound. */
  private assertNotAhead (encoded: EncodedBlock): void {
    const ahead = this.clock.aheadOfWall(encoded.block.hlc)
    if (ahead > this.clock.maxAheadMs) throw new ClockSkewError(ahead, this.clock.maxAheadMs)
  }

  /**
   * Verify and store a chunk received from the network, then apply every held block it completes.
   * Throws `InvalidBlockError` when the bytes do not hash to `expected` or are not a chunk.
   */
  async receiveChunk (bytes: Uint8Array, expected: CID): Promise<Applied[]> {
    decodeChunk(bytes, expected, this.dbId, this.key !== undefined ? { key: this.key } : {})
    await this.storage.putNodes([{ cid: expected.toString(), bytes }])
    const out: Applied[] = []
    for (const encoded of [...this.pending.values()]) {
      if (!(encoded.block.chunks ?? []).some(c => c.equals(expected))) continue
      out.push(await this.enqueue(async () => await this.applyRemote(encoded)))
    }
    return out
  }

  /** Whether a CID names a chunk some held block waits for. */
  isPendingChunk (cid: string): boolean {
    for (const encoded of this.pending.values()) if ((encoded.block.chunks ?? []).some(c => c.toString() === cid)) return true
    return false
  }

  /** Apply a remote block, or hold it while chunks are missing. Runs inside the write queue. */
  private async applyRemote (encoded: EncodedBlock): Promise<Applied> {
    const cidText = encoded.cid.toString()
    const chunkCids = encoded.block.chunks ?? []
    if (chunkCids.length > 0) {
      const found = await this.storage.getBlocks(chunkCids.map(c => c.toString()))
      const missingChunks = chunkCids.filter((_, i) => found[i] === undefined)
      if (missingChunks.length > 0) {
        if (!await this.storage.hasBlock(cidText)) this.pending.set(cidText, encoded)
        return { cid: encoded.cid, bytes: encoded.bytes, applied: false, changes: [], collections: [], parents: encoded.block.parents, missingChunks }
      }
      const opened = this.key !== undefined ? { key: this.key } : {}
      const ops = assembleOps(encoded.block, chunkCids.map((c, i) => decodeChunk(found[i] as Uint8Array, c, this.dbId, opened)))
      encoded = { ...encoded, block: { ...encoded.block, ops } }
    }
    this.pending.delete(cidText)
    this.clock.observe(encoded.block.hlc)
    return await this.apply(encoded, 'remote')
  }

  /**
   * Another replica object sharing this storage (another tab) applied blocks: forget the cached
   * heads, and before the next local block advance the clock past the stored heads, so that block
   * orders after everything the other tab wrote.
   */
  refresh (): void {
    this.headsCache = undefined
    this.headsMoved = true
  }

  /** Current heads (CID strings, sorted). */
  async heads (): Promise<string[]> {
    this.headsCache ??= await this.storage.getHeads()
    return [...this.headsCache]
  }

  /**
   * A CID string naming the current state: the head's CID when there is one head; otherwise the
   * CID of the dag-cbor list of heads (a *headset*), which is stored so peers can fetch it.
   */
  async headHash (): Promise<string> {
    const heads = await this.storage.getHeads()
    if (heads.length === 1) return heads[0]
    const bytes = encode(heads.map(h => parseCid(h) as CID))
    const cid = cidOf(bytes).toString()
    await this.storage.setMeta(HEADSET_PREFIX + cid, bytes)
    return cid
  }

  /** The heads a head hash names, if known here: `[hash]` for a stored block, a stored headset's list, or `undefined`. */
  async resolveHeadHash (hash: string): Promise<string[] | undefined> {
    if (await this.storage.hasBlock(hash)) return [hash]
    const bytes = await this.storage.getMeta<Uint8Array>(HEADSET_PREFIX + hash)
    return bytes === undefined ? undefined : decodeHeadset(bytes, hash)
  }

  /** Store a headset received from a peer; returns its heads. Throws `InvalidBlockError` if it is not one. */
  async storeHeadset (hash: string, bytes: Uint8Array): Promise<string[]> {
    const heads = decodeHeadset(bytes, hash)
    await this.storage.setMeta(HEADSET_PREFIX + hash, bytes)
    return heads
  }

  /** A stored headset's bytes, for serving to peers. */
  async getHeadset (hash: string): Promise<Uint8Array | undefined> {
    return await this.storage.getMeta<Uint8Array>(HEADSET_PREFIX + hash)
  }

  /** CIDs named as parents but not stored yet. */
  async missing (): Promise<string[]> { return await this.storage.getMissing() }

  /**
   * Install a verified snapshot in one storage transaction: its states are joined into the local
   * ones (so blocks applied here before, local or remote, keep their effects), its head blocks
   * become heads, and every block below them counts as present. Listeners see the changed
   * documents as one remote change. Returns what changed. Throws `ClockSkewError` (nothing
   * installed) when a head's HLC is too far ahead of this replica's clock, as `verify` would.
   *
   * Given as a `SnapshotStream`, the install begins at once and joins each page as it comes (the
   * transaction held open, so other writes wait in the queue meanwhile); when the stream rejects,
   * or this replica closes first, the install rejects with that error and writes nothing.
   */
  async installSnapshot (snapshot: SnapshotContent | SnapshotStream): Promise<ChangeSet> {
    let content: SnapshotContent | undefined
    /** the part of the install that carries the heads: checked against the clock first */
    const last = (s: SnapshotContent, docs: SnapshotContent['docs'], colls: SnapshotContent['colls']): InstallSnapshotInput => {
      for (const h of s.heads) this.assertNotAhead(h)
      content = s
      return this.stateInput(docs, colls, 'join', s.covered,
        s.heads.map(h => ({ cid: h.cid.toString(), bytes: h.bytes })),
        s.heads.flatMap(h => (h.chunks ?? []).map(c => ({ cid: c.cid.toString(), bytes: c.bytes }))))
    }
    let input: InstallSnapshotInput | InstallSnapshotParts
    if ('next' in snapshot) {
      let ended = false
      input = {
        next: async () => {
          if (ended) return undefined
          const item = await this.unlessClosed(snapshot.next())
          if ('page' in item) return this.stateInput(item.page.docs, item.page.colls, 'join', [], [])
          ended = true
          return last(item.end, [], [])
        }
      }
    } else {
      input = last(snapshot, snapshot.docs, snapshot.colls)
    }
    const result = await this.enqueue(async () => await storageFull(this.storage.installSnapshot(input)))
    const installed = content as SnapshotContent
    for (const h of installed.heads) this.clock.observe(h.block.hlc)
    this.headsCache = result.heads
    await this.storage.setMeta(SNAPSHOT_KEY, installed.root)
    return this.notify(result)
  }

  /** `promise`, or this replica's close reason if it closes first. */
  private async unlessClosed<T> (promise: Promise<T>): Promise<T> {
    if (this.closedBy !== undefined) throw this.closedBy
    let fail: (err: Error) => void = () => {}
    const closed = new Promise<never>((_resolve, reject) => { fail = reject })
    this.closeWaiters.add(fail)
    try {
      return await Promise.race([promise, closed])
    } finally {
      this.closeWaiters.delete(fail)
    }
  }

  /**
   * Run `fn` in the write queue: no block is applied and no snapshot installed while it runs (it
   * may call `rewriteStates`, and must not call anything else that queues: `commit`, `receive`,
   * `receiveChunk`, `installSnapshot`, `coverBlocks`). Resolves with what `fn` resolves with.
   */
  async exclusive<T> (fn: () => Promise<T>): Promise<T> {
    return await this.enqueue(fn)
  }

  /**
   * Replace (not join) the states of documents and collections, in one storage transaction, and
   * tell the listeners what changed as one remote change: the repair of states found to disagree
   * with the history (`SnapshotAudit`). A document whose state becomes `{f: {}}` no longer
   * exists. Call it only from within `exclusive`, so no block is applied between the read the
   * new states were computed from and this write. Returns what changed.
   */
  async rewriteStates (docs: Array<DocKey & { state: DocState }>, colls: Array<{ coll: string, state: CollState }>): Promise<ChangeSet> {
    const result = await this.storage.installSnapshot(this.stateInput(docs, colls, 'replace', [], []))
    this.headsCache = result.heads
    return this.notify(result)
  }

  /**
   * Join the states that blocks this replica does not store fold to (`docs`, `colls`) into its
   * own, and count those blocks (`covered`) as present from now on, as a snapshot's covered
   * blocks are: what the audit of a snapshot join does with blocks below the snapshot that it
   * did not cover (`SnapshotAudit`). One storage transaction; listeners see one remote change.
   */
  async coverBlocks (docs: Array<DocKey & { state: DocState }>, colls: Array<{ coll: string, state: CollState }>, covered: string[]): Promise<ChangeSet> {
    const input = this.stateInput(docs, colls, 'join', covered, [])
    const result = await this.enqueue(async () => await this.storage.installSnapshot(input))
    this.headsCache = result.heads
    return this.notify(result)
  }

  /** Tell the listeners what a block or a state install changed, if anything (a state install: one remote change), and return it. */
  private notify (result: { changes: DocChange[], collections: string[] }, origin: ChangeOrigin = 'remote'): ChangeSet {
    const change = { changes: result.changes, collections: result.collections }
    if (change.changes.length > 0 || change.collections.length > 0) {
      for (const l of this.listeners) {
        try { l(change, origin) } catch (err) { log.warn('change listener threw', err) }
      }
    }
    return change
  }

  /**
   * The storage input that writes states `docs` and `colls` into the local ones — joined (a
   * snapshot, blocks covered) or replacing them (a repair) — with `covered` CIDs and `heads`.
   */
  private stateInput (
    docs: Array<DocKey & { state: DocState }>, colls: Array<{ coll: string, state: CollState }>, mode: 'join' | 'replace',
    covered: string[], heads: Array<{ cid: string, bytes: Uint8Array }>, nodes?: Array<{ cid: string, bytes: Uint8Array }>
  ): InstallSnapshotInput {
    const nextDocs = new Map(docs.map(d => [docKey(d.coll, d.id), d.state]))
    const nextColls = new Map(colls.map(c => [c.coll, c.state]))
    return {
      keys: docs.map(d => ({ coll: d.coll, id: d.id })),
      colls: [...new Set([...nextColls.keys(), ...docs.map(d => d.coll)])],
      // A collection whose drop stamp may change shows all its documents anew.
      dropped: mode === 'replace' ? colls.map(c => c.coll) : colls.filter(c => c.state.dropped !== undefined).map(c => c.coll),
      covered,
      heads,
      ...(nodes !== undefined ? { nodes } : {}),
      merge: (input: MergeInput): MergeOutput => {
        fillBefore(input)
        return joinSnapshotStates(input.docs, input.colls, nextDocs, nextColls, mode)
      }
    }
  }

  /** CID string of the root of the snapshot this replica joined from, if it did. */
  async snapshotRoot (): Promise<string | undefined> { return await this.storage.getMeta<string>(SNAPSHOT_KEY) }

  private async enqueue<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    // Settle to nothing: the queue must not keep the last write's result (a block's bytes and
    // changes, about 0.5 MB for a 1,000-document insert) alive until the next write.
    this.queue = run.then(() => {}, () => {})
    return await run
  }

  private async apply ({ cid, bytes, block, chunks }: EncodedBlock, origin: 'local' | 'remote', check?: BeforeCheck, expectAbsent?: boolean): Promise<Applied> {
    const cidText = cid.toString()
    const result = await storageFull(this.storage.applyBlock({
      cid: cidText,
      bytes,
      ...(chunks !== undefined ? { nodes: chunks.map(c => ({ cid: c.cid.toString(), bytes: c.bytes })) } : {}),
      parents: block.parents.map(p => p.toString()),
      local: origin === 'local',
      ...(expectAbsent === true ? { expectAbsent } : {}),
      ...touchedBy(block.ops),
      merge: (input: MergeInput): MergeOutput => {
        fillBefore(input)
        check?.(input.before)
        return applyBlockOps(input.docs, input.colls, block, cidText)
      }
    }))
    const { changes, collections } = result
    this.headsCache = result.heads
    if (result.applied) this.notify(result, origin)
    return { cid, bytes, applied: result.applied, changes, collections, parents: block.parents }
  }
}
