/**
 * A replica's side of keeping (docs/keepers.md, "Client"): it hands every keeper it reaches what
 * the keeper lacks of this database — blocks, chunks and, from a writer, its latest snapshot —
 * over `/kitedb/1/keep`, and tracks what each has acknowledged, so the app can know when
 * everything it holds is stored by at least one keeper (`kept`, `whenKept`).
 *
 * One pass per keeper at a time, again whenever the replica applies a block or makes a snapshot:
 * 1. `keep` (once per session): the keeper checks its quotas and the manifest;
 * 2. `state`: its heads (wanted from it like announced heads: that is how a replica opening a
 *    link while every writer is offline learns what there is) and the parents it lacks;
 * 3. from this replica's heads and those of the keeper's missing parents it stores, a walk down
 *    the DAG asks `has` for a growing frontier (8, then up to 1,024 CIDs a request, while all are
 *    lacking), and hands over (`put`, at most `PUT_BYTES` a request) what the keeper lacks; it
 *    stops at what the keeper has: a keeper's DAG below its heads is complete but for the
 *    missing parents it reports, which step 2 covers;
 * 4. a writer's latest snapshot, if the keeper has another (`snapshot`, then its `nodes`).
 * The pass ends with the keeper holding everything this replica held when it began; if the heads
 * moved meanwhile, another pass follows. Refusals (`full`: `KeeperFullError`; others:
 * `KeeperRefusedError`) are reported, and the pass is tried again later; what was acknowledged
 * stays acknowledged.
 *
 * One piece, though over 400 lines: one class whose passes, acknowledgements and retries share
 * the per-keeper entries they read and write; its size is the four steps above.
 */
import { KeeperFullError, KeeperRefusedError, type KiteError, NetworkError, TimeoutError } from '../errors.js'
import { type CID, parseCid, readBlockHeader } from '../crdt/index.js'
import { createLogger } from '../log.js'
import { MANIFEST_KEY, type Replica } from './replica.js'
import { type BuiltSnapshot, signSnapshotRoot } from './snapshot/index.js'
import { type Transport } from './transport.js'
import {
  KEEP_PROTOCOL, type KeepError, type KeepRequest, type KeepResponse, type KeepState, type PutResult, decodeKeepResponse, encodeKeepRequest
} from './keep-wire.js'
import { MAX_REQUEST_CIDS } from './wire.js'

const log = createLogger('keep')

/** Bytes of blocks (or snapshot nodes) handed over in one request at most (under the 4 MiB message limit). */
const PUT_BYTES = 3 * 1024 * 1024
/** CIDs a keeper is remembered to have, per keeper, at most (so a pass stops at them without asking). */
const KNOWN_MAX = 16_384
/** Timeout of one keep request, ms. */
const REQUEST_TIMEOUT_MS = 15_000
/** Waits before a pass is tried again after a network failure (doubling to the last), and after a refusal, ms. */
const RETRY_MS = [1000, 2000, 5000, 10_000, 30_000]
const REFUSED_RETRY_MS = 60_000
const BUSY_RETRY_MS = 2000

/** Where keeping by one keeper stands. */
export interface KeeperStatus {
  /** the keeper's peer id */
  peer: string
  /**
   * `'kept'`: it stores everything this replica holds; `'saving'`: a pass is handing it what it
   * lacks (or will); `'refused'`: it refused (see `error`); `'unreachable'`: the last pass failed
   * on the network; `'idle'`: not connected now
   */
  state: 'kept' | 'saving' | 'refused' | 'unreachable' | 'idle'
  /** blocks and chunks it acknowledged in this session */
  acknowledged: number
  /** CID string of the root of this replica's snapshot it acknowledged, or null */
  snapshot: string | null
  /** when it last confirmed holding everything this replica held, ms since the epoch, or null */
  keptAt: number | null
  /** why it refused or failed last (`KeeperFullError`, `KeeperRefusedError`, `NetworkError`), or null */
  error: KiteError | null
}

interface Entry {
  status: KeeperStatus
  /** heads (joined) at the end of the last pass that left it holding everything */
  keptHeads: string | null
  /** heads (joined) of the snapshot it acknowledged */
  snapshotHeads: string | null
  registered: boolean
  running: boolean
  dirty: boolean
  failures: number
  timer?: ReturnType<typeof setTimeout>
  /** CIDs it is known to have (oldest first; bounded) */
  known: Set<string>
}

/** What the client needs of the replication engine. */
export interface KeepHooks {
  /** heads a keeper has: fetch those this replica lacks from it */
  heard: (heads: string[], from: string) => void
  /** the latest snapshot this replica made, if any */
  snapshot: () => BuiltSnapshot | undefined
  /** called with each new snapshot made; returns an unsubscribe function */
  onSnapshot: (listener: () => void) => () => void
}

/** Options of `KeepClient.whenKept`. */
export interface WhenKeptOptions {
  /** reject with `TimeoutError` after this long, ms (default 30000) */
  timeoutMs?: number
  /**
   * also wait until a keeper holds a snapshot of this replica's current heads (only a writer
   * holding at least `snapshotMinBlocks` blocks makes one, once writes go quiet). Default false.
   */
  snapshot?: boolean
}

/** Hands a replica's blocks and snapshots to keepers; see the module comment. */
export class KeepClient {
  private readonly replica: Replica
  private readonly transport: Transport
  private readonly hooks: KeepHooks
  private readonly entries = new Map<string, Entry>()
  private readonly listeners = new Set<() => void>()
  private readonly errorListeners = new Set<(err: KiteError) => void>()
  private readonly cleanups: Array<() => void> = []
  private heads = ''
  private stopped = false

  constructor (replica: Replica, transport: Transport, hooks: KeepHooks) {
    this.replica = replica
    this.transport = transport
    this.hooks = hooks
  }

  /** Start: find the keepers, and keep handing them what they lack. */
  start (): void {
    this.cleanups.push(
      this.replica.onChange(() => { this.changed() }),
      this.hooks.onSnapshot(() => { this.changed() }),
      this.transport.onKeepers?.(() => { this.syncKeepers() }) ?? (() => {})
    )
    void this.replica.heads().then(h => { this.heads = h.join() }, () => {})
    this.syncKeepers()
  }

  stop (): void {
    this.stopped = true
    for (const c of this.cleanups.splice(0)) c()
    for (const e of this.entries.values()) if (e.timer !== undefined) clearTimeout(e.timer)
  }

  /**
   * Whether everything this replica holds is stored by at least one keeper, against the heads as
   * last seen (`isKept` reads them first).
   */
  get kept (): boolean {
    return [...this.entries.values()].some(e => e.status.state === 'kept' && e.keptHeads === this.heads)
  }

  /** Whether everything this replica holds now is stored by at least one keeper. */
  async isKept (): Promise<boolean> {
    this.heads = (await this.replica.heads()).join()
    return this.kept
  }

  /** Every keeper heard of in this session and where it stands. */
  keepers (): KeeperStatus[] {
    return [...this.entries.values()].map(e => ({ ...e.status }))
  }

  /** Called whenever a keeper's status, or `kept`, changes. Returns an unsubscribe function. */
  onChange (listener: () => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Called with each new refusal by a keeper. Returns an unsubscribe function. */
  onError (listener: (err: KiteError) => void): () => void {
    this.errorListeners.add(listener)
    return () => { this.errorListeners.delete(listener) }
  }

  /**
   * Resolves once everything this replica holds is stored by at least one keeper (acknowledged
   * after the keeper's commit). Rejects with `TimeoutError` after `timeoutMs`, or at once with the
   * refusal (`KeeperFullError`, `KeeperRefusedError`) when every keeper reached refused.
   */
  async whenKept (options: WhenKeptOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 30_000
    await new Promise<void>((resolve, reject) => {
      let done = false
      const finish = (err?: Error): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        off()
        if (err === undefined) resolve()
        else reject(err)
      }
      const check = async (): Promise<void> => {
        // The heads now, not as last seen: a write just made must be kept too.
        if (await this.isKept() && (options.snapshot !== true || this.snapshotKept())) { finish(); return }
        const entries = [...this.entries.values()]
        if (entries.length > 0 && entries.every(e => e.status.state === 'refused' && e.status.error !== null)) finish(entries[0]?.status.error as KiteError)
      }
      const off = this.onChange(() => { void check() })
      const timer = setTimeout(() => {
        const states = this.keepers().map(k => `${k.peer}: ${k.state}${k.error !== null ? ` (${k.error.message})` : ''}`)
        finish(new TimeoutError(`not everything was kept within ${timeoutMs} ms: ${states.length === 0 ? 'no keeper reached' : states.join('; ')}`))
      }, timeoutMs)
      void check()
    })
  }

  /** Whether a keeper that keeps everything holds a snapshot of the current heads. */
  private snapshotKept (): boolean {
    return [...this.entries.values()].some(e => e.status.state === 'kept' && e.keptHeads === this.heads && e.snapshotHeads === this.heads)
  }

  private notify (): void {
    for (const l of this.listeners) {
      try { l() } catch (err) { log.warn('keep listener threw', err) }
    }
  }

  /** The replica applied a block or made a snapshot: every connected keeper gets a pass. */
  private changed (): void {
    if (this.stopped) return
    void this.replica.heads().then(h => {
      this.heads = h.join()
      for (const [peer, e] of this.entries) {
        if (e.status.state === 'kept' && e.keptHeads !== this.heads) e.status.state = 'saving'
        if (e.status.state !== 'idle' && e.status.state !== 'refused') this.schedule(peer, e, 50)
      }
      this.notify()
    }, () => {})
  }

  /** The transport's keepers changed: new ones get a pass; gone ones go idle (what they acknowledged stays). */
  private syncKeepers (): void {
    if (this.stopped) return
    const now = new Set(this.transport.keepers?.() ?? [])
    for (const peer of now) {
      let e = this.entries.get(peer)
      if (e === undefined) {
        e = { status: { peer, state: 'saving', acknowledged: 0, snapshot: null, keptAt: null, error: null }, keptHeads: null, snapshotHeads: null, registered: false, running: false, dirty: false, failures: 0, known: new Set() }
        this.entries.set(peer, e)
      } else if (e.status.state === 'idle') {
        e.status.state = 'saving'
        e.registered = false // it may have restarted (or expired the database): ask again
      }
      this.schedule(peer, e, 0)
    }
    for (const [peer, e] of this.entries) {
      if (now.has(peer) || e.status.state === 'idle') continue
      // Gone: what it acknowledged stays stored there, so it still counts as keeping what it kept.
      if (e.status.state !== 'kept') e.status.state = 'idle'
      if (e.timer !== undefined) { clearTimeout(e.timer); e.timer = undefined }
    }
    this.notify()
  }

  private schedule (peer: string, e: Entry, ms: number): void {
    if (this.stopped) return
    if (e.running) { e.dirty = true; return }
    if (e.timer !== undefined) {
      if (ms > 0) return
      clearTimeout(e.timer)
    }
    e.timer = setTimeout(() => { e.timer = undefined; void this.run(peer, e) }, ms)
  }

  /** Passes until one ends with nothing changed meanwhile; failures are retried later. */
  private async run (peer: string, e: Entry): Promise<void> {
    if (this.stopped || e.running) return
    e.running = true
    try {
      do {
        e.dirty = false
        const before = (await this.replica.heads()).join()
        await this.pass(peer, e)
        const after = (await this.replica.heads()).join()
        this.heads = after
        if (after !== before) { e.dirty = true; continue }
        e.keptHeads = after
        e.failures = 0
        e.status = { ...e.status, state: 'kept', keptAt: Date.now(), error: null }
        this.notify()
      } while (e.dirty && !this.stopped)
    } catch (err) {
      if (this.stopped) return
      const refusal = err instanceof KeeperFullError || err instanceof KeeperRefusedError
      // Busy, or no longer keeping it (it expired between two requests): soon again, not a refusal.
      const busy = err instanceof KeeperRefusedError && (err.reason === 'busy' || err.reason === 'not-kept')
      if (err instanceof KeeperRefusedError && err.reason === 'not-kept') { e.registered = false; e.known.clear(); e.status.snapshot = null }
      if (!refusal && !(err instanceof NetworkError) && !(err instanceof TimeoutError)) log.warn(`keeping ${this.replica.dbId} on ${peer} failed`, err)
      const delay = busy ? BUSY_RETRY_MS : refusal ? REFUSED_RETRY_MS : RETRY_MS[Math.min(e.failures++, RETRY_MS.length - 1)]
      const repeated = e.status.error?.message === (err as Error).message
      e.status = { ...e.status, state: refusal && !busy ? 'refused' : busy ? 'saving' : 'unreachable', error: err as KiteError }
      if (refusal && !busy && !repeated) {
        log.warn(`keeper ${peer} refused to keep ${this.replica.dbId}: ${(err as Error).message}`)
        for (const l of this.errorListeners) {
          try { l(err) } catch (e2) { log.warn('error listener threw', e2) }
        }
      }
      this.notify()
      e.running = false
      if (this.transport.keepers?.().includes(peer) === true) this.schedule(peer, e, delay)
      return
    } finally {
      e.running = false
    }
  }

  /** One pass: see the module comment. Throws the keeper's refusal, or `NetworkError`/`TimeoutError`. */
  private async pass (peer: string, e: Entry, again = true): Promise<void> {
    if (this.replica.manifest === null) {
      // Joined by address, manifest not here yet: this replica holds nothing; learn what the keeper has.
      const state = await this.stateOf(peer)
      if (state.kept && state.heads.length > 0) this.hooks.heard(state.heads.map(String), peer)
      return
    }
    if (!e.registered) {
      const manifest = await this.replica.storage.getMeta<Uint8Array>(MANIFEST_KEY)
      await this.request(peer, { t: 'keep', db: this.replica.dbId, ...(manifest !== undefined ? { manifest } : {}) })
      e.registered = true
    }
    const state = await this.stateOf(peer)
    if (!state.kept) {
      // It no longer keeps it (idle, it expired): ask again, and hand everything over again.
      e.registered = false
      e.known.clear()
      e.status.snapshot = null
      if (again) { await this.pass(peer, e, false); return }
      throw new KeeperRefusedError(peer, 'not-kept', 'the keeper does not keep this database, though it agreed to')
    }
    const mine = await this.replica.heads()
    const theirs = state.heads.map(String)
    const lacked = theirs.filter(h => !mine.includes(h))
    if (lacked.length > 0) this.hooks.heard(lacked, peer)
    for (const h of theirs) this.remember(e, h)
    // The keeper's missing parents that this replica stores: handed over too (walked from).
    const frontier = [...mine]
    let page: KeepState = state
    for (;;) {
      const ids = page.missing.map(String)
      const stored = await this.replica.storage.getBlocks(ids)
      ids.forEach((c, i) => { if (stored[i] !== undefined) frontier.push(c) })
      if (!page.more || ids.length === 0) break
      page = await this.stateOf(peer, page.missing[page.missing.length - 1])
    }
    await this.handOver(peer, e, frontier)
    await this.handOverSnapshot(peer, e)
  }

  /** Walk down from `frontier`, asking what the keeper has, and hand over what it lacks. */
  private async handOver (peer: string, e: Entry, frontier: string[]): Promise<void> {
    const seen = new Set<string>()
    let queue = frontier.filter(c => !e.known.has(c))
    let width = 8
    while (queue.length > 0 && !this.stopped) {
      // A frontier of up to `width` CIDs, widened locally (their parents) while under it.
      const batch: string[] = []
      const bytesOf = new Map<string, Uint8Array>()
      const local = [...queue]
      queue = []
      while (local.length > 0 && batch.length < width) {
        const level = local.splice(0, width - batch.length).filter(c => !seen.has(c) && !e.known.has(c))
        for (const c of level) seen.add(c)
        const found = await this.replica.storage.getBlocks(level)
        level.forEach((c, i) => {
          const bytes = found[i]
          if (bytes === undefined) return // covered by a snapshot, or missing here too: not this replica's to hand over
          batch.push(c)
          bytesOf.set(c, bytes)
          for (const next of links(bytes)) if (!seen.has(next) && !e.known.has(next)) local.push(next)
        })
      }
      queue.push(...local)
      if (batch.length === 0) continue
      const has = (await this.request(peer, { t: 'has', db: this.replica.dbId, cids: batch.map(c => parseCid(c) as CID) }) as { has: boolean[] }).has
      const lacking = batch.filter((c, i) => {
        if (has[i] === true) { this.remember(e, c); return false }
        return true
      })
      // Past a CID the keeper has, its ancestors are the keeper's too (or reported missing): drop them from the walk.
      if (lacking.length < batch.length) {
        const reachable = new Set<string>()
        for (const c of lacking) for (const next of links(bytesOf.get(c) as Uint8Array)) reachable.add(next)
        queue = queue.filter(c => reachable.has(c) || frontier.includes(c))
      }
      width = lacking.length === batch.length ? Math.min(MAX_REQUEST_CIDS, width * 4) : 8
      await this.put(peer, e, lacking.map(c => bytesOf.get(c) as Uint8Array))
    }
  }

  /** Hand over `blocks` in requests of at most `PUT_BYTES`. */
  private async put (peer: string, e: Entry, blocks: Uint8Array[]): Promise<void> {
    for (const group of groups(blocks)) {
      const result = (await this.request(peer, { t: 'put', db: this.replica.dbId, blocks: group }) as { put: PutResult }).put
      for (const c of result.stored) this.remember(e, c.toString())
      e.status.acknowledged += result.stored.length
      if (result.refused.length > 0) {
        const first = result.refused[0]
        throw new KeeperRefusedError(peer, 'refused', `${result.refused.length} blocks refused, ${first.cid.toString()}: ${first.reason}`)
      }
    }
  }

  /** A writer's latest snapshot, when the keeper holds another: the signed offer, then the nodes it lacks. */
  private async handOverSnapshot (peer: string, e: Entry): Promise<void> {
    const built = this.hooks.snapshot()
    if (built === undefined || !this.replica.canWrite || e.status.snapshot === built.root.toString()) return
    // The keeper takes a snapshot only over head blocks it holds; a snapshot made after this pass
    // read the heads (writes went on meanwhile) is over blocks not handed over yet.
    await this.handOver(peer, e, built.heads)
    const signed = await signSnapshotRoot(built.root, this.replica.signer, this.replica.link)
    const nodes = [...built.nodes.keys()]
    const result = (await this.request(peer, {
      t: 'snapshot',
      db: this.replica.dbId,
      offer: { root: built.root, ...signed, heads: built.heads.map(h => parseCid(h) as CID), nodes: nodes.map(n => parseCid(n) as CID), blocks: built.covered.size }
    }) as { put: PutResult }).put
    const present = new Set(result.stored.map(String))
    for (const group of groups(nodes.filter(n => !present.has(n)).map(n => built.nodes.get(n) as Uint8Array))) {
      await this.request(peer, { t: 'nodes', db: this.replica.dbId, root: built.root, nodes: group })
    }
    e.status.snapshot = built.root.toString()
    e.snapshotHeads = built.heads.join()
    log.debug(`keeper ${peer} keeps snapshot ${built.root.toString()} of ${this.replica.dbId}`)
  }

  private async stateOf (peer: string, after?: CID): Promise<KeepState> {
    return (await this.request(peer, { t: 'state', db: this.replica.dbId, ...(after !== undefined ? { after } : {}) }) as { state: KeepState }).state
  }

  /** One keep request; a refusal is thrown as `KeeperFullError` or `KeeperRefusedError`. */
  private async request (peer: string, req: KeepRequest): Promise<KeepResponse> {
    const bytes = await this.transport.request(peer, KEEP_PROTOCOL, encodeKeepRequest(req), { timeoutMs: REQUEST_TIMEOUT_MS })
    let response: KeepResponse
    try {
      response = decodeKeepResponse(bytes, req.t)
    } catch (err) {
      throw new KeeperRefusedError(peer, 'refused', `a malformed answer: ${(err as Error).message}`)
    }
    if ('error' in response) throw keepError(peer, response.error)
    return response
  }

  private remember (e: Entry, cid: string): void {
    e.known.delete(cid)
    e.known.add(cid)
    if (e.known.size > KNOWN_MAX) e.known.delete(e.known.values().next().value as string)
  }
}

/** The typed error of a keeper's refusal. */
function keepError (peer: string, err: KeepError): KiteError {
  return err.code === 'full' ? new KeeperFullError(peer, err.message) : new KeeperRefusedError(peer, err.code, err.message)
}

/** A block's chunks and parents (CID strings); nothing for a chunk. */
function links (bytes: Uint8Array): string[] {
  try {
    const header = readBlockHeader(bytes)
    return [...header.chunks.map(String), ...header.parents.map(String)]
  } catch {
    return []
  }
}

/** `items` in groups of at most `PUT_BYTES` (an item alone may be a group). */
function groups (items: Uint8Array[]): Uint8Array[][] {
  const out: Uint8Array[][] = []
  let size = 0
  for (const item of items) {
    if (out.length === 0 || size + item.byteLength > PUT_BYTES) { out.push([]); size = 0 }
    out[out.length - 1].push(item)
    size += item.byteLength
  }
  return out
}
