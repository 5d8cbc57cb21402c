/**
 * Fetching what a replica wants (docs/design.md, "Replication"): heads peers announced, parents
 * that stored blocks name but that are not stored (`missing`, persisted, so a walk interrupted by
 * a reload resumes), chunks of held blocks, the app's asks, and the manifest of a database joined
 * by address. Fetch rounds ask the peers, those that served real blocks first, each in batches for
 * what it may serve in the `WantList`'s order, walking parents until the DAG is complete; missing
 * blocks no peer can serve become *unavailable* instead of holding sync back for good. Every
 * received block is verified (CID, decoding, database) before it is applied; bad input is dropped
 * with a logged reason and never stops the engine. Before a round, a replica that lacks most of a
 * peer's history may join from its snapshot (`SnapshotJoiner`). Reports catch-up progress.
 *
 * Which heads peers announce is gossip, the `Replicator`'s; the requests go out through
 * `ask-blocks.ts`.
 *
 * One piece, though over 400 lines: a round, the requests it makes and the handling of what they
 * bring back share the round's state (urgency, failures per peer, what was asked and stored).
 */
import { AccessError, InvalidBlockError, type KiteError } from '../errors.js'
import { type CID, type EncodedBlock, MAX_PARENTS, cidOf, parseCid } from '../crdt/index.js'
import { createLogger } from '../log.js'
import { type Applied, type Replica } from './replica.js'
import { type Transport } from './transport.js'
import { MAX_HEADS } from './wire.js'
import { UNAVAILABLE_ROUNDS, type WantList } from './want-list.js'
import { askBlocks, isComplete, responseBudget } from './ask-blocks.js'
import { type SnapshotFetchProgress } from './snapshot/index.js'
import { type SnapshotJoiner } from './snapshot/join.js'

const log = createLogger('sync')

/** Most CIDs asked of one peer in one fetch round (in requests of `fetchBatch`). */
const ROUND_CIDS_PER_PEER = 1024
/** Rounds running in which a peer's requests fail before it stops being the source of anything. */
const PEER_FAILURES_TO_DROP = 3
/**
 * A peer holding at most this many announced wants looks like an honest replica (its heads are a
 * few: about one per concurrent writer, at most `MAX_PARENTS` merged by its next write); one
 * holding more is asked after every such peer, and not at all in a round that urgent work
 * interrupted.
 */
const FEW_WANTS = MAX_PARENTS

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

/** Tuning of a `Fetcher` (see `ReplicatorOptions`). */
export interface FetcherOptions {
  /** CIDs per fetch request */
  fetchBatch: number
  /** timeout of one fetch request, ms */
  fetchTimeoutMs: number
  /** how often an unavailable block is asked for again, ms (for the log) */
  unavailableRetryMs: number
}

/** What a `Fetcher` asks of, and tells, the replication engine. */
export interface FetcherHooks {
  /** whether replication stopped */
  stopped: () => boolean
  /** whom blocks and the manifest are asked of (peers and keepers), sorted */
  sources: () => string[]
  /** `peer` showed it holds this database: it served blocks or the manifest */
  holder: (peer: string) => void
  /** the manifest of a database joined by address arrived */
  manifest: () => void
  /** replication cannot go on (this replica's key does not fit the manifest): fetching stopped for good */
  error: (err: KiteError) => void
}

/** Fetches what one replica wants from its peers; see the module comment. */
export class Fetcher {
  private readonly replica: Replica
  private readonly transport: Transport
  /** what this replica wants and does not store, by whom it can be served (shared with the engine) */
  private readonly wants: WantList
  private readonly opts: FetcherOptions
  private readonly hooks: FetcherHooks
  /** joins from a snapshot before a round, when snapshot joins are on */
  private readonly joiner?: SnapshotJoiner
  /** per peer: fetch rounds running in which its requests failed */
  private readonly peerFailures = new Map<string, number>()
  private fetching = false
  private fetchAgain = false
  /**
   * Work that must not wait behind junk came in during a round (a head announced by a peer that
   * served real blocks or holds few wants, an inline block applied, the app's ask): the round
   * stops before its next untrusted peer holding many wants, and a new one starts.
   */
  private urgent = false
  private retryTimer?: ReturnType<typeof setTimeout>
  /** set when fetching cannot go on (e.g. the key does not fit the manifest) */
  private refused?: KiteError
  private lastSynced: number | null = null
  private readonly progressListeners = new Set<(p: SyncProgress) => void>()
  private progress = { fetched: 0, documents: 0 }
  /** outstanding missing blocks at the last progress event that read them (see `emitProgress`) */
  private outstandingCount = 0

  constructor (replica: Replica, transport: Transport, wants: WantList, options: FetcherOptions, hooks: FetcherHooks, joiner?: SnapshotJoiner) {
    this.replica = replica
    this.transport = transport
    this.wants = wants
    this.opts = options
    this.hooks = hooks
    if (joiner !== undefined) this.joiner = joiner
  }

  /** ms since the epoch of the last block received from a peer (or snapshot installed), or null */
  get lastSyncedAt (): number | null { return this.lastSynced }

  /** Note that a snapshot was just installed (see `lastSyncedAt`). */
  synced (): void {
    this.lastSynced = Date.now()
  }

  /** Stop retrying (replication stopped). */
  stop (): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
  }

  /**
   * Heads `from` announced: want, within its limits, those not stored. Resolves with whether any
   * is wanted and how many were refused (over the limits). Fetches nothing: see `fetchMissing`.
   */
  async announce (heads: string[], from: string): Promise<{ wanted: boolean, refused: number }> {
    let wanted = false
    let refused = 0
    // Most announcements name this replica's own heads (a peer in step republishing): known
    // without reading storage (`Replica.heads` is cached).
    const mine = new Set(await this.replica.heads())
    for (const h of heads) {
      if (mine.has(h) || await this.replica.storage.hasBlock(h)) continue
      if (this.wants.announce(h, from) === 'refused') refused++
      else wanted = true
    }
    return { wanted, refused }
  }

  /** Whether work for `peer` goes before junk: it served real blocks, or holds few announced wants. */
  isPriority (peer: string): boolean {
    return this.wants.isTrusted(peer) || this.wants.wantsOf(peer) <= FEW_WANTS
  }

  /** Work that must not wait behind junk came in: a round running stops before its next untrusted peer holding many wants. */
  hurry (): void {
    this.urgent = true
  }

  /** Fetch these CIDs (blocks, or headsets named by a head hash) from any peer, and everything they lead to. */
  want (cids: string[]): void {
    for (const c of cids) this.wants.wantOpen(c, 'headset')
    this.urgent = true
    void this.fetchMissing()
  }

  /** The missing blocks that hold sync back: named as parents by stored blocks, not stored, and not unavailable. */
  async outstanding (): Promise<string[]> {
    return (await this.replica.missing()).filter(c => !this.wants.isUnavailable(c))
  }

  /** Called with catch-up progress after each fetched batch. Returns an unsubscribe function. */
  onProgress (listener: (p: SyncProgress) => void): () => void {
    this.progressListeners.add(listener)
    return () => { this.progressListeners.delete(listener) }
  }

  /**
   * Verify and apply a block `from` sent (or one the topic validator verified already); a block
   * that is not valid is dropped (logged): resolves with undefined.
   */
  async receive (bytes: Uint8Array | EncodedBlock, from: string, expected?: CID): Promise<Applied | undefined> {
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
      this.lastSynced = Date.now()
      this.progress.fetched++
      this.progress.documents += applied.changes.length
    }
  }

  /**
   * Fetch wanted heads and missing parents until none is left or no peer can supply more. Never
   * rejects (callers start it and move on): a round that fails on the storage is logged, and the
   * next call (the replicator's timer, a new announcement) tries again; after a stop, when the
   * database may have closed its storage under a round in flight, such a failure is expected and
   * only logged at `debug`.
   */
  async fetchMissing (): Promise<void> {
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
        while (!this.hooks.stopped() && (round = await this.fetchRound()).progress) { /* progress: go on walking parents */ }
        failed = round?.failed ?? false
      } while (this.fetchAgain && !this.hooks.stopped())
    } catch (err) {
      if (this.hooks.stopped()) log.debug(`fetch round of ${this.replica.dbId} ended by the stop: ${(err as Error).message}`)
      else log.warn(`fetch round of ${this.replica.dbId} failed: ${(err as Error).message}`)
    } finally {
      this.fetching = false
    }
    // A request failed (peer unreachable, timeout, connection replaced): try again soon rather than
    // at the next republish.
    if (failed && !this.hooks.stopped() && this.retryTimer === undefined) {
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
    const peers = this.hooks.sources()
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
    if (this.joiner !== undefined && !this.joiner.joined && this.wants.size + missing.length > 0) {
      const outcome = await this.joiner.tryJoin(new Set(candidates))
      if (outcome === 'joined') {
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
      if (this.hooks.stopped()) break
      if (this.urgent && !this.isPriority(peer)) {
        this.fetchAgain = true // a new round, the urgent work first
        break
      }
      const ask = this.wants.forPeer(peer, ROUND_CIDS_PER_PEER)
      let peerFailed = false
      for (let i = 0; i < ask.length && !this.hooks.stopped(); i += this.opts.fetchBatch) {
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
   * A replica that joined by address first needs the manifest (who may write, whether it is
   * encrypted): ask each peer for the block named by the database id until one has it.
   */
  private async fetchManifest (): Promise<{ progress: boolean, failed: boolean }> {
    let failed = false
    for (const peer of this.hooks.sources()) {
      let blocks
      try {
        blocks = (await askBlocks(this.transport, peer, { db: this.replica.dbId, cids: [parseCid(this.replica.dbId) as CID], have: [] }, this.opts.fetchTimeoutMs)).blocks
      } catch (err) {
        log.debug(`manifest request to ${peer} failed: ${(err as Error).message}`)
        failed = true
        continue
      }
      for (const bytes of blocks) {
        if (!(bytes instanceof Uint8Array) || cidOf(bytes).toString() !== this.replica.dbId) continue
        try {
          const manifest = await this.replica.setManifest(bytes)
          this.hooks.holder(peer)
          log.debug(`manifest of ${this.replica.dbId} received from ${peer} (${manifest.enc !== undefined ? 'encrypted' : 'plain'}, writers: ${manifest.write.join(', ')})`)
          this.hooks.manifest()
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
    return { progress: false, failed: failed || this.hooks.sources().length === 0 }
  }

  /** Stop fetching for good, and tell the engine. */
  private refuse (err: KiteError): void {
    this.refused = err
    log.warn(`replication of ${this.replica.dbId} stopped: ${err.message}`)
    this.hooks.error(err)
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
    let blocks
    let complete: boolean
    try {
      // The root of the snapshot this replica joined from, if any, lets the peer stop at the blocks it covers.
      const root = await this.replica.snapshotRoot()
      const have = [...(root !== undefined ? [root] : []), ...await this.replica.heads()].slice(0, MAX_HEADS).map(h => parseCid(h) as CID)
      const answer = await askBlocks(this.transport, peer,
        { db: this.replica.dbId, cids: [...asked.values()], have, ...responseBudget(this.transport.connection(peer)) }, this.opts.fetchTimeoutMs)
      blocks = answer.blocks
      complete = isComplete(answer.size)
    } catch (err) {
      log.debug(`block request to ${peer} failed: ${(err as Error).message}`)
      return undefined
    }
    const acceptable = new Set(asked.keys())
    const missing = new Set(await this.replica.missing())
    const stored = new Set<string>()
    for (const bytes of blocks) {
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
      this.hooks.holder(peer)
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

  /** Tell the progress listeners where catching up stands (with `snapshot`: where a snapshot join stands). */
  async emitProgress (snapshot?: SyncProgress['snapshot']): Promise<void> {
    if (this.progressListeners.size === 0) return
    // While a snapshot's nodes arrive its install holds the storage: the last count read stands.
    if (snapshot === undefined || snapshot.installed) this.outstandingCount = (await this.outstanding()).length
    const missing = this.outstandingCount + this.wants.size
    const p: SyncProgress = { known: this.progress.fetched + missing, fetched: this.progress.fetched, documents: this.progress.documents, missing }
    if (snapshot !== undefined) p.snapshot = snapshot
    for (const l of this.progressListeners) {
      try { l(p) } catch (err) { log.warn('progress listener threw', err) }
    }
    if (missing === 0) this.progress = { fetched: 0, documents: 0 }
  }
}
