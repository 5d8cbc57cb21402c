/**
 * The replication engine of one database over a `Transport` (docs/design.md, "Replication"): it
 * gossips, and wires the parts that do the rest.
 *
 * - every new local block is published on the database topic, inline when ≤ 64 KiB;
 * - heads are published on start, to every new subscriber, and every `republishMs` (go-ds-crdt's
 *   rebroadcast: OrbitDB's one-shot exchange stalls readers that join late, orbitdb#1255) — only
 *   every `IN_STEP_REPUBLISH_FACTOR` × `republishMs` while the room is in step (`inStep`);
 * - inline blocks are verified by the topic validator before a message is delivered or
 *   forwarded; heads peers announce are wanted (bounded by the `WantList`, want-list.ts) and
 *   fetched by the `Fetcher` (fetcher.ts), which walks parents until the DAG is complete and
 *   verifies every block before it is applied;
 * - a replica that lacks most of a peer's history joins from the peer's snapshot
 *   (`SnapshotJoiner`, snapshot/join.ts; docs/snapshots.md) before fetching blocks, and offers its
 *   own (`SnapshotServer`); after the join it audits the snapshot against the history in the
 *   background (`AuditRunner`, audit-runner.ts);
 * - it serves its blocks and snapshots to peers (serve-blocks.ts) and, when the transport has
 *   keepers, hands them to keepers (`KeepClient`, keep-client.ts).
 *
 * One piece, though over 400 lines: gossip and the peer list it keeps are one job (the peers are
 * who is heard on the topic), and the documented options and state of the engine are a fifth.
 */
import { InvalidBlockError, type KiteError } from '../errors.js'
import { type CID, type EncodedBlock, cidOf, parseCid } from '../crdt/index.js'
import { createLogger } from '../log.js'
import { type Applied, type Replica } from './replica.js'
import { SnapshotServer } from './snapshot/index.js'
import { SnapshotJoiner, type SnapshotPreview } from './snapshot/join.js'
import { type Transport } from './transport.js'
import { DEFAULT_LIMITS, type Limits } from './limits.js'
import { WantList } from './want-list.js'
import { Coalesced } from './coalesce.js'
import { Fetcher, type SyncProgress } from './fetcher.js'
import { SnapshotAudit, type SnapshotAuditState } from './audit.js'
import { AuditRunner } from './audit-runner.js'
import { serveBlocks } from './serve-blocks.js'
import { KeepClient } from './keep-client.js'
import { INLINE_BLOCK_BYTES, MAX_REQUEST_CIDS, decodeHeadsMessage, encodeHeadsMessage, isPresenceMessage, topicOf } from './wire.js'

const log = createLogger('sync')
/** Most peers the replicator remembers hearing from (and counts as holders). */
const MAX_PEERS_HEARD = 1024
/** Heads are published for newly heard peers and new subscriptions at most once per this long, ms. */
const NEW_PEER_PUBLISH_MS = 1000
/** Refused announcements are logged at most once per peer per this long, ms. */
const REFUSAL_LOG_MS = 60_000
/**
 * While the room is in step (see `inStep`), heads are republished only every this many
 * `republishMs` (docs/design.md, "Replication").
 */
const IN_STEP_REPUBLISH_FACTOR = 10

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
  /** fetches what `wants` and the storage's missing set name */
  private readonly fetcher: Fetcher
  /** per peer: when a refusal of its announcements was last logged, ms */
  private readonly refusalLogged = new Map<string, number>()
  /** peers by the time (ms) we last heard from them */
  private readonly seen = new Map<string, number>()
  /** per peer: the heads it last announced, sorted and joined (bounded like `seen`) */
  private readonly announced = new Map<string, string>()
  /** periodic republications skipped in a row because the room was in step */
  private quietTicks = 0
  private stopped = false
  private readonly peerListeners = new Set<(peers: string[]) => void>()
  private readonly previewListeners = new Set<(p: SnapshotPreview) => void>()
  private lastPeers: string[] = []
  /** inline blocks verified by the topic validator, waiting for the message handler, by CID */
  private readonly verified = new Map<string, EncodedBlock>()
  private readonly errorListeners = new Set<(err: KiteError) => void>()
  private readonly snapshots: SnapshotServer
  /** joins from a peer's snapshot (absent when `snapshotJoin` is off) */
  private readonly joiner?: SnapshotJoiner
  /** peers that showed they hold this database (see `SyncState.holders`) */
  private readonly holders = new Set<string>()
  /** the heads published for new peers and new subscriptions (`publishForNewPeers`) */
  private readonly newPeersPublish = new Coalesced(NEW_PEER_PUBLISH_MS, () => { void this.publishHeads() })
  private readonly audit: SnapshotAudit
  private readonly audits: AuditRunner
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
    const stopped = (): boolean => this.stopped
    this.audits = new AuditRunner(this.audit, transport, { retryMs: this.opts.unavailableRetryMs, fetchTimeoutMs: this.opts.fetchTimeoutMs }, {
      stopped,
      peers: () => {
        const peers = this.sources()
        return [...peers.filter(p => this.wants.isTrusted(p)), ...peers.filter(p => !this.wants.isTrusted(p))]
      },
      repaired: producer => {
        this.joiner?.distrust(producer)
        this.snapshots.invalidate()
      },
      error: err => { this.reportError(err) }
    })
    if (this.opts.snapshotJoin) {
      this.joiner = new SnapshotJoiner(replica, transport, { snapshotTimeoutMs: this.opts.snapshotTimeoutMs, fetchTimeoutMs: this.opts.fetchTimeoutMs }, {
        stopped,
        progress: p => { void this.fetcher.emitProgress({ ...p, installed: false }) },
        preview: p => { for (const l of this.previewListeners) l(p) },
        installed: async (root, producer, peer, change) => {
          this.fetcher.synced()
          await this.fetcher.emitProgress({ root: root.toString(), nodes: 0, fetched: 0, documents: change.changes.length, installed: true })
          // The audit runs later, in the background: the join is done.
          await this.audit.begin(root.toString(), producer, peer)
          if (this.opts.snapshotAudit) this.audits.schedule(this.opts.snapshotAuditDelayMs)
        }
      })
    }
    this.fetcher = new Fetcher(replica, transport, this.wants, {
      fetchBatch: this.opts.fetchBatch,
      fetchTimeoutMs: this.opts.fetchTimeoutMs,
      unavailableRetryMs: this.opts.unavailableRetryMs
    }, {
      stopped,
      sources: () => this.sources(),
      holder: peer => { this.noteHolder(peer) },
      manifest: () => { void this.publishHeads() },
      error: err => { this.reportError(err) }
    }, this.joiner)
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
      if ((await this.fetcher.announce(heads, from)).wanted) {
        this.fetcher.hurry()
        void this.fetcher.fetchMissing()
      }
    })().catch(err => { log.debug(`heads from ${from} not taken: ${(err as Error).message}`) })
  }

  /** Subscribe, serve blocks, announce heads and start the republish timer. */
  start (): void {
    this.cleanups.push(
      this.transport.subscribe(this.topic, (data, from) => { this.onMessage(data, from) }, {
        validate: async (data, from) => await this.validate(data, from)
      }),
      // A peer that (re)subscribes hears the heads soon, once a second for all such peers: a
      // subscription is announced again whenever a gossip stream is set up again, so a flapping
      // connection, or a peer sending SUBSCRIBE in a loop, must not make this replica flood the room.
      this.transport.onSubscriber(this.topic, () => {
        this.notifyPeers()
        this.publishForNewPeers()
      }),
      serveBlocks(this.transport, this.replica, this.snapshots)
    )
    if (Number.isFinite(this.opts.snapshotWarmMs) && Number.isFinite(this.opts.snapshotMinBlocks)) {
      this.cleanups.push(this.snapshots.warm(this.opts.snapshotWarmMs))
    }
    void this.publishHeads()
    void this.fetcher.fetchMissing()
    if (this.keeping !== undefined) {
      this.keeping.start()
      const keeping = this.keeping
      this.cleanups.push(() => { keeping.stop() })
    }
    if (this.opts.snapshotAudit) this.audits.schedule(this.opts.snapshotAuditDelayMs)
    // A producer whose snapshot disagreed with the history in an earlier session is still not trusted.
    void this.audit.state().then(r => { if (r?.status === 'repaired') this.joiner?.distrust(r.producer) }, () => {})
    this.timer = setInterval(() => {
      void this.republish()
      void this.fetcher.fetchMissing()
      this.notifyPeers()
    }, this.opts.republishMs)
  }

  /**
   * The periodic republication: the heads, unless the room is in step (then only every
   * `IN_STEP_REPUBLISH_FACTOR`-th time, in case something was missed that nothing else shows).
   */
  private async republish (): Promise<void> {
    if (this.stopped) return
    const heads = await this.replica.heads()
    if (this.inStep(heads) && ++this.quietTicks < IN_STEP_REPUBLISH_FACTOR) return
    this.quietTicks = 0
    await this.publish(heads, [])
  }

  /**
   * Whether republishing `heads` (this replica's) would tell no one anything: there are peers, each
   * is a topic subscriber (connected, so gossipsub knows it and it stays in `peers()` without being
   * heard), and each last announced exactly these heads. A peer that lacks them, is heard only
   * through the relay, or joins, keeps the republication going (docs/design.md, "Replication").
   */
  private inStep (heads: string[]): boolean {
    const peers = this.peers()
    if (peers.length === 0) return false
    const subscribed = new Set(this.transport.subscribers(this.topic))
    const key = [...heads].sort().join(' ')
    return peers.every(p => subscribed.has(p) && this.announced.get(p) === key)
  }

  /**
   * The network came back (a relay reservation was made again): publish the heads now, and once
   * more a moment later (the relay may not have rejoined the topic yet), so what was missed flows
   * both ways — peers that hear heads they lack fetch them, and answer with their own (`touch`).
   */
  reconnected (): void {
    if (this.stopped) return
    void this.publishHeads()
    void this.fetcher.fetchMissing()
    setTimeout(() => { void this.publishHeads(); void this.fetcher.fetchMissing() }, 1000)
  }

  /** Stop replicating (the replica stays usable locally). */
  stop (): void {
    this.stopped = true
    if (this.timer !== undefined) clearInterval(this.timer)
    this.fetcher.stop()
    this.audits.stop()
    this.newPeersPublish.cancel()
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
    this.fetcher.want(cids)
  }

  /**
   * The missing blocks that hold sync back: named as parents by stored blocks, not stored, and
   * not unavailable (see `SyncState.unavailable`). `syncFromHeadHash` waits for none to be left.
   */
  async outstanding (): Promise<string[]> {
    return await this.fetcher.outstanding()
  }

  /** Called with catch-up progress after each fetched batch. Returns an unsubscribe function. */
  onProgress (listener: (p: SyncProgress) => void): () => void {
    return this.fetcher.onProgress(listener)
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

  /**
   * Called, while this replica holds nothing and joins from a snapshot, with the documents of each
   * page as it arrives, then once the preview ends (see `SnapshotPreview`). Returns an
   * unsubscribe function.
   */
  onPreview (listener: (p: SnapshotPreview) => void): () => void {
    this.previewListeners.add(listener)
    return () => { this.previewListeners.delete(listener) }
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
      lastSyncedAt: this.fetcher.lastSyncedAt,
      snapshot: await this.replica.snapshotRoot() ?? null,
      holders: this.holders.size,
      audit: await this.audit.state() ?? null,
      kept: await this.keeping?.isKept() ?? false
    }
  }

  private reportError (err: KiteError): void {
    for (const l of this.errorListeners) {
      try { l(err) } catch (e) { log.warn('error listener threw', e) }
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
    // answer with our heads soon rather than at the next republish.
    if (isNew) this.publishForNewPeers()
  }

  /**
   * Publish the heads now, or, when they were published for new peers less than
   * `NEW_PEER_PUBLISH_MS` ago, once that long has passed: once for all the new peers and new
   * subscriptions of a second, so fresh origins or subscriptions announced in a loop cannot make
   * this replica publish at their pace.
   */
  private publishForNewPeers (): void {
    if (!this.stopped) this.newPeersPublish.run()
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
        void this.fetcher.fetchMissing()
      }
      this.audits.peerAppeared()
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
    if (isPresenceMessage(data)) return // the database layer's presence (db/presence.ts) reads those
    void this.handleMessage(data, from).catch(err => { log.warn(`dropped message from ${from}: ${(err as Error).message}`) })
  }

  /**
   * The topic validator: a message is delivered and forwarded only if it decodes and each inline
   * block is valid (signed, allowed writer, right key, named among the message's heads). Blocks
   * it verified are kept for `handleMessage`, so nothing is verified twice.
   */
  private async validate (data: Uint8Array, from: string): Promise<boolean> {
    if (this.stopped) return false
    if (isPresenceMessage(data)) return true // checked by the presence's own validator
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
    this.noteAnnounced(from, msg.heads.map(h => h.toString()))
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
      if ((await this.fetcher.receive(verified ?? bytes, from, cid))?.applied === true) this.fetcher.hurry()
    }
    const { wanted, refused } = await this.fetcher.announce(msg.heads.map(h => h.toString()), from)
    if (wanted && this.fetcher.isPriority(from)) this.fetcher.hurry()
    if (refused > 0) this.logRefusedWants(from, refused)
    if (wanted) void this.fetcher.fetchMissing()
  }

  /** Remember the heads `peer` announced (see `inStep`); bounded like `seen`, the least recently heard go first. */
  private noteAnnounced (peer: string, heads: string[]): void {
    this.announced.delete(peer)
    this.announced.set(peer, [...heads].sort().join(' '))
    while (this.announced.size > MAX_PEERS_HEARD) this.announced.delete(this.announced.keys().next().value as string)
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
}
