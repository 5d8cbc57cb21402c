/**
 * When the audit of a snapshot join (`SnapshotAudit`, audit.ts) runs, and how it gets its blocks:
 * after a delay once a replica joined (or started with an audit pending), again every `retryMs`
 * while blocks it needs are lacking, and at once when a new peer appears (it may have them); the
 * blocks are asked of the peers in turn.
 */
import { type KiteError } from '../errors.js'
import { type CID, parseCid } from '../crdt/index.js'
import { createLogger } from '../log.js'
import { type BlockFetcher, type SnapshotAudit } from './audit.js'
import { askBlocks, byCid } from './ask-blocks.js'
import { type Transport } from './transport.js'

const log = createLogger('sync')

/** Attempts at one audit request to one peer, and the first pause after a failed one (doubling), ms. */
const AUDIT_ATTEMPTS = 4
const AUDIT_PAUSE_MS = 1000

/** Timing of an `AuditRunner`. */
export interface AuditRunnerOptions {
  /** a run that lacked blocks, or failed, is tried again after this long, ms */
  retryMs: number
  /** timeout of one block request, ms */
  fetchTimeoutMs: number
}

/** What an `AuditRunner` asks of, and tells, the replication engine. */
export interface AuditRunnerHooks {
  /** whether replication stopped */
  stopped: () => boolean
  /** the peers to ask for blocks, in the order to ask them (those that served real blocks first) */
  peers: () => string[]
  /** the audit found that writer `producer`'s snapshot disagreed with the history, and repaired the states */
  repaired: (producer: string) => void
  /** an error for the engine's error listeners (a `SnapshotMismatchError`) */
  error: (err: KiteError) => void
}

/** Runs the audit of one replica's snapshot join; see the module comment. */
export class AuditRunner {
  private readonly audit: SnapshotAudit
  private readonly transport: Transport
  private readonly opts: AuditRunnerOptions
  private readonly hooks: AuditRunnerHooks
  private timer?: ReturnType<typeof setTimeout>
  private running = false
  /** the audit waits for blocks no peer served: a new peer may have them */
  private lacking = false

  constructor (audit: SnapshotAudit, transport: Transport, options: AuditRunnerOptions, hooks: AuditRunnerHooks) {
    this.audit = audit
    this.transport = transport
    this.opts = options
    this.hooks = hooks
  }

  /** Run the audit (if one is pending) in `ms`, unless a run is scheduled already; again every `retryMs` while blocks it needs are lacking. */
  schedule (ms: number): void {
    if (this.hooks.stopped() || this.timer !== undefined) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.run()
    }, ms)
  }

  /** A new peer appeared: a scheduled run that waits for blocks no peer served runs now. */
  peerAppeared (): void {
    if (!this.lacking || this.timer === undefined) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.schedule(0)
  }

  /** Run no more (replication stopped). */
  stop (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
  }

  private async run (): Promise<void> {
    if (this.hooks.stopped() || this.running) return
    this.running = true
    try {
      const record = await this.audit.run(this.fetcher(), err => { this.hooks.error(err) })
      if (record?.status === 'repaired') this.hooks.repaired(record.producer)
      this.lacking = record !== undefined && (record.status === 'pending' || record.uncovered.length > 0)
      if (this.lacking) this.schedule(this.opts.retryMs)
    } catch (err) {
      if (this.hooks.stopped()) return
      log.warn(`audit of the snapshot joined from failed: ${(err as Error).message}; trying again later`)
      this.schedule(this.opts.retryMs)
    } finally {
      this.running = false
    }
  }

  /**
   * Fetches blocks for the audit: asks the peers in turn for what the ones before did not serve.
   * `have` is empty, so a responder pushes the asked blocks' ancestors too (all covered: all
   * wanted by the audit). A request that fails (a responder pacing its answers to this replica:
   * `answerBytesPerSecond`, or a lost connection) is tried again after a pause, `AUDIT_ATTEMPTS`
   * times, before the next peer is asked.
   */
  private fetcher (): BlockFetcher {
    const db = this.audit.replica.dbId
    return async cids => {
      const out = new Map<string, Uint8Array>()
      for (const peer of this.hooks.peers()) {
        for (let attempt = 0; attempt < AUDIT_ATTEMPTS; attempt++) {
          const rest = cids.filter(c => !out.has(c))
          if (rest.length === 0 || this.hooks.stopped()) return out
          try {
            const answer = await askBlocks(this.transport, peer, { db, cids: rest.map(c => parseCid(c) as CID), have: [] }, this.opts.fetchTimeoutMs)
            for (const [cid, block] of await byCid(answer.blocks)) out.set(cid, block)
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
}
