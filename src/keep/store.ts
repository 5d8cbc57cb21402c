/**
 * A keeper's storage: every kept database's blocks, chunks, manifest and latest writer snapshot in
 * one LevelDB (classic-level), so nothing is a hand-written file format and what is kept is read
 * from disk, never loaded whole (docs/keepers.md, "Storage").
 *
 * Keys (UTF-8; `<db>` and `<cid>` are CID strings, `<peer>` a peer id):
 *
 * | key | value |
 * |---|---|
 * | `d!<db>` | the database's record (JSON `DbRecord`: bytes and blocks kept, when created and last active) |
 * | `m!<db>` | its manifest's bytes |
 * | `b!<db>!<cid>` | a block or chunk, as handed (sealed blocks stay sealed) |
 * | `h!<db>!<cid>` | a head: a stored block no stored block names as a parent |
 * | `r!<db>!<cid>` | named as a parent by a stored block |
 * | `x!<db>!<cid>` | missing: a parent or chunk that stored blocks name and that is not stored |
 * | `n!<db>!<cid>` | a node (root, page, covered list) of its snapshot, or of the one being handed over |
 * | `s!<db>`, `S!<db>` | its snapshot's offer (JSON), kept and being handed over |
 * | `o!<db>!<peer>` | a peer that asked to keep it |
 * | `p!<peer>` | how many databases the peer asked to keep (JSON) |
 * | `t` | what the keeper holds in all (JSON `KeeperUsage`) |
 *
 * Writes go through one queue, one LevelDB batch each, so quotas are checked against exact
 * counts and a write is all or nothing. Batches are written with `sync: true`: LevelDB then
 * fsyncs its log before the write resolves, so what the keeper acknowledged survives the process
 * being killed and the machine losing power. (Without it a write survives `kill -9` — it is in the
 * operating system's cache — but not a power cut; one fsync per request, a batch of up to 4 MiB,
 * costs little next to the network.)
 *
 * Memory does not grow with what is kept: no index of blocks is held, only a bounded cache of
 * database records (`RECORD_CACHE`) and LevelDB's own bounded caches.
 *
 * One piece, though over 400 lines: every method reads or writes the key layout above through
 * the one write queue, and the quotas are checked against counts that every write keeps exact.
 */
import { ClassicLevel } from 'classic-level'
import { type CID, parseCid } from '../crdt/index.js'
import { MAX_HEADS } from '../sync/wire.js'
import { type KeepError, type KeptSnapshotOffer, type KeepState, MAX_MISSING_PAGE } from '../sync/keep-wire.js'
import { createLogger } from '../log.js'
import { type CheckedNode } from './verify.js'
import { type KeepLimits, type KeeperUsage, bytesProblem, newDatabaseProblem } from './limits.js'

const log = createLogger('keep')

/** Database records kept in memory at most (the others are read from disk when needed). */
const RECORD_CACHE = 1024
/** A database's last activity is written at most once per this long, ms (reads alone do not write more often). */
const ACTIVE_WRITE_MS = 60 * 60 * 1000
/** Keys deleted per batch when a database is dropped. */
const DELETE_BATCH = 1000

/** What the keeper records about one kept database. */
export interface DbRecord {
  /** bytes of its blocks, chunks, snapshot nodes and manifest */
  bytes: number
  /** blocks and chunks stored */
  blocks: number
  /** when it was first kept, and last handed something or read from, ms since the epoch */
  created: number
  active: number
}

/** A snapshot offer as stored (JSON: binary fields base64). */
interface StoredOffer { root: string, w: string, s: string, l?: string, heads: string[], nodes: string[], blocks: number }

const enc = new TextEncoder()
const dec = new TextDecoder()
const EMPTY = new Uint8Array(0)
const json = (value: unknown): Uint8Array => enc.encode(JSON.stringify(value))
const parse = <T>(bytes: Uint8Array): T => JSON.parse(dec.decode(bytes)) as T
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')
const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'))

/** The end of a key range holding every key starting with `prefix` (`prefix` ends with `!`). */
const upper = (prefix: string): string => prefix.slice(0, -1) + '"'

type Op = { type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }

/** Options of `KeepStore.open`. */
export interface KeepStoreOptions {
  /** the clock, ms (default `Date.now`; tests pass their own) */
  now?: () => number
  /** false: do not fsync each write (tests of speed only; see the module comment). Default true */
  sync?: boolean
}

/** The keeper's LevelDB; see the module comment. */
export class KeepStore {
  private readonly db: ClassicLevel<string, Uint8Array>
  private readonly limits: KeepLimits
  private readonly now: () => number
  private readonly sync: boolean
  private queue: Promise<void> = Promise.resolve()
  private readonly records = new Map<string, DbRecord>()
  /** per database: when its activity was last written */
  private readonly activeWritten = new Map<string, number>()
  private usage: KeeperUsage = { databases: 0, bytes: 0 }
  private closed = false

  private constructor (db: ClassicLevel<string, Uint8Array>, limits: KeepLimits, options: KeepStoreOptions) {
    this.db = db
    this.limits = limits
    this.now = options.now ?? Date.now
    this.sync = options.sync ?? true
  }

  /** Open (creating) the store in directory `dir`. Rejects when LevelDB cannot open it (another process holds it, say). */
  static async open (dir: string, limits: KeepLimits, options: KeepStoreOptions = {}): Promise<KeepStore> {
    // LevelDB's own memory, bounded: an 8 MiB block cache, 4 MiB write buffer, at most 256 table files open.
    const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view', cacheSize: 8 * 1024 * 1024, writeBufferSize: 4 * 1024 * 1024, maxOpenFiles: 256 })
    await db.open()
    const store = new KeepStore(db, limits, options)
    const total = await db.get('t')
    if (total !== undefined) store.usage = parse<KeeperUsage>(total)
    return store
  }

  /** What the keeper holds in all. */
  get total (): Readonly<KeeperUsage> { return { ...this.usage } }

  /** Close the store; pending writes finish first. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.queue.catch(() => {})
    await this.db.close()
  }

  /** The record of a kept database, or undefined when it is not kept. */
  async record (db: string): Promise<DbRecord | undefined> {
    const cached = this.records.get(db)
    if (cached !== undefined) return cached
    const bytes = await this.db.get(`d!${db}`)
    if (bytes === undefined) return undefined
    const record = parse<DbRecord>(bytes)
    this.cache(db, record)
    return record
  }

  /** The manifest bytes of a kept database. */
  async manifest (db: string): Promise<Uint8Array | undefined> {
    return await this.db.get(`m!${db}`)
  }

  /**
   * Keep `db` for `peer` (its manifest `manifest`, already checked against `db`): a new database
   * counts against the keeper's most databases, and a database new to this peer against the
   * peer's. Resolves with a refusal, or undefined when kept.
   */
  async keep (db: string, manifest: Uint8Array, peer: string): Promise<KeepError | undefined> {
    return await this.exclusive(async () => {
      const [recordBytes, owner, peerBytes] = await this.db.getMany([`d!${db}`, `o!${db}!${peer}`, `p!${peer}`])
      if (recordBytes !== undefined && owner !== undefined) return undefined
      const peerDbs = peerBytes === undefined ? 0 : parse<{ dbs: number }>(peerBytes).dbs
      const problem = newDatabaseProblem(this.limits, this.usage, peerDbs, recordBytes === undefined)
      if (problem !== undefined) return problem
      const ops: Op[] = [{ type: 'put', key: `o!${db}!${peer}`, value: EMPTY }, { type: 'put', key: `p!${peer}`, value: json({ dbs: peerDbs + 1 }) }]
      const usage = { ...this.usage }
      let record: DbRecord
      if (recordBytes === undefined) {
        const tooBig = bytesProblem(this.limits, { bytes: 0 }, usage, manifest.byteLength)
        if (tooBig !== undefined) return tooBig
        const now = this.now()
        record = { bytes: manifest.byteLength, blocks: 0, created: now, active: now }
        usage.databases++
        usage.bytes += manifest.byteLength
        ops.push({ type: 'put', key: `m!${db}`, value: manifest }, { type: 'put', key: 't', value: json(usage) })
      } else {
        record = { ...parse<DbRecord>(recordBytes), active: this.now() }
      }
      ops.push({ type: 'put', key: `d!${db}`, value: json(record) })
      await this.write(ops)
      this.usage = usage
      this.cache(db, record)
      this.noteActive(db, record.active)
      return undefined
    })
  }

  /**
   * Store checked blocks and chunks of kept database `db`, in one batch: a block whatever its
   * parents (a missing parent is recorded as missing), a chunk only when a stored block or a
   * block of this batch names it (so nobody fills a database with chunks nothing needs). Resolves,
   * after the batch is written, with what is stored (now or before) and what is refused and why;
   * or with a refusal of the whole batch (a quota, or the database is not kept).
   */
  async putBlocks (db: string, nodes: CheckedNode[]): Promise<{ stored: CID[], refused: Array<{ cid: CID, reason: string }> } | { error: KeepError }> {
    return await this.exclusive(async () => {
      const record = await this.record(db)
      if (record === undefined) return { error: { code: 'not-kept', message: `database ${db} is not kept here: ask to keep it first` } }
      const unique = [...new Map(nodes.map(n => [n.cid.toString(), n])).values()]
      const related = new Set<string>()
      for (const n of unique) for (const c of [...n.parents, ...n.chunks]) related.add(c)
      const ids = unique.map(n => n.cid.toString())
      const lookups = [...ids.map(c => `b!${db}!${c}`), ...ids.map(c => `r!${db}!${c}`), ...ids.map(c => `x!${db}!${c}`), ...[...related].map(c => `b!${db}!${c}`)]
      const found = await this.db.getMany(lookups)
      const has = (i: number): boolean => found[i] !== undefined
      const stored = new Set<string>()
      const storedBefore = new Set(ids.filter((_, i) => has(i)))
      const referenced = new Set(ids.filter((_, i) => has(ids.length + i)))
      const missingBefore = new Set(ids.filter((_, i) => has(2 * ids.length + i)))
      const relatedStored = new Set([...related].filter((_, i) => has(3 * ids.length + i)))
      const named = new Set(unique.filter(n => n.kind === 'block').flatMap(n => n.chunks))
      const refused: Array<{ cid: CID, reason: string }> = []
      const ops: Op[] = []
      let adding = 0
      let blocks = 0
      const fresh: CheckedNode[] = []
      for (const n of unique) {
        const c = n.cid.toString()
        if (storedBefore.has(c)) { stored.add(c); continue }
        if (n.kind === 'chunk' && !missingBefore.has(c) && !named.has(c)) {
          refused.push({ cid: n.cid, reason: 'no block kept here names this chunk: hand it over with its block' })
          continue
        }
        fresh.push(n)
        adding += n.bytes.byteLength
        blocks++
      }
      const problem = bytesProblem(this.limits, record, this.usage, adding)
      if (problem !== undefined) return { error: problem }
      const isStored = (c: string): boolean => relatedStored.has(c) || storedBefore.has(c) || stored.has(c)
      // Blocks first in parent-before-child order does not matter: each op below is a set, and the
      // final state of a key is the last op on it in this batch (see the head and missing rules).
      const freshIds = new Set(fresh.map(n => n.cid.toString()))
      for (const n of fresh) {
        const c = n.cid.toString()
        ops.push({ type: 'put', key: `b!${db}!${c}`, value: n.bytes })
        stored.add(c)
      }
      const namedNow = new Set<string>()
      for (const n of fresh) for (const p of n.parents) namedNow.add(p)
      for (const n of fresh) {
        const c = n.cid.toString()
        if (missingBefore.has(c)) ops.push({ type: 'del', key: `x!${db}!${c}` })
        if (n.kind === 'chunk') continue
        if (!referenced.has(c) && !namedNow.has(c)) ops.push({ type: 'put', key: `h!${db}!${c}`, value: EMPTY })
        for (const p of n.parents) {
          ops.push({ type: 'put', key: `r!${db}!${p}`, value: EMPTY }, { type: 'del', key: `h!${db}!${p}` })
          if (!isStored(p) && !freshIds.has(p)) ops.push({ type: 'put', key: `x!${db}!${p}`, value: EMPTY })
        }
        for (const chunk of n.chunks) {
          if (!isStored(chunk) && !freshIds.has(chunk)) ops.push({ type: 'put', key: `x!${db}!${chunk}`, value: EMPTY })
        }
      }
      if (fresh.length > 0) {
        const next: DbRecord = { ...record, bytes: record.bytes + adding, blocks: record.blocks + blocks, active: this.now() }
        const usage = { ...this.usage, bytes: this.usage.bytes + adding }
        ops.push({ type: 'put', key: `d!${db}`, value: json(next) }, { type: 'put', key: 't', value: json(usage) })
        await this.write(ops)
        this.cache(db, next)
        this.noteActive(db, next.active)
        this.usage = usage
      }
      return { stored: unique.filter(n => stored.has(n.cid.toString())).map(n => n.cid), refused }
    })
  }

  /** Which of `cids` are stored (blocks and chunks) in kept database `db`. */
  async has (db: string, cids: string[]): Promise<boolean[]> {
    const found = await this.db.getMany(cids.map(c => `b!${db}!${c}`))
    return found.map(f => f !== undefined)
  }

  /** The bytes of a block, chunk, snapshot node or (by the database id) manifest of `db`, or undefined. */
  async node (db: string, cid: string): Promise<Uint8Array | undefined> {
    if (cid === db) return await this.manifest(db)
    const [block, node] = await this.db.getMany([`b!${db}!${cid}`, `n!${db}!${cid}`])
    return block ?? node
  }

  /** What the keeper holds of `db` (see `KeepState`), its missing CIDs from after `after`. */
  async state (db: string, after?: string): Promise<KeepState> {
    const record = await this.record(db)
    if (record === undefined) return { kept: false, heads: [], missing: [], more: false, blocks: 0 }
    const heads = await this.list(`h!${db}!`, MAX_HEADS)
    const missing = await this.list(`x!${db}!`, MAX_MISSING_PAGE + 1, after)
    const offer = await this.snapshot(db)
    const out: KeepState = { kept: true, heads, missing: missing.slice(0, MAX_MISSING_PAGE), more: missing.length > MAX_MISSING_PAGE, blocks: record.blocks }
    if (offer !== undefined) out.snapshot = offer.root
    return out
  }

  /** The CIDs after `prefix` in key order (after `after`, if given), at most `limit`. */
  private async list (prefix: string, limit: number, after?: string): Promise<CID[]> {
    const out: CID[] = []
    for await (const key of this.db.keys({ ...(after !== undefined ? { gt: prefix + after } : { gte: prefix }), lt: upper(prefix), limit })) {
      const cid = parseCid(key.slice(prefix.length))
      if (cid !== undefined) out.push(cid)
    }
    return out
  }

  /** The snapshot kept for `db` (a writer's signed offer), if any. */
  async snapshot (db: string): Promise<KeptSnapshotOffer | undefined> {
    const bytes = await this.db.get(`s!${db}`)
    return bytes === undefined ? undefined : offerFrom(parse<StoredOffer>(bytes))
  }

  /**
   * Begin keeping snapshot `offer` of `db` (checked by the caller: signatures, writer, heads
   * stored): its nodes are accepted from now on (`putNodes`), and once all are stored it replaces
   * the snapshot kept before. Resolves with the CIDs of its nodes still lacking, or a refusal.
   */
  async offerSnapshot (db: string, offer: KeptSnapshotOffer): Promise<{ lacking: CID[] } | { error: KeepError }> {
    return await this.exclusive(async () => {
      const record = await this.record(db)
      if (record === undefined) return { error: { code: 'not-kept', message: `database ${db} is not kept here` } }
      const current = await this.db.get(`s!${db}`)
      if (current !== undefined && parse<StoredOffer>(current).root === offer.root.toString()) return { lacking: [] }
      const present = await this.db.getMany(offer.nodes.map(c => `n!${db}!${c.toString()}`))
      const lacking = offer.nodes.filter((_, i) => present[i] === undefined)
      await this.write([{ type: 'put', key: `S!${db}`, value: json(offerTo(offer)) }])
      if (lacking.length === 0) await this.promote(db)
      return { lacking }
    })
  }

  /**
   * Store nodes of the snapshot being handed over for `db` (each already checked against its
   * CID by the caller); only nodes it names are taken. When the last arrives, it becomes the kept
   * snapshot and the nodes of the one before are deleted.
   */
  async putNodes (db: string, nodes: Array<{ cid: CID, bytes: Uint8Array }>): Promise<{ stored: CID[], refused: Array<{ cid: CID, reason: string }> } | { error: KeepError }> {
    return await this.exclusive(async () => {
      const record = await this.record(db)
      const pendingBytes = await this.db.get(`S!${db}`)
      if (record === undefined || pendingBytes === undefined) return { error: { code: 'refused', message: `no snapshot of ${db} is being handed over here: offer it first` } }
      const pending = parse<StoredOffer>(pendingBytes)
      const wanted = new Set(pending.nodes)
      const refused: Array<{ cid: CID, reason: string }> = []
      const take = nodes.filter(n => {
        if (wanted.has(n.cid.toString())) return true
        refused.push({ cid: n.cid, reason: 'not a node of the snapshot being handed over' })
        return false
      })
      const present = await this.db.getMany(take.map(n => `n!${db}!${n.cid.toString()}`))
      const fresh = take.filter((_, i) => present[i] === undefined)
      const adding = fresh.reduce((sum, n) => sum + n.bytes.byteLength, 0)
      const problem = bytesProblem(this.limits, record, this.usage, adding)
      if (problem !== undefined) return { error: problem }
      if (fresh.length > 0) {
        const next = { ...record, bytes: record.bytes + adding, active: this.now() }
        const usage = { ...this.usage, bytes: this.usage.bytes + adding }
        await this.write([
          ...fresh.map(n => ({ type: 'put' as const, key: `n!${db}!${n.cid.toString()}`, value: n.bytes })),
          { type: 'put', key: `d!${db}`, value: json(next) }, { type: 'put', key: 't', value: json(usage) }
        ])
        this.cache(db, next)
        this.usage = usage
      }
      const all = await this.db.getMany(pending.nodes.map(c => `n!${db}!${c}`))
      if (all.every(n => n !== undefined)) await this.promote(db)
      return { stored: take.map(n => n.cid), refused }
    })
  }

  /** The snapshot being handed over for `db` has all its nodes: make it the kept one, deleting nodes no longer named. In the queue. */
  private async promote (db: string): Promise<void> {
    const pendingBytes = await this.db.get(`S!${db}`)
    if (pendingBytes === undefined) return
    const keepNodes = new Set(parse<StoredOffer>(pendingBytes).nodes)
    const ops: Op[] = [{ type: 'put', key: `s!${db}`, value: pendingBytes }, { type: 'del', key: `S!${db}` }]
    let freed = 0
    for await (const [key, value] of this.db.iterator({ gte: `n!${db}!`, lt: upper(`n!${db}!`) })) {
      if (keepNodes.has(key.slice(`n!${db}!`.length))) continue
      ops.push({ type: 'del', key })
      freed += value.byteLength
    }
    const record = await this.record(db)
    const usage = { ...this.usage, bytes: this.usage.bytes - freed }
    if (record !== undefined) ops.push({ type: 'put', key: `d!${db}`, value: json({ ...record, bytes: record.bytes - freed }) })
    ops.push({ type: 'put', key: 't', value: json(usage) })
    await this.write(ops)
    if (record !== undefined) this.cache(db, { ...record, bytes: record.bytes - freed })
    this.usage = usage
    log.debug(`kept snapshot ${parse<StoredOffer>(pendingBytes).root} of ${db} (${freed} bytes of the one before freed)`)
  }

  /** Note that `db` was read from (serving a peer): its last activity, written at most once per `ACTIVE_WRITE_MS`. */
  async touch (db: string): Promise<void> {
    const now = this.now()
    if (now - (this.activeWritten.get(db) ?? 0) < ACTIVE_WRITE_MS) return
    this.noteActive(db, now)
    await this.exclusive(async () => {
      const record = await this.record(db)
      if (record === undefined) return
      const next = { ...record, active: now }
      await this.write([{ type: 'put', key: `d!${db}`, value: json(next) }])
      this.cache(db, next)
    })
  }

  /** Delete every database not active for `idleMs` (ms) before now; resolves with their ids. Streams the records: memory stays bounded. */
  async expire (idleMs: number): Promise<string[]> {
    const cutoff = this.now() - idleMs
    const idle: string[] = []
    for await (const [key, value] of this.db.iterator({ gte: 'd!', lt: 'd"' })) {
      const db = key.slice(2)
      const record = this.records.get(db) ?? parse<DbRecord>(value)
      if (record.active < cutoff) idle.push(db)
    }
    for (const db of idle) await this.drop(db)
    return idle
  }

  /** Delete database `db` and everything kept of it, in batches; the peers that asked for it get their count back. */
  async drop (db: string): Promise<void> {
    await this.exclusive(async () => {
      const record = await this.record(db)
      if (record === undefined) return
      const owners: string[] = []
      for await (const key of this.db.keys({ gte: `o!${db}!`, lt: upper(`o!${db}!`) })) owners.push(key.slice(`o!${db}!`.length))
      const peerRecords = await this.db.getMany(owners.map(p => `p!${p}`))
      const ops: Op[] = owners.map((p, i) => {
        const dbs = peerRecords[i] === undefined ? 0 : parse<{ dbs: number }>(peerRecords[i]).dbs - 1
        return dbs > 0 ? { type: 'put', key: `p!${p}`, value: json({ dbs }) } : { type: 'del', key: `p!${p}` }
      })
      for (const prefix of ['b', 'h', 'r', 'x', 'n', 'o']) {
        for await (const key of this.db.keys({ gte: `${prefix}!${db}!`, lt: upper(`${prefix}!${db}!`) })) {
          ops.push({ type: 'del', key })
          if (ops.length >= DELETE_BATCH) await this.write(ops.splice(0))
        }
      }
      const usage = { databases: this.usage.databases - 1, bytes: this.usage.bytes - record.bytes }
      ops.push({ type: 'del', key: `d!${db}` }, { type: 'del', key: `m!${db}` }, { type: 'del', key: `s!${db}` }, { type: 'del', key: `S!${db}` }, { type: 'put', key: 't', value: json(usage) })
      await this.write(ops)
      this.usage = usage
      this.records.delete(db)
      this.activeWritten.delete(db)
      log.debug(`dropped kept database ${db} (${record.bytes} bytes)`)
    })
  }

  /** The ids of every kept database, in key order (streamed; for exports and tests). */
  async * databases (): AsyncGenerator<string> {
    for await (const key of this.db.keys({ gte: 'd!', lt: 'd"' })) yield key.slice(2)
  }

  /** Every block and chunk of `db` as `[cid, bytes]`, in key order (streamed from disk). */
  async * blocks (db: string): AsyncGenerator<[string, Uint8Array]> {
    for await (const [key, value] of this.db.iterator({ gte: `b!${db}!`, lt: upper(`b!${db}!`) })) yield [key.slice(`b!${db}!`.length), value]
  }

  /** Every node of the kept snapshot of `db` as `[cid, bytes]` (streamed). */
  async * snapshotNodes (db: string): AsyncGenerator<[string, Uint8Array]> {
    const offer = await this.snapshot(db)
    if (offer === undefined) return
    for (const c of offer.nodes) {
      const bytes = await this.db.get(`n!${db}!${c.toString()}`)
      if (bytes !== undefined) yield [c.toString(), bytes]
    }
  }

  /** Remember when the activity of `db` was last written (the oldest forgotten first: bounded). */
  private noteActive (db: string, at: number): void {
    this.activeWritten.delete(db)
    this.activeWritten.set(db, at)
    if (this.activeWritten.size > RECORD_CACHE) this.activeWritten.delete(this.activeWritten.keys().next().value as string)
  }

  private cache (db: string, record: DbRecord): void {
    this.records.delete(db)
    this.records.set(db, record)
    if (this.records.size > RECORD_CACHE) this.records.delete(this.records.keys().next().value as string)
  }

  private async write (ops: Op[]): Promise<void> {
    if (ops.length === 0) return
    await this.db.batch(ops, { sync: this.sync })
  }

  private async exclusive<T> (fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('the keep store is closed')
    const run = this.queue.then(fn, fn)
    // Settle to nothing: the queue must not keep the last operation's result alive until the next.
    this.queue = run.then(() => {}, () => {})
    return await run
  }
}

function offerTo (o: KeptSnapshotOffer): StoredOffer {
  return { root: o.root.toString(), w: b64(o.w), s: b64(o.s), ...(o.l !== undefined ? { l: b64(o.l) } : {}), heads: o.heads.map(String), nodes: o.nodes.map(String), blocks: o.blocks }
}

function offerFrom (o: StoredOffer): KeptSnapshotOffer {
  const out: KeptSnapshotOffer = {
    root: parseCid(o.root) as CID,
    w: unb64(o.w),
    s: unb64(o.s),
    heads: o.heads.map(h => parseCid(h) as CID),
    nodes: o.nodes.map(n => parseCid(n) as CID),
    blocks: o.blocks
  }
  if (o.l !== undefined) out.l = unb64(o.l)
  return out
}
