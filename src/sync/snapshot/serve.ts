/**
 * The snapshots a replica offers its peers (docs/snapshots.md): when one is made (asked for, or
 * ahead of time once writes go quiet), how often (rate limits per peer and in total), and which
 * nodes it serves. The blocks protocol that carries its nodes is served by `serve-blocks.ts`.
 */
import { type CID } from '../../crdt/index.js'
import { createLogger } from '../../log.js'
import { type Replica } from '../replica.js'
import { type BuiltSnapshot, buildSnapshot } from './build.js'

const log = createLogger('snapshot')

/** Options of `SnapshotServer`. */
export interface SnapshotServerOptions {
  /**
   * a peer's requests make a new snapshot at most once per this long, ms (default 30000,
   * `Limits.snapshotBuildPerPeerMs`); meanwhile it is offered the latest one made, or none
   */
  perPeerMs?: number
  /**
   * how many of the replica's missing blocks are unavailable (no peer could serve them; see
   * `WantList`): those do not keep a snapshot from being made (default: none are)
   */
  unavailable?: () => number
  /** clock, ms (default `Date.now`) */
  now?: () => number
}

/**
 * Share of its time a replica spends making snapshots at most: a new one is made no sooner after
 * the last than `(1 / share - 1)` times that one's making time (9×), whoever asks.
 */
const BUILD_SHARE = 0.1
/**
 * A snapshot is stale when the blocks it does not cover reach this share of those it covers, and
 * at least `STALE_MIN_BLOCKS` and `minBlocks`: a joiner offered it would replay that many blocks,
 * which costs both replicas more than making a new one, so a new one may be made then despite the
 * total limit. Each such build needs the history to have grown by a quarter, and by 50 blocks,
 * since the last, so there are at most 4 + log₁.₂₅(blocks ÷ 200) of them in a session (42 for a
 * million blocks).
 */
const STALE_SHARE = 0.25
/** Fewest blocks a snapshot does not cover for it to be stale (about 2–4 s of replay). */
const STALE_MIN_BLOCKS = 50
/** Peers remembered for the per-peer build limit (the oldest are forgotten first). */
const MAX_BUILD_PEERS = 1024

/**
 * The snapshots a replica serves: made when asked and its heads moved since the last one, or
 * ahead of time by `warm` once writes go quiet, and only the latest kept (its nodes' bytes and
 * covered set stay in memory until the next one).
 *
 * Making one costs CPU time in proportion to the documents (about 50 ms for 10,000), so it is
 * rate-limited, per peer and in total: a peer's requests make a new one at most once per
 * `perPeerMs`, and any new one comes no sooner after the last than 9× that one's making time (at
 * most a tenth of the time goes to them, however the requests and writes alternate), unless the
 * latest is stale: the history grew by a quarter since, and by 50 blocks (see `STALE_SHARE`). A
 * request that may not make one is offered the latest one made, which is as correct to join from
 * (the joiner then syncs the blocks after it), or none if there is none.
 */
export class SnapshotServer {
  readonly replica: Replica
  /** fewest blocks this replica must have to offer a snapshot */
  readonly minBlocks: number
  private readonly opts: Required<SnapshotServerOptions>
  private latest?: BuiltSnapshot
  private building?: Promise<BuiltSnapshot | undefined>
  /** no new snapshot is made before this time, ms */
  private notBefore = 0
  /** per peer: when its request last made a snapshot, ms (oldest first) */
  private readonly builtFor = new Map<string, number>()
  /** snapshots made (for tests and diagnostics) */
  builds = 0
  private readonly builtListeners = new Set<(built: BuiltSnapshot) => void>()

  constructor (replica: Replica, minBlocks: number, options: SnapshotServerOptions = {}) {
    this.replica = replica
    this.minBlocks = minBlocks
    this.opts = { perPeerMs: 30_000, unavailable: () => 0, now: Date.now, ...options }
  }

  /**
   * The root of a snapshot to offer `peer`, which has `requesterBlocks` blocks, or undefined. A
   * snapshot is offered when this replica has at least `minBlocks` blocks, the requester fewer
   * than half as many (it lacks most of the history: replaying it would cost more than the
   * states), and this replica's DAG is complete (nothing missing but unavailable blocks). It is
   * the snapshot of the current heads if one is made or may be made now (see the class comment),
   * else the latest one made.
   */
  async offer (requesterBlocks: number, peer?: string): Promise<CID | undefined> {
    const blocks = await this.replica.storage.countBlocks()
    if (blocks < this.minBlocks || requesterBlocks * 2 >= blocks) return undefined
    if (this.building === undefined) {
      const heads = await this.replica.heads()
      if (this.latest !== undefined && this.latest.heads.join() === heads.join()) return this.latest.root
      if (!this.mayBuild(blocks, peer)) return this.latest?.root
      if (peer !== undefined) this.noteBuildFor(peer)
    }
    return (await this.startBuild())?.root
  }

  /** CID string of the root of the latest snapshot made, if any. */
  get latestRoot (): string | undefined { return this.latest?.root.toString() }

  /** The latest snapshot made, if any (its nodes, covered set and heads: read-only). */
  get latestSnapshot (): BuiltSnapshot | undefined { return this.latest }

  /** Called after each new snapshot is made. Returns an unsubscribe function. */
  onBuilt (listener: (built: BuiltSnapshot) => void): () => void {
    this.builtListeners.add(listener)
    return () => { this.builtListeners.delete(listener) }
  }

  /**
   * Keep a snapshot ready, so a joiner does not wait for one to be made: `quietMs` after the
   * replica last applied a block (and once at start), make one if this replica may write (only
   * writers' snapshots are taken), has at least `minBlocks` blocks and its heads moved since the
   * last one, within the total rate limit. Returns a function that stops it.
   */
  warm (quietMs: number): () => void {
    let timer: ReturnType<typeof setTimeout> | undefined
    let stopped = false
    const schedule = (ms: number): void => {
      if (stopped) return
      if (timer !== undefined) clearTimeout(timer)
      timer = setTimeout(() => { timer = undefined; void run() }, ms)
    }
    const run = async (): Promise<void> => {
      if (!this.replica.canWrite) return
      const blocks = await this.replica.storage.countBlocks()
      const wait = this.notBefore - this.opts.now()
      if (wait > 0 && !this.stale(blocks)) { schedule(wait); return }
      await this.building?.catch(() => undefined) // made for older heads, perhaps
      if (stopped || blocks < this.minBlocks) return
      await this.startBuild().catch(() => undefined)
    }
    const off = this.replica.onChange(() => { schedule(quietMs) })
    schedule(quietMs)
    return () => {
      stopped = true
      off()
      if (timer !== undefined) clearTimeout(timer)
    }
  }

  /** Forget the latest snapshot (the states changed under the same heads: a repair), so the next is made afresh. */
  invalidate (): void {
    this.latest = undefined
  }

  /** Bytes of a node (root, page, covered list) of the latest snapshot. */
  node (cid: string): Uint8Array | undefined {
    return this.latest?.nodes.get(cid)
  }

  /**
   * The CIDs a requester that names `have` (its heads, and the root of the snapshot it joined
   * from) is known to have through the latest snapshot: its covered set if `have` names its root,
   * else none.
   */
  coveredFor (have: Set<string>): ReadonlySet<string> {
    return this.latest !== undefined && have.has(this.latest.root.toString()) ? this.latest.covered : new Set()
  }

  /**
   * Whether the latest snapshot is stale for a replica of `blocks` blocks: the blocks it does not
   * cover are at least `STALE_MIN_BLOCKS`, `minBlocks` and a quarter of those it covers (see
   * `STALE_SHARE`).
   */
  private stale (blocks: number): boolean {
    if (this.latest === undefined) return false
    const uncovered = blocks - this.latest.covered.size
    return uncovered >= Math.max(STALE_MIN_BLOCKS, this.minBlocks, STALE_SHARE * this.latest.covered.size)
  }

  /**
   * Whether a request of `peer` (undefined: this replica's own), to a replica of `blocks` blocks,
   * may make a new snapshot now: within the per-peer limit, and the total one unless the latest
   * snapshot is stale.
   */
  private mayBuild (blocks: number, peer?: string): boolean {
    const now = this.opts.now()
    if (now < this.notBefore && !this.stale(blocks)) return false
    if (peer === undefined) return true
    const last = this.builtFor.get(peer)
    return last === undefined || now - last >= this.opts.perPeerMs
  }

  private noteBuildFor (peer: string): void {
    const now = this.opts.now()
    this.builtFor.delete(peer)
    this.builtFor.set(peer, now)
    for (const [p, at] of this.builtFor) {
      if (this.builtFor.size <= MAX_BUILD_PEERS && now - at < this.opts.perPeerMs) break
      this.builtFor.delete(p)
    }
  }

  /** The build in progress, or a new one (timed: the next comes no sooner than 9× its making time after it). */
  private async startBuild (): Promise<BuiltSnapshot | undefined> {
    if (this.building === undefined) {
      const started = this.opts.now()
      this.building = this.build().finally(() => {
        this.building = undefined
      })
      void this.building.then(built => {
        if (built === undefined) return
        const end = this.opts.now()
        this.notBefore = end + (1 / BUILD_SHARE - 1) * (end - started)
      }, () => {})
    }
    return await this.building
  }

  /** The latest snapshot, made again if the heads moved; undefined when the DAG is incomplete or a document is too large. */
  private async build (): Promise<BuiltSnapshot | undefined> {
    const heads = await this.replica.heads()
    if (this.latest !== undefined && this.latest.heads.join() === heads.join()) return this.latest
    const source = await this.replica.storage.readSnapshotSource()
    if (source.missing > this.opts.unavailable() || source.heads.length === 0) return undefined
    try {
      this.builds++
      this.latest = await buildSnapshot(this.replica.dbId, source, this.replica.key)
    } catch (err) {
      log.warn(`no snapshot of ${this.replica.dbId}: ${(err as Error).message}`)
      return undefined
    }
    for (const l of this.builtListeners) {
      try { l(this.latest) } catch (err) { log.warn('snapshot listener threw', err) }
    }
    return this.latest
  }
}
