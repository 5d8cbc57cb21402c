/**
 * Joining from a peer's snapshot (docs/snapshots.md): asking peers for an offer, taking only a
 * listed writer's (its signed root), waiting for a direct connection to fetch it over, fetching,
 * verifying and installing it — once per session. Whether to try a join before a fetch round is
 * the `Fetcher`'s call; the audit of the join afterwards is `AuditRunner`'s.
 */
import { InvalidBlockError, InvalidMessageError, KiteError, NetworkError } from '../../errors.js'
import { type CID, docKey, formatPublicKey, materialise } from '../../crdt/index.js'
import { type DocChange } from '../../store/index.js'
import { createLogger } from '../../log.js'
import { type ChangeSet, type Replica } from '../replica.js'
import { type Transport } from '../transport.js'
import { SNAPSHOT_PROTOCOL, decodeSnapshotResponse, encodeSnapshotRequest } from '../wire.js'
import { askBlocks, byCid } from '../ask-blocks.js'
import { type SnapshotPage, verifySnapshotRoot } from './format.js'
import { type SnapshotFetchProgress, fetchSnapshot } from './fetch.js'
import { SnapshotPageQueue } from './queue.js'

const log = createLogger('sync')

/** Attempts at a snapshot join per peer and session that may fail on the network. */
const SNAPSHOT_ATTEMPTS = 3
/**
 * How long a replica offered a snapshot over a relayed connection waits for a direct one before
 * it replays blocks instead, ms. Blocks pushed through the relay meanwhile would exhaust the
 * circuit's 128 KiB again and again, and with it the signalling of the WebRTC upgrade.
 */
const SNAPSHOT_DIRECT_WAIT_MS = 5000
/**
 * How long a round waits for a peer's answer to a snapshot ask, ms. The ask itself may take up to
 * `snapshotTimeoutMs` (the peer may make the snapshot first); past this wait it goes on in the
 * background, the round moves on to the other candidates and to blocks, and a later round takes
 * the answer. Without it, one peer that does not answer (a joiner still starting, a connection
 * dying) held every block back for the whole timeout, 30 s, in each of up to 3 rounds.
 */
const OFFER_WAIT_MS = 5000

/** Timeouts of a `SnapshotJoiner`'s requests. */
export interface SnapshotJoinerOptions {
  /** timeout of a snapshot request, which may make the snapshot first, ms */
  snapshotTimeoutMs: number
  /** timeout of one request for nodes, ms */
  fetchTimeoutMs: number
}

/** A replica holding more documents than this joins from a snapshot without a preview. */
const PREVIEW_MAX_HELD = 1000

/**
 * What a replica shows while it joins from a snapshot (docs/snapshots.md): the documents of each
 * page as soon as the page is verified against its CID (`docs`: changes from nothing; tombstones
 * and documents the replica already holds left out), then the end of the preview (`ended`:
 * `installed` or not), after which what was shown is to be read again from storage. Only a
 * replica holding at most `PREVIEW_MAX_HELD` documents previews.
 */
export type SnapshotPreview = { kind: 'docs', changes: DocChange[] } | { kind: 'ended', installed: boolean }

/** What a `SnapshotJoiner` tells, and asks, the replication engine. */
export interface SnapshotJoinerHooks {
  /** whether replication stopped */
  stopped: () => boolean
  /** progress of the fetch of a snapshot's nodes */
  progress: (p: SnapshotFetchProgress) => void
  /**
   * the snapshot with root `root`, made by writer `producer` and served by `peer`, is installed
   * and changed `change`; resolves once the engine noted it (progress, the audit to come)
   */
  installed: (root: CID, producer: string, peer: string, change: ChangeSet) => Promise<void>
  /** the documents of the snapshot being fetched, shown before its install; see `SnapshotPreview` */
  preview?: (p: SnapshotPreview) => void
}

/** Replication stopped while a snapshot was fetched: the join ends, installing nothing. */
class JoinStopped extends Error {}

/** Joins one replica from a peer's snapshot, at most once per session; see the module comment. */
export class SnapshotJoiner {
  private readonly replica: Replica
  private readonly transport: Transport
  private readonly opts: SnapshotJoinerOptions
  private readonly hooks: SnapshotJoinerHooks
  /** per peer asked in this session: its snapshot offer and when it came, or null (declined, invalid, or no direct connection came) */
  private readonly offers = new Map<string, { root: CID, producer: string, at: number } | null>()
  /** per peer: snapshot attempts that failed on the network in this session */
  private readonly snapshotFailures = new Map<string, number>()
  /** per peer: its snapshot ask still unanswered, and when it was sent (ms) */
  private readonly asking = new Map<string, { answer: Promise<'answered' | 'failed'>, at: number }>()
  /** peers whose direct connection this replica already waited for, in vain, with blocks held back */
  private readonly waitedFor = new Set<string>()
  /** writer keys (formatted) whose snapshot disagreed with the history: their offers are declined */
  private readonly forgers = new Set<string>()
  private joinedValue = false

  constructor (replica: Replica, transport: Transport, options: SnapshotJoinerOptions, hooks: SnapshotJoinerHooks) {
    this.replica = replica
    this.transport = transport
    this.opts = options
    this.hooks = hooks
  }

  /** Whether this replica joined from a snapshot in this session (once is enough). */
  get joined (): boolean { return this.joinedValue }

  /** Decline offers of snapshots made by writer `producer` (formatted key) from now on: one of its snapshots disagreed with the history. */
  distrust (producer: string): void {
    this.forgers.add(producer)
  }

  /**
   * Ask the candidates for a snapshot (once each per session, again after a network failure, up
   * to 3 attempts) and join from the first offered one. A snapshot travels only over a direct
   * connection: a relayed circuit carries at most 128 KiB (circuit-relay-v2's default limit), a
   * snapshot node up to 1 MiB. An offer over a relayed connection waits up to
   * `SNAPSHOT_DIRECT_WAIT_MS` for a direct one (`'waiting'`: no blocks meanwhile); after that,
   * blocks flow, and the snapshot is still taken (offered again) once a direct connection opens.
   * A round waits at most `OFFER_WAIT_MS` for a peer's answer to an ask (see `offerFrom`).
   */
  async tryJoin (candidates: Set<string>): Promise<'joined' | 'waiting' | 'none'> {
    let waiting = false
    for (const peer of candidates) {
      if (this.hooks.stopped()) break
      if ((this.snapshotFailures.get(peer) ?? 0) >= SNAPSHOT_ATTEMPTS) continue
      const direct = this.transport.connection(peer).kind === 'direct'
      let offer = this.offers.get(peer)
      // An offer older than the wait is asked again: both sides' block counts may have moved.
      if (offer != null && direct && Date.now() - offer.at >= SNAPSHOT_DIRECT_WAIT_MS) offer = undefined
      if (offer === undefined) {
        // Unanswered after `OFFER_WAIT_MS` (pending): the other candidates and blocks go first.
        if (await this.offerFrom(peer) !== 'answered') continue
        offer = this.offers.get(peer)
        if (offer === undefined) continue
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
      if (outcome === 'joined') {
        this.joinedValue = true
        return 'joined'
      }
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
   * Ask `peer` for a snapshot offer, or go on waiting for the ask already sent: `'answered'` once
   * its answer is in `offers` (an offer, or null), `'failed'` when the ask failed on the network
   * (counted in `snapshotFailures`), `'pending'` while it is still unanswered `OFFER_WAIT_MS`
   * after it was sent — it goes on in the background, and a later round takes its answer.
   */
  private async offerFrom (peer: string): Promise<'answered' | 'failed' | 'pending'> {
    let ask = this.asking.get(peer)
    if (ask === undefined) {
      const answer = this.askSnapshot(peer).then(asked => {
        if (asked === 'failed') {
          this.snapshotFailures.set(peer, (this.snapshotFailures.get(peer) ?? 0) + 1)
          return 'failed' as const
        }
        this.offers.set(peer, asked === undefined ? null : { ...asked, at: Date.now() })
        return 'answered' as const
      }).finally(() => { this.asking.delete(peer) })
      this.asking.set(peer, ask = { answer, at: Date.now() })
    }
    const left = ask.at + OFFER_WAIT_MS - Date.now()
    if (left <= 0) return 'pending'
    let timer: ReturnType<typeof setTimeout> | undefined
    const waited = new Promise<'pending'>(resolve => { timer = setTimeout(() => { resolve('pending') }, left) })
    try {
      return await Promise.race([ask.answer, waited])
    } finally {
      clearTimeout(timer)
    }
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
   * tell the engine (`installed`). Returns `'joined'`, `'declined'` (invalid: logged, nothing
   * installed) or `'failed'` (the network failed: worth another attempt).
   */
  private async joinFromSnapshot (peer: string, offered: CID, producer: string): Promise<'joined' | 'declined' | 'failed'> {
    const preview = this.hooks.preview
    // Documents this replica holds are not previewed: the install joins them with the pages'.
    const held = preview === undefined ? undefined : await this.heldDocs()
    let previewed = false
    let installed = false
    const onPage = (page: SnapshotPage): void => {
      if (held === undefined || this.hooks.stopped()) return
      const changes: DocChange[] = []
      for (const { coll, id, state } of page.docs) {
        if (held.has(docKey(coll, id))) continue
        const after = materialise(state)
        if (after !== null) changes.push({ coll, id, before: null, after })
      }
      previewed = true
      preview?.({ kind: 'docs', changes })
    }
    // The install begins with the fetch and writes each page as it comes (docs/snapshots.md,
    // "Joining"); it commits once the whole is checked, and writes nothing if the fetch fails.
    const pages = new SnapshotPageQueue()
    let abandoned = false
    const fetching = fetchSnapshot(this.replica.dbId, offered, async cids => {
      if (abandoned) throw new NetworkError('the snapshot install stopped')
      return await this.fetchNodes(peer, cids, offered)
    }, p => {
      this.hooks.progress(p)
    }, { ...this.replica.openOptions(), mayWrite: writer => this.replica.mayWrite(writer) }, page => {
      onPage(page)
      pages.page(page)
    }).then(content => {
      if (this.hooks.stopped()) pages.fail(new JoinStopped())
      else pages.end(content)
      return content
    }, err => {
      pages.fail(err)
      throw err
    })
    // Its failure reaches the install first (through `pages`), and is taken from there.
    fetching.catch(() => {})
    try {
      let change: ChangeSet
      try {
        change = await this.replica.installSnapshot(pages)
      } catch (err) {
        abandoned = true
        await fetching.catch(() => {})
        throw err
      }
      const content = await fetching
      installed = true
      log.debug(`joined ${this.replica.dbId} from snapshot ${offered.toString()} of ${peer}: ${content.docs.length} documents, ${content.covered.length} blocks covered`)
      await this.hooks.installed(offered, producer, peer, change)
      return 'joined'
    } catch (err) {
      if (err instanceof JoinStopped) return 'declined'
      if (err instanceof InvalidBlockError || err instanceof InvalidMessageError) {
        log.warn(`snapshot ${offered.toString()} from ${peer} not installed: ${err.message}`)
        return 'declined'
      }
      if (!(err instanceof KiteError)) throw err
      log.debug(`snapshot ${offered.toString()} from ${peer} not fetched: ${err.message}`)
      return 'failed'
    } finally {
      if (previewed) preview?.({ kind: 'ended', installed })
    }
  }

  /** Keys (`docKey`) of the documents this replica holds; `undefined` (no preview) when over `PREVIEW_MAX_HELD`. */
  private async heldDocs (): Promise<Set<string> | undefined> {
    const storage = this.replica.storage
    const colls = await storage.getCollections()
    let total = 0
    for (const coll of colls) total += await storage.countDocs(coll)
    if (total > PREVIEW_MAX_HELD) return undefined
    const held = new Set<string>()
    for (const coll of colls) for (const doc of await storage.getDocs(coll)) held.add(docKey(coll, doc._id))
    return held
  }

  /**
   * Fetch nodes by CID from one peer, for a snapshot join: only the nodes asked for are returned
   * (unverified). `have` names the snapshot's root, so the peer does not push the head blocks'
   * ancestors. Throws `NetworkError`/`TimeoutError` when the peer fails, `InvalidMessageError` for a
   * malformed answer.
   */
  private async fetchNodes (peer: string, cids: CID[], root: CID): Promise<Map<string, Uint8Array>> {
    const answer = await askBlocks(this.transport, peer, { db: this.replica.dbId, cids, have: [root] }, this.opts.fetchTimeoutMs)
    const asked = new Set(cids.map(c => c.toString()))
    const out = new Map<string, Uint8Array>()
    for (const [cid, node] of await byCid(answer.blocks)) if (asked.has(cid)) out.set(cid, node)
    return out
  }
}
