/**
 * The replication engine of one database over a `Transport` (docs/design.md, "Replication"):
 *
 * - every new local block is published on the database topic, inline when ≤ 64 KiB;
 * - heads are published on start, to every new subscriber, and every `republishMs` (go-ds-crdt's
 *   rebroadcast: OrbitDB's one-shot exchange stalls readers that join late, orbitdb#1255);
 * - heads we do not have and parents named by stored blocks but not stored (`missing`, persisted,
 *   so a walk interrupted by a reload resumes) are fetched in batches over `/kitedb/1/blocks` from
 *   the peers that announced them, walking parents until the DAG is complete; the `WantList`
 *   bounds and orders what gossip can make this replica want (`want-list.ts`), and missing
 *   blocks no peer can serve become *unavailable* instead of holding sync back for good;
 * - every received block is verified (CID, decoding, database) before it is applied; bad input is
 *   dropped with a logged reason and never stops the engine;
 * - a replica that lacks most of a peer's history joins from the peer's snapshot
 *   (`/kitedb/1/snapshot`, docs/snapshots.md) before fetching blocks, and serves its own; after
 *   the join it audits the snapshot against the history in the background (`audit.ts`).
 */
import { AccessError, InvalidBlockError, InvalidMessageError, KiteError } from '../errors.js'
import { type CID, type EncodedBlock, MAX_BLOCK_BYTES, MAX_PARENTS, cidOf, cidOfAsync, formatPublicKey, parseCid, readBlockHeader } from '../crdt/index.js'
import { createLogger } from '../log.js'
import { type Applied, MANIFEST_KEY, type Replica } from './replica.js'
import { type SnapshotFetchProgress, SnapshotServer, fetchSnapshot, signSnapshotRoot, verifySnapshotRoot } from './snapshot/index.js'
import { type PeerConnection, type Transport } from './transport.js'
import { DEFAULT_LIMITS, type Limits } from './limits.js'
import { UNAVAILABLE_ROUNDS, WantList } from './want-list.js'
import { type BlockFetcher, SnapshotAudit, type SnapshotAuditState } from './audit.js'
import { KeepClient } from './keep-client.js'
import {
  type BlocksRequest, BLOCKS_PROTOCOL, INLINE_BLOCK_BYTES, MAX_HEADS, MAX_MESSAGE_BYTES, MAX_REQUEST_CIDS, SNAPSHOT_PROTOCOL,
  decodeBlocksRequest, decodeBlocksResponse, decodeHeadsMessage, decodeSnapshotRequest, decodeSnapshotResponse,
  encodeBlocksRequest, encodeBlocksResponse, encodeHeadsMessage, encodeSnapshotRequest, encodeSnapshotResponse, topicOf
} from './wire.js'

const log = createLogger('sync')
/** Most peers the replicator remembers hearing from (and counts as holders). */
const MAX_PEERS_HEARD = 1024
/** Heads are published for newly heard peers at most once per this long, ms. */
const NEW_PEER_PUBLISH_MS = 1000
/** Attempts at a snapshot join per peer and session that may fail on the network. */
const SNAPSHOT_ATTEMPTS = 3
/**
 * How long a replica offered a snapshot over a relayed connection waits for a direct one before
 * it replays blocks instead, ms. Blocks pushed through the relay meanwhile would exhaust the
 * circuit's 128 KiB again and again, and with it the signalling of the WebRTC upgrade.
 */
const SNAPSHOT_DIRECT_WAIT_MS = 5000
/** Most CIDs asked of one peer in one fetch round (in requests of `fetchBatch`). */
const ROUND_CIDS_PER_PEER = 1024
/** Rounds running in which a peer's requests fail before it stops being the source of anything. */
const PEER_FAILURES_TO_DROP = 3
/**
 * An answer shorter than this was not cut short by the message budget (the responder stops
 * before a block that would take it over `MAX_MESSAGE_BYTES`): what it lacks, the peer lacks.
 */
const COMPLETE_ANSWER_BYTES = MAX_MESSAGE_BYTES - MAX_BLOCK_BYTES - 1024
/**
 * A peer holding at most this many announced wants looks like an honest replica (its heads are a
 * few: about one per concurrent writer, at most `MAX_PARENTS` merged by its next write); one
 * holding more is asked after every such peer, and not at all in a round that urgent work
 * interrupted.
 */
const FEW_WANTS = MAX_PARENTS
/** Attempts at one audit request to one peer, and the first pause after a failed one (doubling), ms. */
const AUDIT_ATTEMPTS = 4
const AUDIT_PAUSE_MS = 1000
/** Refused announcements are logged at most once per peer per this long, ms. */
const REFUSAL_LOG_MS = 60_000

/** Tuning of the replication engine. */
export interface ReplicatorOptions {
  /** interval of head republication, ms (default 3000) */
  republishMs?: number
  /** CIDs per fetch request (default 256, at most 1000) */
  fetchBatch?: number
  /** timeout of one fetch request, ms (default 5000) */
  fetchTimeoutMs?: number
  /** a peer not heard from for this long is no longer listed in `peers()`, ms (default 10000) */
  peerTtlMs?: number
  /**
   * false: never join from a peer's snapshot, always replay the history block by block (default
   * true: a replica that lacks most of a peer's history joins from its snapshot)
   */
  snapshotJoin?: boolean
  /**
   * offer snapshots to joining peers only when this replica has at least this many blocks (default
   * 50: below that a replay takes about a second or less, and every replica keeps the full history;
   * `Infinity`: never)
   */
  snapshotMinBlocks?: number
  /** timeout of a snapshot request, which may make the snapshot first, ms (default 30000) */
  snapshotTimeoutMs?: number
  /**
   * a writer makes the snapshot it would offer ahead of time, once no block has been applied for
   * this long, ms (default 500; `Infinity`: only when a peer asks). See `SnapshotServer.warm`.
   */
  snapshotWarmMs?: number
  /**
   * false: do not audit a snapshot joined from against the history (default true: see
   * `SnapshotAudit`; the audit fetches the blocks the snapshot covers, in the background)
   */
  snapshotAudit?: boolean
  /** how long after a snapshot join (or a start with an audit pending) the audit begins, ms (default 10000) */
  snapshotAuditDelayMs?: number
  /**
   * a missing block that no peer could serve, over 3 fetch rounds and at least this long, is
   * unavailable: it no longer holds sync back (`SyncState.unavailable`), ms (default 10000)
   */
  unavailableAfterMs?: number
  /** an unavailable block is asked for again this often, and at once when a new peer appears, ms (default 30000) */
  unavailableRetryMs?: number
  /**
   * false: do not hand this replica's blocks and snapshots to keepers (default true: every keeper
   * the transport reaches is asked to keep this database; see `KeepClient`, docs/keepers.md)
   */
  keep?: boolean
}

/** Progress of catching up: counts since the replica last had nothing missing. */
export interface SyncProgress {
  /** blocks known to exist that were missing when this catch-up began or appeared during it */
  known: number
  /** blocks fetched and applied so far */
  fetched: number
  /** documents changed by them */
  documents: number
  /** blocks still missing (unavailable ones not counted) */
  missing: number
  /** while joining from a snapshot: its nodes fetched so far; `installed` in the event after its install */
  snapshot?: SnapshotFetchProgress & { installed: boolean }
}

/** Snapshot of the engine's state, for UIs and tests. */
export interface SyncState {
  heads: string[]
  /** blocks known to exist but not stored yet, still to fetch (unavailable ones not counted) */
  missing: number
  /**
   * missing blocks that no peer could serve (named as parents by stored blocks, asked for over
   * several rounds in vain): they no longer hold sync back, and are still asked for now and then
   * and fetched if someone serves them
   */
  unavailable: number
  /** remote peers replicating this database */
  peers: string[]
  /** ms since the epoch of the last block received from a peer, or null */
  lastSyncedAt: number | null
  /** CID string of the root of the snapshot this replica joined from, or null when it replayed every block */
  snapshot: string | null
  /**
   * peers heard from since replication started that hold this database: they announced heads, or
   * served its blocks or manifest (0: no device holding it has been reached yet)
   */
  holders: number
  /** where the audit of that snapshot against the history stands (see `SnapshotAudit`), or null */
  audit: SnapshotAuditState | null
  /**
   * whether everything this replica holds is stored by at least one keeper, as acknowledged after
   * the keeper's commit (see `Database.whenKept`, docs/keepers.md)
   */
  kept: boolean
}

/** Replicates one `Replica` over one `Transport`. */
export class Replicator {
  readonly replica: Replica
  readonly transport: Transport
  readonly topic: string
  private readonly opts: Required<ReplicatorOptions>
  private readonly cleanups: Array<() => void> = []
  private timer?: ReturnType<typeof setInterval>
  /** the limits this replica holds peers to (its transport's, or `DEFAULT_LIMITS`) */
  readonly limits: Limits
  /** what this replica wants and does not store, by whom it can be served */
  private readonly wants: WantList
  /** per peer: fetch rounds running in which its requests failed */
  private readonly peerFailures = new Map<string, number>()
  /** per peer: when a refusal of its announcements was last logged, ms */
  private readonly refusalLogged = new Map<string, number>()
  /** peers by the time (ms) we last heard from them */
  private readonly seen = new Map<string, number>()
  private fetching = false
  private fetchAgain = false
  /**
   * Work that must not wait behind junk came in during a round (a head announced by a peer that
   * served real blocks or holds few wants, an inline block applied, the app's ask): the round
   * stops before its next untrusted peer holding many wants, and a new one starts.
   */
  private urgent = false
  private retryTimer?: ReturnType<typeof setTimeout>
  private stopped = false
  private lastSyncedAt: number | null = null
  private readonly peerListeners = new Set<(peers: string[]) => void>()
  private readonly progressListeners = new Set<(p: SyncProgress) => void>()
  private progress = { fetched: 0, documents: 0 }
  private lastPeers: string[] = []
  /** inline blocks verified by the topic validator, waiting for the message handler, by CID */
  private readonly verified = new Map<string, EncodedBlock>()
  private readonly errorListeners = new Set<(err: KiteError) => void>()
  /** set when replication cannot go on (e.g. the key does not fit the manifest) */
  private refused?: KiteError
  private readonly snapshots: SnapshotServer
  /** per peer asked in this session: its snapshot offer and when it came, or null (declined, invalid, or no direct connection came) */
  private readonly offers = new Map<string, { root: CID, producer: string, at: number } | null>()
  /** per peer: snapshot attempts that failed on the network in this session */
  private readonly snapshotFailures = new Map<string, number>()
  /** peers whose direct connection this replica already waited for, in vain, with blocks held back */
  private readonly waitedFor = new Set<string>()
  /** whether this replica joined from a snapshot in this session (once is enough) */
  private joined = false
  /** peers that showed they hold this database (see `SyncState.holders`) */
  private readonly holders = new Set<string>()
  private newPeersTimer?: ReturnType<typeof setTimeout>
  private lastNewPeersPublish = 0
  private readonly audit: SnapshotAudit
  private auditTimer?: ReturnType<typeof setTimeout>
  private auditing = false
  /** the audit waits for blocks no peer served: a new peer may have them */
  private auditLacking = false
  /** writer keys (formatted) whose snapshot disagreed with the history: their offers are declined */
  private readonly forgers = new Set<string>()
  /** hands this replica's blocks and snapshots to keepers (when the transport has keepers and `keep` is on) */
  readonly keeping?: KeepClient

  constructor (replica: Replica, transport: Transport, options: ReplicatorOptions = {}) {
    this.replica = replica
    this.transport = transport
    this.topic = topicOf(replica.dbId)
    this.opts = {
      republishMs: options.republishMs ?? 3000,
      fetchBatch: Math.min(options.fetchBatch ?? 256, MAX_REQUEST_CIDS),
      fetchTimeoutMs: options.fetchTimeoutMs ?? 5000,
      peerTtlMs: options.peerTtlMs ?? 10_000,
      snapshotJoin: options.snapshotJoin ?? true,
      snapshotMinBlocks: options.snapshotMinBlocks ?? 50,
      snapshotTimeoutMs: options.snapshotTimeoutMs ?? 30_000,
      snapshotWarmMs: options.snapshotWarmMs ?? 500,
      snapshotAudit: options.snapshotAudit ?? true,
      snapshotAuditDelayMs: options.snapshotAuditDelayMs ?? 10_000,
      unavailableAfterMs: options.unavailableAfterMs ?? 10_000,
      unavailableRetryMs: options.unavailableRetryMs ?? 30_000,
      keep: options.keep ?? true
    }
    this.limits = transport.limits ?? DEFAULT_LIMITS
    this.wants = new WantList({
      maxPerPeer: this.limits.maxWantsPerPeer,
      maxTotal: this.limits.maxWants,
      unavailableAfterMs: this.opts.unavailableAfterMs,
      retryMs: this.opts.unavailableRetryMs
    })
    this.snapshots = new SnapshotServer(replica, this.opts.snapshotMinBlocks, {
      perPeerMs: this.limits.snapshotBuildPerPeerMs,
      unavailable: () => this.wants.unavailable().length
    })
    this.audit = new SnapshotAudit(replica)
    if (this.opts.keep && transport.keepers !== undefined) {
      this.keeping = new KeepClient(replica, transport, {
        heard: (heads, from) => { this.heardHeads(heads, from) },
        snapshot: () => this.snapshots.latestSnapshot,
        onSnapshot: listener => this.snapshots.onBuilt(listener)
      })
    }
  }

  /**
   * Heads a peer said it has outside gossip (a keeper, answering the keep protocol's `state`):
   * wanted from it as heads it announced would be.
   */
  heardHeads (heads: string[], from: string): void {
    if (this.stopped) return
    this.touch(from)
    void (async () => {
      let want = false
      for (const h of heads) {
        if (await this.replica.storage.hasBlock(h)) continue
        if (this.wants.announce(h, from) !== 'refused') want = true
      }
      if (want) {
        this.urgent = true
        void this.fetchMissing()
      }
    })().catch(err => { log.debug(`heads from ${from} not taken: ${(err as Error).message}`) })
  }

  /** Subscribe, serve blocks, announce heads and start the republish timer. */
  start (): void {
    this.cleanups.push(
      this.transport.subscribe(this.topic, (data, from) => { this.onMessage(data, from) }, {
        validate: async (data, from) => await this.validate(data, from)
      }),
      this.transport.onSubscriber(this.topic, () => {
        this.notifyPeers()
        void this.publishHeads()
      }),
      serveBlocks(this.transport, this.replica, this.snapshots)
    )
    if (Number.isFinite(this.opts.snapshotWarmMs) && Number.isFinite(this.opts.snapshotMinBlocks)) {
      this.cleanups.push(this.snapshots.warm(this.opts.snapshotWarmMs))
    }
    void this.publishHeads()
    void this.fetchMissing()
    if (this.keeping !== undefined) {
      this.keeping.start()
      const keeping = this.keeping
      this.cleanups.push(() => { keeping.stop() })
    }
    if (this.opts.snapshotAudit) this.scheduleAudit(this.opts.snapshotAuditDelayMs)
    // A producer whose snapshot disagreed with the history in an earlier session is still not trusted.
    void this.audit.state().then(r => { if (r?.status === 'repaired') this.forgers.add(r.producer) }, () => {})
    this.timer = setInterval(() => {
      void this.publishHeads()
      void this.fetchMissing()
      this.notifyPeers()
    }, this.opts.republishMs)
  }

  /**
   * The network came back (a relay reservation was made again): publish the heads now, and once
   * more a moment later (the relay may not have rejoined the topic yet), so what was missed flows
   * both ways — peers that hear heads they lack fetch them, and answer with their own (`touch`).
   */
  reconnected (): void {
    if (this.stopped) return
    void this.publishHeads()
    void this.fetchMissing()
    setTimeout(() => { void this.publishHeads(); void this.fetchMissing() }, 1000)
  }

  /** Stop replicating (the replica stays usable locally). */
  stop (): void {
    this.stopped = true
    if (this.timer !== undefined) clearInterval(this.timer)
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
    if (this.auditTimer !== undefined) clearTimeout(this.auditTimer)
    if (this.newPeersTimer !== undefined) clearTimeout(this.newPeersTimer)
    for (const c of this.cleanups.splice(0)) c()
  }

  /**
   * Publish a block just committed locally: heads, plus the block inline when small. The inline
   * block's CID is always among the heads sent with it (receivers check this: see `handleMessage`).
   */
  async publishLocal (applied: Applied): Promise<void> {
    const heads = new Set(await this.replica.heads())
    const inline = applied.bytes.byteLength <= INLINE_BLOCK_BYTES
    if (inline) heads.add(applied.cid.toString())
    await this.publish([...heads].sort(), inline ? [applied.bytes] : [])
  }

  /** Remote peers replicating this database: topic subscribers plus peers heard from recently. */
  peers (): string[] {
    const now = Date.now()
    const out = new Set(this.transport.subscribers(this.topic))
    for (const [peer, at] of this.seen) {
      if (now - at <= this.opts.peerTtlMs) out.add(peer)
      else this.seen.delete(peer)
    }
    out.delete(this.transport.peerId)
    for (const k of this.keepers()) out.delete(k)
    return [...out].sort()
  }

  /** The keepers this replica hands its blocks to (see `KeepClient`), when keeping is on. */
  private keepers (): string[] {
    return this.keeping !== undefined ? this.transport.keepers?.() ?? [] : []
  }

  /**
   * Whom blocks, manifests and snapshots are asked of: the peers, and the keepers, which serve
   * what they keep (blocks, the writers' snapshot) like any replica.
   */
  private sources (): string[] {
    return [...new Set([...this.peers(), ...this.keepers()])].sort()
  }

  /**
   * Fetch these CIDs (blocks, or headsets named by a head hash) from any peer, and everything
   * they lead to (open wants: not bounded by the per-peer limits, which bound what gossip can ask).
   */
  want (cids: string[]): void {
    for (const c of cids) this.wants.wantOpen(c, 'headset')
    this.urgent = true
    void this.fetchMissing()
  }

  /**
   * The missing blocks that hold sync back: named as parents by stored blocks, not stored, and
   * not unavailable (see `SyncState.unavailable`). `syncFromHeadHash` waits for none to be left.
   */
  async outstanding (): Promise<string[]> {
    return (await this.replica.missing()).filter(c => !this.wants.isUnavailable(c))
  }

  /** Called with catch-up progress after each fetched batch. Returns an unsubscribe function. */
  onProgress (listener: (p: SyncProgress) => void): () => void {
    this.progressListeners.add(listener)
    return () => { this.progressListeners.delete(listener) }
  }

  /**
   * Called when replication stops on an error it cannot retry past (an `AccessError`: this
   * replica's key does not fit the database), and when a peer's input is found forged after it
   * was taken (a `SnapshotMismatchError`: the states were repaired, replication goes on).
   * Returns an unsubscribe function.
   */
  onError (listener: (err: KiteError) => void): () => void {
    this.errorListeners.add(listener)
    return () => { this.errorListeners.delete(listener) }
  }

  /** Called with the peer list whenever it changes. Returns an unsubscribe function. */
  onPeers (listener: (peers: string[]) => void): () => void {
    this.peerListeners.add(listener)
    return () => { this.peerListeners.delete(listener) }
  }

  /** Heads, missing and unavailable counts, peers, last sync time, snapshot joined from and its audit. */
  async state (): Promise<SyncState> {
    const missing = await this.replica.missing()
    const unavailable = missing.filter(c => this.wants.isUnavailable(c)).length
    return {
      heads: await this.replica.heads(),
      missing: missing.length - unavailable + this.wants.size,
      unavailable,
      peers: this.peers(),
      lastSyncedAt: this.lastSyncedAt,
      snapshot: await this.replica.snapshotRoot() ?? null,
      holders: this.holders.size,
      audit: await this.audit.state() ?? null,
      kept: await this.keeping?.isKept() ?? false
    }
  }

  private touch (peer: string): void {
    if (peer === this.transport.peerId) return
    const isNew = !this.seen.has(peer)
    this.seen.delete(peer)
    this.seen.set(peer, Date.now())
    // Origins are free to make: remember a bounded number (the least recently heard go first).
    while (this.seen.size > MAX_PEERS_HEARD) this.seen.delete(this.seen.keys().next().value as string)
    this.notifyPeers()
    // A peer we had not heard from may have joined late (its subscription reached only the relay):
    // answer with our heads soon rather than at the next republish — once for all the new peers of
    // a second, so a stream of fresh origins cannot make this replica publish at their pace.
    if (isNew) this.publishForNewPeers()
  }

  private publishForNewPeers (): void {
    if (this.newPeersTimer !== undefined || this.stopped) return
    const wait = Math.max(0, this.lastNewPeersPublish + NEW_PEER_PUBLISH_MS - Date.now())
    this.newPeersTimer = setTimeout(() => {
      this.newPeersTimer = undefined
      this.lastNewPeersPublish = Date.now()
      void this.publishHeads()
    }, wait)
  }

  /** Note that `peer` showed it holds this database (a count for `SyncState.holders`, bounded). */
  private noteHolder (peer: string): void {
    if (this.holders.size < MAX_PEERS_HEARD) this.holders.add(peer)
  }

  private notifyPeers (): void {
    const peers = this.peers()
    if (peers.length === this.lastPeers.length && peers.every((p, i) => p === this.lastPeers[i])) return
    // A peer not there before may have what no one could serve: ask it for unavailable blocks at once.
    const before = new Set(this.lastPeers)
    if (peers.some(p => !before.has(p))) {
      if (this.wants.unavailable().length > 0) {
        this.wants.retryUnavailable()
        void this.fetchMissing()
      }
      if (this.auditLacking && this.auditTimer !== undefined) {
        clearTimeout(this.auditTimer)
        this.auditTimer = undefined
        this.scheduleAudit(0)
      }
    }
    this.lastPeers = peers
    for (const l of this.peerListeners) l(peers)
  }

  private async publishHeads (): Promise<void> {
    if (this.stopped) return
    await this.publish(await this.replica.heads(), [])
  }

  private async publish (heads: string[], blocks: Uint8Array[]): Promise<void> {
    if (this.stopped) return
    try {
      await this.transport.publish(this.topic, encodeHeadsMessage({ heads: heads.map(h => parseCid(h) as CID), blocks }))
    } catch (err) {
      log.debug('publish failed', err)
    }
  }

  private onMessage (data: Uint8Array, from: string): void {
    if (this.stopped) return
    this.touch(from)
    void this.handleMessage(data, from).catch(err => { log.warn(`dropped message from ${from}: ${(err as Error).message}`) })
  }

  /**
   * The topic validator: a message is delivered and forwarded only if it decodes and each inline
   * block is valid (signed, allowed writer, right key, named among the message's heads). Blocks
   * it verified are kept for `handleMessage`, so nothing is verified twice.
   */
  private async validate (data: Uint8Array, from: string): Promise<boolean> {
    if (this.stopped) return false
    try {
      const msg = decodeHeadsMessage(data)
      if (msg.blocks.length === 0) return true
      if (this.replica.manifest === null) return false // cannot check them yet; heads-only messages still get through
      const named = new Set(msg.heads.map(h => h.toString()))
      for (const bytes of msg.blocks) {
        const cid = cidOf(bytes)
        if (!named.has(cid.toString())) throw new InvalidBlockError(`inline block ${cid.toString()} is not among the message's heads`)
        const encoded = await this.replica.verify(bytes, cid)
        if (this.verified.size >= 256) this.verified.clear()
        this.verified.set(cid.toString(), encoded)
      }
      return true
    } catch (err) {
      log.warn(`refused message from ${from} (not delivered, not forwarded): ${(err as Error).message}`)
      return false
    }
  }

  private async handleMessage (data: Uint8Array, from: string): Promise<void> {
    const msg = decodeHeadsMessage(data)
    if (msg.heads.length > 0) this.noteHolder(from)
    // An inline block must be one the message names among its heads: bytes damaged on the way
    // hash to another CID, so they cannot pass for a block (and a damaged CID matches no block).
    const named = new Set(msg.heads.map(h => h.toString()))
    for (const bytes of msg.blocks) {
      const cid = cidOf(bytes)
      if (!named.has(cid.toString())) {
        log.warn(`dropped inline block ${cid.toString()} from ${from}: not among the message's heads`)
        continue
      }
      const verified = this.verified.get(cid.toString())
      this.verified.delete(cid.toString())
      if ((await this.receive(verified ?? bytes, from, cid))?.applied === true) this.urgent = true
    }
    let want = false
    let refused = 0
    for (const head of msg.heads) {
      const h = head.toString()
      if (await this.replica.storage.hasBlock(h)) continue
      if (this.wants.announce(h, from) === 'refused') refused++
      else want = true
    }
    if (want && (this.wants.isTrusted(from) || this.wants.wantsOf(from) <= FEW_WANTS)) this.urgent = true
    if (refused > 0) this.logRefusedWants(from, refused)
    if (want) void this.fetchMissing()
  }

  /** Log that `peer`'s announcements went over its want limits (once per peer per `REFUSAL_LOG_MS`). */
  private logRefusedWants (peer: string, refused: number): void {
    const now = Date.now()
    if (now - (this.refusalLogged.get(peer) ?? -Infinity) < REFUSAL_LOG_MS) return
    this.refusalLogged.delete(peer)
    this.refusalLogged.set(peer, now)
    for (const [p, at] of this.refusalLogged) {
      if (this.refusalLogged.size <= 1024 && now - at < REFUSAL_LOG_MS) break
      this.refusalLogged.delete(p)
    }
    log.warn(`ignored ${refused} heads announced by ${peer}: over ${this.limits.maxWantsPerPeer} wanted blocks per peer or ${this.limits.maxWants} in all (${this.wants.wantsOf(peer)} held for it; not logged again for ${REFUSAL_LOG_MS} ms)`)
  }

  private async receive (bytes: Uint8Array | EncodedBlock, from: string, expected?: CID): Promise<Applied | undefined> {
    try {
      const applied = await this.replica.receive(bytes, expected)
      this.noteApplied(applied)
      if (applied.applied) this.wants.trust(from)
      for (const chunk of applied.missingChunks ?? []) this.wants.wantOpen(chunk.toString(), 'chunk')
      if (applied.missingChunks !== undefined) void this.fetchMissing()
      return applied
    } catch (err) {
      if (!(err instanceof InvalidBlockError) && !(err instanceof AccessError)) throw err
      log.warn(`dropped block from ${from}: ${err.message}`)
      return undefined
    }
  }

  private noteApplied (applied: Applied): void {
    if (applied.missingChunks !== undefined) return
    this.wants.delete(applied.cid.toString())
    if (applied.applied) {
      this.lastSyncedAt = Date.now()
      this.progress.fetched++
      this.progress.documents += applied.changes.length
    }
  }

  /** Fetch wanted heads and missing parents until none is left or no peer can supply more. */
  private async fetchMissing (): Promise<void> {
    if (this.fetching) {
      this.fetchAgain = true
      return
    }
    this.fetching = true
    let failed = false
    try {
      do {
        this.fetchAgain = false
        let round
        while (!this.stopped && (round = await this.fetchRound()).progress) { /* progress: go on walking parents */ }
        failed = round?.failed ?? false
      } while (this.fetchAgain && !this.stopped)
    } finally {
      this.fetching = false
    }
    // A request failed (peer unreachable, timeout, connection replaced): try again soon rather than
    // at the next republish.
    if (failed && !this.stopped && this.retryTimer === undefined) {
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; void this.fetchMissing() }, 500)
    }
  }

  /**
   * One round: request what is wanted and missing from each candidate peer, peers that served
   * real blocks first, each for what it may serve in the `WantList`'s order (first, if this
   * replica may still join from a snapshot, ask each peer not asked yet for one); `progress` if
   * anything new was stored, `failed` if a request failed.
   */
  private async fetchRound (): Promise<{ progress: boolean, failed: boolean }> {
    if (this.refused !== undefined) return { progress: false, failed: false }
    if (this.replica.manifest === null) return await this.fetchManifest()
    const peers = this.sources()
    // Announcers no longer heard from cannot be asked: their wants go (a head announced again comes back).
    const present = new Set(peers)
    for (const p of this.wants.sources()) if (!present.has(p)) this.wants.dropPeer(p)
    for (const p of [...this.peerFailures.keys()]) if (!present.has(p)) this.peerFailures.delete(p)
    let missing = await this.replica.missing()
    if (this.wants.size === 0 && missing.every(c => this.wants.isUnavailable(c)) && !this.wants.retryDue()) {
      return { progress: false, failed: false }
    }
    // Peers that served real blocks first; then the others, those holding the fewest announced wants
    // first (a peer that announced thousands of heads nobody else named is asked last).
    const untrusted = peers.filter(p => !this.wants.isTrusted(p))
    untrusted.sort((x, y) => this.wants.wantsOf(x) - this.wants.wantsOf(y))
    const candidates = [...peers.filter(p => this.wants.isTrusted(p)), ...untrusted]
    if (this.opts.snapshotJoin && !this.joined && this.wants.size + missing.length > 0) {
      const outcome = await this.trySnapshotJoin(new Set(candidates))
      if (outcome === 'joined') {
        this.joined = true
        await this.pruneStored()
        missing = await this.replica.missing()
      } else if (outcome === 'waiting') {
        return { progress: false, failed: true } // try again soon: no blocks through the relay meanwhile
      }
    }
    const arrived = this.wants.syncMissing(missing)
    if (arrived.length > 0) log.warn(`${arrived.length} missing blocks that no peer could serve arrived after all (${arrived.slice(0, 3).join(', ')}${arrived.length > 3 ? ', …' : ''})`)
    let progress = false
    let failed = false
    this.urgent = false
    for (const peer of candidates) {
      if (this.stopped) break
      if (this.urgent && !this.wants.isTrusted(peer) && this.wants.wantsOf(peer) > FEW_WANTS) {
        this.fetchAgain = true // a new round, the urgent work first
        break
      }
      const ask = this.wants.forPeer(peer, ROUND_CIDS_PER_PEER)
      let peerFailed = false
      for (let i = 0; i < ask.length && !this.stopped; i += this.opts.fetchBatch) {
        const batch = ask.slice(i, i + this.opts.fetchBatch)
        const answer = await this.requestBlocks(peer, batch)
        if (answer === undefined) { peerFailed = true; break }
        this.wants.answered(peer, batch, answer.stored, answer.complete)
        if (answer.stored.size > 0) progress = true
      }
      if (ask.length > 0) this.notePeerOutcome(peer, peerFailed)
      if (peerFailed) failed = true
    }
    const unavailable = this.wants.endRound()
    if (unavailable.length > 0) {
      log.warn(`${unavailable.length} missing blocks of ${this.replica.dbId} are unavailable: no peer could serve them in ${UNAVAILABLE_ROUNDS} rounds (${unavailable.slice(0, 3).join(', ')}${unavailable.length > 3 ? ', …' : ''}). ` +
        `They no longer hold sync back (syncState().unavailable), and are asked for again every ${this.opts.unavailableRetryMs} ms and of every new peer`)
      await this.emitProgress()
    }
    return { progress, failed }
  }

  /** Count a round in which `peer`'s requests failed (or did not); after `PEER_FAILURES_TO_DROP` running, it is the source of nothing. */
  private notePeerOutcome (peer: string, failed: boolean): void {
    if (!failed) {
      this.peerFailures.delete(peer)
      return
    }
    const n = (this.peerFailures.get(peer) ?? 0) + 1
    if (n < PEER_FAILURES_TO_DROP) {
      this.peerFailures.set(peer, n)
      return
    }
    this.peerFailures.delete(peer)
    this.wants.dropPeer(peer)
  }

  /** Forget wants now stored or covered (after a snapshot join). */
  private async pruneStored (): Promise<void> {
    for (const c of this.wants.cids()) {
      if (this.replica.isPendingChunk(c) || !await this.replica.storage.hasBlock(c)) continue
      this.wants.delete(c)
    }
  }

  /**
   * Ask the candidates for a snapshot (once each per session, again after a network failure, up
   * to 3 attempts) and join from the first offered one. A snapshot travels only over a direct
   * connection: a relayed circuit carries at most 128 KiB (circuit-relay-v2's default limit), a
   * snapshot node up to 1 MiB. An offer over a relayed connection waits up to
   * `SNAPSHOT_DIRECT_WAIT_MS` for a direct one (`'waiting'`: no blocks meanwhile); after that,
   * blocks flow, and the snapshot is still taken (offered again) once a direct connection opens.
   */
  private async trySnapshotJoin (candidates: Set<string>): Promise<'joined' | 'waiting' | 'none'> {
    let waiting = false
    for (const peer of candidates) {
      if (this.stopped) break
      if ((this.snapshotFailures.get(peer) ?? 0) >= SNAPSHOT_ATTEMPTS) continue
      const direct = this.transport.connection(peer).kind === 'direct'
      let offer = this.offers.get(peer)
      // An offer older than the wait is asked again: both sides' block counts may have moved.
      if (offer != null && direct && Date.now() - offer.at >= SNAPSHOT_DIRECT_WAIT_MS) offer = undefined
      if (offer === undefined) {
        const asked = await this.askSnapshot(peer)
        if (asked === 'failed') {
          this.snapshotFailures.set(peer, (this.snapshotFailures.get(peer) ?? 0) + 1)
          continue
        }
        this.offers.set(peer, offer = asked === undefined ? null : { ...asked, at: Date.now() })
      }
      if (offer === null) continue
      if (!direct) {
        // Wait once per peer and session; after that, blocks flow and the snapshot waits for a direct connection.
        if (this.waitedFor.has(peer)) continue
        if (Date.now() - offer.at < SNAPSHOT_DIRECT_WAIT_MS) waiting = true
        else this.waitedFor.add(peer)
        continue
      }
      const outcome = await this.joinFromSnapshot(peer, offer.root, offer.producer)
      if (outcome === 'joined') return 'joined'
      if (outcome === 'declined') {
        this.offers.set(peer, null)
      } else {
        // The peer may have made a newer snapshot meanwhile (it keeps the latest only): ask again,
        // soon — not replay the history meanwhile (a direct connection dying under the fetch is
        // the usual cause: in the catch-up bench a dead connection made 1 run in 6 replay 100
        // blocks, 2.8× the bytes).
        this.offers.delete(peer)
        const failures = (this.snapshotFailures.get(peer) ?? 0) + 1
        this.snapshotFailures.set(peer, failures)
        if (failures < SNAPSHOT_ATTEMPTS) waiting = true
      }
    }
    return waiting ? 'waiting' : 'none'
  }

  /**
   * Ask `peer` for a snapshot: its root and producer key, undefined (none offered, a bad answer,
   * or a producer whose snapshot disagreed with the history before: logged), or `'failed'` (the
   * network failed).
   */
  private async askSnapshot (peer: string): Promise<{ root: CID, producer: string } | undefined | 'failed'> {
    let response: Uint8Array
    try {
      const request = encodeSnapshotRequest({ db: this.replica.dbId, blocks: await this.replica.storage.countBlocks() })
      response = await this.transport.request(peer, SNAPSHOT_PROTOCOL, request, { timeoutMs: this.opts.snapshotTimeoutMs })
    } catch (err) {
      log.debug(`snapshot request to ${peer} failed: ${(err as Error).message}`)
      return 'failed'
    }
    try {
      const offer = decodeSnapshotResponse(response)
      if (offer.root === undefined) return undefined
      // Only a writer's snapshot is taken: its signed root CID commits to every node.
      const link = this.replica.openOptions().link
      if (!await verifySnapshotRoot(offer.root, offer.w as Uint8Array, offer.s as Uint8Array, link, offer.l)) throw new InvalidMessageError(`the snapshot root signature does not match its producer key${link !== undefined ? ', or the link signature is missing or wrong' : ''}`)
      if (!this.replica.mayWrite(offer.w as Uint8Array)) throw new InvalidMessageError('the snapshot producer is not on the write list')
      const producer = formatPublicKey(offer.w as Uint8Array)
      if (this.forgers.has(producer)) throw new InvalidMessageError(`writer ${producer} made a snapshot that disagreed with the history before`)
      return { root: offer.root, producer }
    } catch (err) {
      log.warn(`bad snapshot response from ${peer}: ${(err as Error).message}`)
      return undefined
    }
  }

  /**
   * Fetch, verify and install the snapshot `offered` by `peer` (made by writer `producer`), and
   * schedule its audit. Returns `'joined'`, `'declined'` (invalid: logged, nothing installed) or
   * `'failed'` (the network failed: worth another attempt).
   */
  private async joinFromSnapshot (peer: string, offered: CID, producer: string): Promise<'joined' | 'declined' | 'failed'> {
    try {
      const content = await fetchSnapshot(this.replica.dbId, offered, async cids => await this.fetchNodes(peer, cids, offered), p => {
        void this.emitProgress({ ...p, installed: false })
      }, { ...this.replica.openOptions(), mayWrite: writer => this.replica.mayWrite(writer) })
      if (this.stopped) return 'declined'
      const change = await this.replica.installSnapshot(content)
      this.lastSyncedAt = Date.now()
      log.debug(`joined ${this.replica.dbId} from snapshot ${offered.toString()} of ${peer}: ${content.docs.length} documents, ${content.covered.length} blocks covered`)
      await this.emitProgress({ root: offered.toString(), nodes: 0, fetched: 0, documents: change.changes.length, installed: true })
      // The audit runs later, in the background: the join is done.
      await this.audit.begin(offered.toString(), producer, peer)
      if (this.opts.snapshotAudit) this.scheduleAudit(this.opts.snapshotAuditDelayMs)
      return 'joined'
    } catch (err) {
      if (err instanceof InvalidBlockError || err instanceof InvalidMessageError) {
        log.warn(`snapshot ${offered.toString()} from ${peer} not installed: ${err.message}`)
        return 'declined'
      }
      if (!(err instanceof KiteError)) throw err
      log.debug(`snapshot ${offered.toString()} from ${peer} not fetched: ${err.message}`)
      return 'failed'
    }
  }

  /**
   * Fetch nodes by CID from one peer, for a snapshot join: only the nodes asked for are returned
   * (unverified). `have` names the snapshot's root, so the peer does not push the head blocks'
   * ancestors. Throws `NetworkError`/`TimeoutError` when the peer fails, `InvalidMessageError` for a
   * malformed answer.
   */
  private async fetchNodes (peer: string, cids: CID[], root: CID): Promise<Map<string, Uint8Array>> {
    const bytes = await this.transport.request(peer, BLOCKS_PROTOCOL,
      encodeBlocksRequest({ db: this.replica.dbId, cids, have: [root] }), { timeoutMs: this.opts.fetchTimeoutMs })
    const response = decodeBlocksResponse(bytes)
    const asked = new Set(cids.map(c => c.toString()))
    const out = new Map<string, Uint8Array>()
    const hashed = await Promise.all(response.blocks.map(async node => (await cidOfAsync(node)).toString()))
    response.blocks.forEach((node, i) => { if (asked.has(hashed[i] as string)) out.set(hashed[i] as string, node) })
    return out
  }

  /**
   * A replica that joined by address first needs the manifest (who may write, whether it is
   * encrypted): ask each peer for the block named by the database id until one has it.
   */
  private async fetchManifest (): Promise<{ progress: boolean, failed: boolean }> {
    let failed = false
    for (const peer of this.sources()) {
      let response
      try {
        const bytes = await this.transport.request(peer, BLOCKS_PROTOCOL,
          encodeBlocksRequest({ db: this.replica.dbId, cids: [parseCid(this.replica.dbId) as CID], have: [] }), { timeoutMs: this.opts.fetchTimeoutMs })
        response = decodeBlocksResponse(bytes)
      } catch (err) {
        log.debug(`manifest request to ${peer} failed: ${(err as Error).message}`)
        failed = true
        continue
      }
      for (const bytes of response.blocks) {
        if (!(bytes instanceof Uint8Array) || cidOf(bytes).toString() !== this.replica.dbId) continue
        try {
          const manifest = await this.replica.setManifest(bytes)
          this.noteHolder(peer)
          log.debug(`manifest of ${this.replica.dbId} received from ${peer} (${manifest.enc !== undefined ? 'encrypted' : 'plain'}, writers: ${manifest.write.join(', ')})`)
          void this.publishHeads()
          return { progress: true, failed: false }
        } catch (err) {
          if (err instanceof AccessError) {
            this.refuse(err)
            return { progress: false, failed: false }
          }
          log.warn(`dropped manifest from ${peer}: ${(err as Error).message}`)
        }
      }
    }
    return { progress: false, failed: failed || this.sources().length === 0 }
  }

  /** Stop fetching for good, and tell the error listeners. */
  private refuse (err: KiteError): void {
    this.refused = err
    log.warn(`replication of ${this.replica.dbId} stopped: ${err.message}`)
    this.reportError(err)
  }

  private reportError (err: KiteError): void {
    for (const l of this.errorListeners) {
      try { l(err) } catch (e) { log.warn('error listener threw', e) }
    }
  }

  /** Run the snapshot audit (if one is pending) in `ms`; again every `unavailableRetryMs` while blocks it needs are lacking. */
  private scheduleAudit (ms: number): void {
    if (this.stopped || this.auditTimer !== undefined) return
    this.auditTimer = setTimeout(() => {
      this.auditTimer = undefined
      void this.runAudit()
    }, ms)
  }

  private async runAudit (): Promise<void> {
    if (this.stopped || this.auditing) return
    this.auditing = true
    try {
      const record = await this.audit.run(this.auditFetcher(), err => { this.reportError(err) })
      if (record?.status === 'repaired') {
        this.forgers.add(record.producer)
        this.snapshots.invalidate()
      }
      this.auditLacking = record !== undefined && (record.status === 'pending' || record.uncovered.length > 0)
      if (this.auditLacking) this.scheduleAudit(this.opts.unavailableRetryMs)
    } catch (err) {
      if (this.stopped) return
      log.warn(`audit of the snapshot joined from failed: ${(err as Error).message}; trying again later`)
      this.scheduleAudit(this.opts.unavailableRetryMs)
    } finally {
      this.auditing = false
    }
  }

  /**
   * Fetches blocks for the audit: asks the peers in turn (those that served real blocks first)
   * for what the ones before did not serve. `have` is empty, so a responder pushes the asked
   * blocks' ancestors too (all covered: all wanted by the audit). A request that fails (a
   * responder pacing its answers to this replica: `answerBytesPerSecond`, or a lost connection)
   * is tried again after a pause, `AUDIT_ATTEMPTS` times, before the next peer is asked.
   */
  private auditFetcher (): BlockFetcher {
    return async cids => {
      const out = new Map<string, Uint8Array>()
      const peers = this.sources()
      for (const peer of [...peers.filter(p => this.wants.isTrusted(p)), ...peers.filter(p => !this.wants.isTrusted(p))]) {
        for (let attempt = 0; attempt < AUDIT_ATTEMPTS; attempt++) {
          const rest = cids.filter(c => !out.has(c))
          if (rest.length === 0 || this.stopped) return out
          try {
            const bytes = await this.transport.request(peer, BLOCKS_PROTOCOL,
              encodeBlocksRequest({ db: this.replica.dbId, cids: rest.map(c => parseCid(c) as CID), have: [] }), { timeoutMs: this.opts.fetchTimeoutMs })
            const blocks = decodeBlocksResponse(bytes).blocks
            const hashed = await Promise.all(blocks.map(async b => (await cidOfAsync(b)).toString()))
            blocks.forEach((b, i) => { out.set(hashed[i] as string, b) })
            break
          } catch (err) {
            log.debug(`audit: block request to ${peer} failed: ${(err as Error).message}`)
            await new Promise(resolve => setTimeout(resolve, AUDIT_PAUSE_MS * 2 ** attempt))
          }
        }
      }
      return out
    }
  }

  /**
   * Request blocks from one peer; returns the CIDs received (stored now or before) and whether
   * the answer was complete (not cut short by the message budget: what it lacks, the peer lacks),
   * or undefined if the peer failed. The response may also carry, unasked, chunks and ancestors
   * of what was asked: a block is accepted only if it was asked for, is a chunk or parent of a
   * block accepted before it in this response, or is missing here — content addressing makes
   * each of those safe to take from anyone.
   */
  private async requestBlocks (peer: string, cids: string[]): Promise<{ stored: Set<string>, complete: boolean } | undefined> {
    const asked = new Map(cids.map(c => [c, parseCid(c) as CID]))
    let response
    let complete: boolean
    try {
      // The root of the snapshot this replica joined from, if any, lets the peer stop at the blocks it covers.
      const root = await this.replica.snapshotRoot()
      const have = [...(root !== undefined ? [root] : []), ...await this.replica.heads()].slice(0, MAX_HEADS).map(h => parseCid(h) as CID)
      const bytes = await this.transport.request(peer, BLOCKS_PROTOCOL,
        encodeBlocksRequest({ db: this.replica.dbId, cids: [...asked.values()], have, ...responseBudget(this.transport.connection(peer)) }), { timeoutMs: this.opts.fetchTimeoutMs })
      response = decodeBlocksResponse(bytes)
      complete = bytes.byteLength < COMPLETE_ANSWER_BYTES
    } catch (err) {
      log.debug(`block request to ${peer} failed: ${(err as Error).message}`)
      return undefined
    }
    const acceptable = new Set(asked.keys())
    const missing = new Set(await this.replica.missing())
    const stored = new Set<string>()
    for (const bytes of response.blocks) {
      if (!(bytes instanceof Uint8Array)) continue
      const cid = cidOf(bytes)
      const c = cid.toString()
      if (!acceptable.has(c) && !missing.has(c) && !this.replica.isPendingChunk(c)) {
        log.debug(`ignored unrequested block ${c} from ${peer}`)
        continue
      }
      if (this.wants.isHeadset(c) && await this.receiveHeadset(c, bytes)) {
        stored.add(c)
        continue
      }
      if (this.replica.isPendingChunk(c)) {
        if (await this.receiveChunk(bytes, cid, peer)) stored.add(c)
        continue
      }
      const applied = await this.receive(bytes, peer, cid)
      if (applied === undefined) continue
      stored.add(c)
      // A block this replica already had (stored or covered) has its parents already: stored, covered or missing.
      if (!applied.applied && applied.missingChunks === undefined) continue
      for (const p of applied.parents) acceptable.add(p.toString())
      for (const chunk of applied.missingChunks ?? []) acceptable.add(chunk.toString())
    }
    if (stored.size > 0) {
      this.noteHolder(peer)
      await this.emitProgress()
    }
    return { stored, complete }
  }

  /** A chunk a held block waits for: verify, store, apply what it completes. */
  private async receiveChunk (bytes: Uint8Array, cid: CID, from: string): Promise<boolean> {
    try {
      for (const applied of await this.replica.receiveChunk(bytes, cid)) this.noteApplied(applied)
      this.wants.delete(cid.toString())
      return true
    } catch (err) {
      if (!(err instanceof InvalidBlockError)) throw err
      log.warn(`dropped chunk from ${from}: ${err.message}`)
      return false
    }
  }

  /** A head hash fetched by `want` that is a headset: store it and want its heads. */
  private async receiveHeadset (cid: string, bytes: Uint8Array): Promise<boolean> {
    try {
      const heads = await this.replica.storeHeadset(cid, bytes)
      this.wants.delete(cid)
      const unknown: string[] = []
      for (const h of heads) if (!await this.replica.storage.hasBlock(h)) unknown.push(h)
      if (unknown.length > 0) this.want(unknown)
      return true
    } catch {
      return false // not a headset: maybe a block
    }
  }

  private async emitProgress (snapshot?: SyncProgress['snapshot']): Promise<void> {
    if (this.progressListeners.size === 0) return
    const missing = (await this.outstanding()).length + this.wants.size
    const p: SyncProgress = { known: this.progress.fetched + missing, fetched: this.progress.fetched, documents: this.progress.documents, missing }
    if (snapshot !== undefined) p.snapshot = snapshot
    for (const l of this.progressListeners) {
      try { l(p) } catch (err) { log.warn('progress listener threw', err) }
    }
    if (missing === 0) this.progress = { fetched: 0, documents: 0 }
  }
}

/**
 * The response budget of a block request: none on a direct connection; on a relayed circuit, what
 * it may still carry less `CIRCUIT_RESERVE_BYTES` (room for the request, pings and signalling),
 * so the answer never makes the relay cut the circuit; with no circuit open yet (a request opens
 * one), `UNKNOWN_CIRCUIT_BYTES`. The transport replaces a spent circuit by a new one. A block
 * bigger than any circuit's budget waits for a direct connection, or a peer reached without a
 * relay (a keeper).
 */
function responseBudget (connection: PeerConnection): { max?: number } {
  if (connection.kind === 'direct') return {}
  const left = connection.kind === 'relayed' ? connection.remainingBytes : undefined
  return { max: left === undefined ? UNKNOWN_CIRCUIT_BYTES : Math.max(4096, left - CIRCUIT_RESERVE_BYTES) }
}

/** What a request over a circuit leaves unasked for, bytes. */
const CIRCUIT_RESERVE_BYTES = 16 * 1024
/** The budget of a request over a circuit not opened yet, bytes (relays allow 128 KiB per circuit by default). */
const UNKNOWN_CIRCUIT_BYTES = 48 * 1024

/** What a transport serves for one database: its replica's blocks and snapshots. */
interface Served { replica: Replica, snapshots: SnapshotServer }

/** Per transport: what it serves, by database id, and how to stop serving. */
const served = new WeakMap<Transport, { dbs: Map<string, Served>, unhandle: () => void }>()

/**
 * Serve `replica`'s blocks on `/kitedb/1/blocks` and the snapshots of `snapshots` on
 * `/kitedb/1/snapshot` (their nodes go out over `/kitedb/1/blocks` too) of `transport`. One
 * handler per protocol and transport dispatches by the request's database id. Returns a function
 * that stops serving this replica.
 */
export function serveBlocks (transport: Transport, replica: Replica, snapshots: SnapshotServer): () => void {
  let entry = served.get(transport)
  if (entry === undefined) {
    const dbs = new Map<string, Served>()
    const unhandleBlocks = transport.handle(BLOCKS_PROTOCOL, async (data, from) => await answerBlockRequest(dbs, data, from))
    const unhandleSnapshots = transport.handle(SNAPSHOT_PROTOCOL, async (data, from) => await answerSnapshotRequest(dbs, data, from))
    served.set(transport, entry = { dbs, unhandle: () => { unhandleBlocks(); unhandleSnapshots() } })
  }
  const { dbs, unhandle } = entry
  dbs.set(replica.dbId, { replica, snapshots })
  return () => {
    if (dbs.get(replica.dbId)?.replica !== replica) return
    dbs.delete(replica.dbId)
    if (dbs.size === 0) {
      unhandle()
      served.delete(transport)
    }
  }
}

/** `decode(data)`, logging the reason (a warning naming `what` and the peer) before rethrowing when it throws. */
function decodeLogged<T> (what: string, decode: (data: Uint8Array) => T, data: Uint8Array, from: string): T {
  try {
    return decode(data)
  } catch (err) {
    log.warn(`bad ${what} from ${from}: ${(err as Error).message}`)
    throw err
  }
}

async function answerBlockRequest (dbs: Map<string, Served>, data: Uint8Array, from: string): Promise<Uint8Array> {
  const req = decodeLogged('block request', decodeBlocksRequest, data, from)
  const target = dbs.get(req.db)
  if (target === undefined) return encodeBlocksResponse({ blocks: [] })
  const { replica, snapshots } = target
  // A requester that joined from our latest snapshot names its root: the walk stops at what it covers.
  const have = new Set(req.have.map(c => c.toString()))
  const covered = snapshots.coveredFor(have)
  const blocks = await collectBlocks(req, async cid => {
    const node = snapshots.node(cid)
    if (node !== undefined) return { bytes: node, walk: false } // a snapshot node: nothing to walk
    const bytes = (await replica.storage.getBlocks([cid]))[0] ?? await replica.getHeadset(cid) ??
      (cid === replica.dbId ? await replica.storage.getMeta<Uint8Array>(MANIFEST_KEY) : undefined)
    return bytes === undefined ? undefined : { bytes, walk: true }
  }, cid => have.has(cid) || covered.has(cid))
  return encodeBlocksResponse({ blocks })
}

/**
 * The answer to a blocks request: the asked blocks first, then, breadth first, their chunks and
 * ancestors, up to the requester's heads (`stop`) and the message budget (`req.max`, at most
 * `MAX_MESSAGE_BYTES`), so a requester that lacks a long chain gets it in one round trip.
 * `lookup` gives a node's bytes, and whether to walk its chunks and parents (a block: yes; a
 * snapshot node: no; anything that is not a block is not walked either). Used by replicas and
 * keepers alike.
 */
export async function collectBlocks (
  req: BlocksRequest,
  lookup: (cid: string) => Promise<{ bytes: Uint8Array, walk: boolean } | undefined>,
  stop: (cid: string) => boolean
): Promise<Uint8Array[]> {
  const queue = req.cids.map(c => c.toString())
  const sent = new Set<string>()
  const blocks: Uint8Array[] = []
  let size = 64
  const budget = Math.min(MAX_MESSAGE_BYTES, req.max ?? MAX_MESSAGE_BYTES)
  while (queue.length > 0 && blocks.length < MAX_REQUEST_CIDS) {
    const cid = queue.shift() as string
    if (sent.has(cid)) continue
    sent.add(cid)
    const found = await lookup(cid)
    if (found === undefined) continue
    const { bytes } = found
    if (size + bytes.byteLength + 16 > budget) {
      if (64 + bytes.byteLength + 16 > budget) continue // can never fit this budget: left out, the rest may
      break // the requester asks again for the rest
    }
    size += bytes.byteLength + 16
    blocks.push(bytes)
    if (!found.walk) continue
    try {
      const header = readBlockHeader(bytes)
      for (const c of header.chunks) queue.push(c.toString())
      for (const p of header.parents) if (!stop(p.toString())) queue.push(p.toString())
    } catch {
      // a chunk, a headset or the manifest: nothing to walk
    }
  }
  return blocks
}

async function answerSnapshotRequest (dbs: Map<string, Served>, data: Uint8Array, from: string): Promise<Uint8Array> {
  const req = decodeLogged('snapshot request', decodeSnapshotRequest, data, from)
  const served = dbs.get(req.db)
  // A replica that may not write offers none: joiners take snapshots from writers only.
  if (served === undefined || !served.replica.canWrite) return encodeSnapshotResponse({})
  const root = await served.snapshots.offer(req.blocks, from)
  return encodeSnapshotResponse(root !== undefined ? { root, ...await signSnapshotRoot(root, served.replica.signer, served.replica.link) } : {})
}
