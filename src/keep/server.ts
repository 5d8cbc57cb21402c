/**
 * The keeper (docs/keepers.md): a replica without a key. Over any `Transport` (a relay's libp2p
 * node, for `kitedb-relay --keep`), it answers:
 *
 * - `/kitedb/1/keep` (`keep-wire.ts`): peers ask it to keep a database, and hand it blocks and
 *   their writer's latest snapshot; everything is checked without the key (`verify.ts`) and
 *   acknowledged only once written (`store.ts`), within the quotas (`limits.ts`);
 * - `/kitedb/1/blocks` and `/kitedb/1/snapshot` for the databases it keeps, as a replica does
 *   (the same ancestor walk, `collectBlocks`), so a device that opens a link while every writer
 *   is offline joins from the kept snapshot — the writer's, signed by the writer — and the
 *   blocks after it;
 * - gossip: when a peer subscribes to a kept database's topic, and after it stored new blocks, it
 *   publishes its heads there, so replicas learn what it has; and `checkGossip` lets the relay's
 *   topic validator refuse inline blocks of kept databases that fail the same checks.
 *
 * It never decrypts anything and holds no key. Every request is bounded: by the transport's
 * per-peer limits (rates, streams, sizes, answer budget), by `maxConcurrent` requests at once,
 * and by the quotas.
 */
import { InvalidBlockError } from '../errors.js'
import {
  type CID, type Manifest, MAX_BLOCK_BYTES, cidOfAsync, decodeManifest, linkKeyOf, mayWrite, parseCid
} from '../crdt/index.js'
import { type Transport } from '../sync/transport.js'
import {
  BLOCKS_PROTOCOL, SNAPSHOT_PROTOCOL, TOPIC_PREFIX, decodeBlocksRequest, decodeHeadsMessage, isPresenceMessage, decodeSnapshotRequest,
  encodeBlocksResponse, encodeHeadsMessage, encodeSnapshotResponse, topicOf
} from '../sync/wire.js'
import { askBlocks } from '../sync/ask-blocks.js'
import { collectBlocks, decodeLogged } from '../sync/serve-blocks.js'
import { verifySnapshotRoot } from '../sync/snapshot/index.js'
import {
  KEEP_PROTOCOL, type KeepError, type KeepRequest, type KeepResponse, decodeKeepRequest, encodeKeepResponse
} from '../sync/keep-wire.js'
import { createLogger } from '../log.js'
import { type KeepStore } from './store.js'
import { type KeepLimits } from './limits.js'
import { checkKeptNode } from './verify.js'

const log = createLogger('keep')

/** Manifests decoded and kept in memory at most. */
const MANIFEST_CACHE = 1024
/** How long fetching a manifest from the peer asking to keep a database may take, ms. */
const MANIFEST_TIMEOUT_MS = 5000
/** Blocks of one `put` checked at once. */
const CHECK_PARALLEL = 64
/** Heads are published this long after the change that moves them (changes in between are published once), ms. */
const PUBLISH_DELAY_MS = 100

/** What a keeper needs of its node beyond the `Transport`: gossip publication and who subscribes. */
export interface KeeperGossip {
  /** publish `data` on `topic` */
  publish: (topic: string, data: Uint8Array) => Promise<void>
  /** call `handler` with the topic and peer whenever a peer subscribes to a topic; returns an unsubscribe function */
  onSubscribe: (handler: (topic: string, peer: string) => void) => () => void
}

/** Options of `Keeper`. */
export interface KeeperOptions {
  limits: KeepLimits
  gossip?: KeeperGossip
}

/** Serves and keeps; see the module comment. */
export class Keeper {
  readonly store: KeepStore
  private readonly transport: Transport
  private readonly limits: KeepLimits
  private readonly gossip?: KeeperGossip
  private readonly manifests = new Map<string, Manifest>()
  private readonly cleanups: Array<() => void> = []
  private readonly publishTimers = new Map<string, ReturnType<typeof setTimeout>>()
  private sweepTimer?: ReturnType<typeof setInterval>
  private active = 0
  private stopped = false

  constructor (store: KeepStore, transport: Transport, options: KeeperOptions) {
    this.store = store
    this.transport = transport
    this.limits = options.limits
    if (options.gossip !== undefined) this.gossip = options.gossip
  }

  /** Start answering; expired databases are looked for now and every `limits.sweepMs`. */
  start (): void {
    this.cleanups.push(
      this.transport.handle(KEEP_PROTOCOL, async (data, from) => await this.bounded(from, async () => await this.answerKeep(data, from))),
      this.transport.handle(BLOCKS_PROTOCOL, async (data, from) => await this.answerBlocks(data, from)),
      this.transport.handle(SNAPSHOT_PROTOCOL, async (data, from) => await this.answerSnapshot(data, from))
    )
    if (this.gossip !== undefined) {
      this.cleanups.push(this.gossip.onSubscribe((topic, peer) => {
        if (!topic.startsWith(TOPIC_PREFIX) || peer === this.transport.peerId) return
        const db = topic.slice(TOPIC_PREFIX.length)
        void this.store.record(db).then(record => { if (record !== undefined) this.schedulePublish(db) }, () => {})
      }))
    }
    void this.sweep()
    this.sweepTimer = setInterval(() => { void this.sweep() }, this.limits.sweepMs)
  }

  /** Stop answering (the store stays open: its owner closes it). */
  stop (): void {
    this.stopped = true
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer)
    for (const t of this.publishTimers.values()) clearTimeout(t)
    this.publishTimers.clear()
    for (const c of this.cleanups.splice(0)) c()
  }

  /** Delete databases idle for `limits.idleMs`. */
  async sweep (): Promise<string[]> {
    try {
      const dropped = await this.store.expire(this.limits.idleMs)
      for (const db of dropped) this.manifests.delete(db)
      if (dropped.length > 0) log.warn(`expired ${dropped.length} databases idle for over ${Math.round(this.limits.idleMs / 86_400_000)} days`)
      return dropped
    } catch (err) {
      if (!this.stopped) log.warn(`expiry sweep failed: ${(err as Error).message}`)
      return []
    }
  }

  /**
   * The relay's gossip check: a heads message on a kept database's topic is forwarded only when
   * every inline block passes the keeper's checks (CID, signatures, writer, link signature);
   * other topics, heads without blocks and presence messages pass. Never throws.
   */
  async checkGossip (topic: string, data: Uint8Array, from: string): Promise<boolean> {
    if (!topic.startsWith(TOPIC_PREFIX)) return true
    const db = topic.slice(TOPIC_PREFIX.length)
    try {
      // Only the topics of kept databases (not announcements, not databases kept elsewhere).
      const manifest = parseCid(db) === undefined ? undefined : await this.manifest(db)
      if (manifest === undefined) return true
      if (isPresenceMessage(data)) return true // peers' ephemeral states: sealed, bounded, never kept
      const msg = decodeHeadsMessage(data)
      if (msg.blocks.length === 0) return true
      for (const bytes of msg.blocks) await checkKeptNode(bytes, db, manifest)
      return true
    } catch (err) {
      log.warn(`refused gossip on ${topic} from ${from} (not forwarded): ${(err as Error).message}`)
      return false
    }
  }

  /** Run `fn` unless `maxConcurrent` keep requests are running already (then: `busy`). */
  private async bounded (from: string, fn: () => Promise<Uint8Array>): Promise<Uint8Array> {
    if (this.active >= this.limits.maxConcurrent) {
      log.warn(`keep request from ${from} refused: ${this.active} running, the most`)
      return encodeKeepResponse({ error: { code: 'busy', message: `this keeper is handling ${this.active} requests: try again shortly` } })
    }
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
    }
  }

  private async answerKeep (data: Uint8Array, from: string): Promise<Uint8Array> {
    const req = decodeLogged(log, 'keep request', decodeKeepRequest, data, from)
    const response = await this.handleKeep(req, from)
    if ('error' in response) log.warn(`keep ${req.t} of ${req.db} from ${from} refused (${response.error.code}): ${response.error.message}`)
    return encodeKeepResponse(response)
  }

  private async handleKeep (req: KeepRequest, from: string): Promise<KeepResponse> {
    const dbCid = parseCid(req.db)
    if (dbCid === undefined) return refuse('refused', `${req.db} is not a database id`)
    switch (req.t) {
      case 'state': return { state: await this.store.state(req.db, req.after?.toString()) }
      case 'has': return { has: await this.store.has(req.db, req.cids.map(String)) }
      case 'keep': {
        let manifest = await this.store.manifest(req.db)
        if (manifest === undefined) {
          const got = await this.fetchManifest(req.db, dbCid, req.manifest, from)
          if ('error' in got) return got
          manifest = got.bytes
        }
        const refusal = await this.store.keep(req.db, manifest, from)
        if (refusal !== undefined) return { error: refusal }
        log.debug(`keeping ${req.db} for ${from}`)
        return { ok: true }
      }
      case 'put': {
        const manifest = await this.manifest(req.db)
        if (manifest === undefined) return refuse('not-kept', `database ${req.db} is not kept here: ask to keep it first`)
        const refused: Array<{ cid: CID, reason: string }> = []
        const checked = []
        // Checked `CHECK_PARALLEL` at a time: the signature checks run on the platform's crypto threads.
        for (let i = 0; i < req.blocks.length; i += CHECK_PARALLEL) {
          const group = req.blocks.slice(i, i + CHECK_PARALLEL)
          const outcomes = await Promise.all(group.map(async bytes => await checkKeptNode(bytes, req.db, manifest).catch((err: Error) => err)))
          for (let j = 0; j < group.length; j++) {
            const outcome = outcomes[j]
            if (!(outcome instanceof Error)) { checked.push(outcome); continue }
            if (!(outcome instanceof InvalidBlockError)) throw outcome
            log.warn(`refused a block of ${req.db} from ${from}: ${outcome.message}`)
            refused.push({ cid: await cidOfAsync(group[j]), reason: outcome.message })
          }
        }
        const result = await this.store.putBlocks(req.db, checked)
        if ('error' in result) return result
        if (result.stored.length > 0) this.schedulePublish(req.db)
        return { put: { stored: result.stored, refused: [...refused, ...result.refused] } }
      }
      case 'nodes': {
        const nodes: Array<{ cid: CID, bytes: Uint8Array }> = []
        const refused: Array<{ cid: CID, reason: string }> = []
        for (const bytes of req.nodes) {
          const cid = await cidOfAsync(bytes)
          if (bytes.byteLength > MAX_BLOCK_BYTES) {
            log.warn(`refused a snapshot node of ${req.db} from ${from}: over ${MAX_BLOCK_BYTES} bytes`)
            refused.push({ cid, reason: `over the ${MAX_BLOCK_BYTES}-byte limit` })
            continue
          }
          nodes.push({ cid, bytes })
        }
        const result = await this.store.putNodes(req.db, nodes)
        if ('error' in result) return result
        return { put: { stored: result.stored, refused: [...refused, ...result.refused] } }
      }
      case 'snapshot': {
        const manifest = await this.manifest(req.db)
        if (manifest === undefined) return refuse('not-kept', `database ${req.db} is not kept here: ask to keep it first`)
        const o = req.offer
        if (!mayWrite(manifest, o.w)) return refuse('refused', 'the snapshot\'s producer is not on the write list')
        const link = linkKeyOf(manifest)
        if (!await verifySnapshotRoot(o.root, o.w, o.s, link, o.l)) return refuse('refused', `the snapshot root signature does not match its producer${link !== undefined ? ', or its link signature is missing or wrong' : ''}`)
        const heads = await this.store.has(req.db, o.heads.map(String))
        if (!heads.every(Boolean)) return refuse('refused', 'hand over the snapshot\'s head blocks first')
        const result = await this.store.offerSnapshot(req.db, o)
        if ('error' in result) return result
        const lacking = new Set(result.lacking.map(String))
        return { put: { stored: o.nodes.filter(n => !lacking.has(n.toString())), refused: [] } }
      }
    }
  }

  /**
   * The manifest of `db` for a keep request: the one it carries, else fetched from the requester
   * (over `/kitedb/1/blocks`, as replicas fetch it). It must hash to the database id.
   */
  private async fetchManifest (db: string, dbCid: CID, carried: Uint8Array | undefined, from: string): Promise<{ bytes: Uint8Array } | { error: KeepError }> {
    const candidates: Uint8Array[] = []
    if (carried !== undefined) candidates.push(carried)
    else {
      try {
        candidates.push(...(await askBlocks(this.transport, from, { db, cids: [dbCid], have: [] }, MANIFEST_TIMEOUT_MS)).blocks)
      } catch (err) {
        return refuse('manifest-unavailable', `the manifest of ${db} could not be fetched from the requester: ${(err as Error).message}`)
      }
    }
    for (const bytes of candidates) {
      try {
        const manifest = decodeManifest(bytes, dbCid)
        this.cacheManifest(db, manifest)
        return { bytes }
      } catch (err) {
        if (!(err instanceof InvalidBlockError)) throw err
        if (carried !== undefined) return refuse('refused', `not the manifest of ${db}: ${err.message}`)
      }
    }
    return refuse('manifest-unavailable', `the requester did not serve the manifest of ${db}`)
  }

  /** The decoded manifest of a kept database, or undefined when it is not kept. */
  private async manifest (db: string): Promise<Manifest | undefined> {
    const cached = this.manifests.get(db)
    if (cached !== undefined) return cached
    const bytes = await this.store.manifest(db)
    const cid = parseCid(db)
    if (bytes === undefined || cid === undefined) return undefined
    const manifest = decodeManifest(bytes, cid)
    this.cacheManifest(db, manifest)
    return manifest
  }

  private cacheManifest (db: string, manifest: Manifest): void {
    this.manifests.delete(db)
    this.manifests.set(db, manifest)
    if (this.manifests.size > MANIFEST_CACHE) this.manifests.delete(this.manifests.keys().next().value as string)
  }

  /**
   * Blocks of a kept database, with their chunks and ancestors as replicas serve them. A
   * requester naming the kept snapshot's root in `have` gets no ancestors of the snapshot's heads
   * (it has what they cover).
   */
  private async answerBlocks (data: Uint8Array, from: string): Promise<Uint8Array> {
    const req = decodeLogged(log, 'block request', decodeBlocksRequest, data, from)
    const record = await this.store.record(req.db)
    if (record === undefined) return encodeBlocksResponse({ blocks: [] })
    void this.store.touch(req.db).catch(() => {})
    const have = new Set(req.have.map(String))
    const offer = await this.store.snapshot(req.db)
    const boundary = offer !== undefined && have.has(offer.root.toString()) ? new Set(offer.heads.map(String)) : new Set<string>()
    const blocks = await collectBlocks(req, async cid => {
      const bytes = await this.store.node(req.db, cid)
      if (bytes === undefined) return undefined
      // A snapshot head's parents are covered by the snapshot the requester has.
      return { bytes, walk: !boundary.has(cid) }
    }, cid => have.has(cid) || boundary.has(cid))
    return encodeBlocksResponse({ blocks })
  }

  /**
   * A snapshot offer: the kept writer's snapshot (its own signed offer, unchanged: the keeper
   * never makes or signs one), when the requester has fewer than half the blocks it covers or the
   * keeper stores.
   */
  private async answerSnapshot (data: Uint8Array, from: string): Promise<Uint8Array> {
    const req = decodeLogged(log, 'snapshot request', decodeSnapshotRequest, data, from)
    const [record, offer] = await Promise.all([this.store.record(req.db), this.store.snapshot(req.db)])
    if (record === undefined || offer === undefined || req.blocks * 2 >= Math.max(record.blocks, offer.blocks)) return encodeSnapshotResponse({})
    void this.store.touch(req.db).catch(() => {})
    return encodeSnapshotResponse({ root: offer.root, w: offer.w, s: offer.s, ...(offer.l !== undefined ? { l: offer.l } : {}) })
  }

  /** Publish the heads of `db` on its topic shortly (one publication for changes close together). */
  private schedulePublish (db: string): void {
    if (this.gossip === undefined || this.stopped || this.publishTimers.has(db)) return
    this.publishTimers.set(db, setTimeout(() => {
      this.publishTimers.delete(db)
      void this.publishHeads(db)
    }, PUBLISH_DELAY_MS))
  }

  private async publishHeads (db: string): Promise<void> {
    if (this.gossip === undefined || this.stopped) return
    try {
      const { heads } = await this.store.state(db)
      if (heads.length === 0) return
      await this.gossip.publish(topicOf(db), encodeHeadsMessage({ heads, blocks: [] }))
    } catch (err) {
      log.debug(`publishing the heads of ${db} failed: ${(err as Error).message}`)
    }
  }
}

function refuse (code: KeepError['code'], message: string): { error: KeepError } {
  return { error: { code, message } }
}

