/**
 * The benchmark page: `window.bench`, called by the Node driver (bench/run.ts) with
 * `page.evaluate`. Every function makes its documents before it starts the clock and returns
 * milliseconds measured with `performance.now()` around the timed call only.
 */
// First: counts WebRTC and WebSocket bytes, so it must wrap them before libp2p is evaluated.
import { wireBytes, type WireBytes } from './wire.js'
import { KiteDB, type Collection, type Database, type PeerInfo } from '../../src/index.js'
import { makeDocs, type BenchDoc } from './docs.js'
import { openStore, type FindKind, type LocalSystem, type Store } from './systems.js'

/**
 * A timed call: `ms`, and `result`, what the call produced, to compare with raw Dexie's (the
 * found ids in order, or the store's document counts after the call).
 */
export interface Timed { ms: number, result?: string, notes: string[] }

/** The found ids as a comparable text: how many, and a 32-bit FNV-1a hash of them in order. */
function digest (ids: string[]): string {
  let h = 0x811c9dc5
  for (const ch of ids.join('\n')) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0
  return `${ids.length} docs, hash ${h.toString(16)}`
}

/** A store's counts after a call, as a comparable text. */
async function summary (store: Store): Promise<string> {
  const { docs, archived } = await store.summary()
  return `${docs} docs, ${archived} archived`
}

/** Milliseconds since the epoch with sub-millisecond precision, comparable between pages of one machine. */
const nowAbs = (): number => performance.timeOrigin + performance.now()

/** Collect garbage (Chromium runs with `--js-flags=--expose-gc`) so earlier work does not land in the next timing. */
const gc = (): void => { (globalThis as { gc?: () => void }).gc?.() }

async function time (fn: () => Promise<unknown>): Promise<number> {
  gc()
  const t0 = performance.now()
  await fn()
  return performance.now() - t0
}

async function withTimeout<T> (what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: no result within ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The loaded database the find, cold-open and heap measures use (one per page). */
let fixture: Store | undefined

function loaded (): Store {
  if (fixture === undefined) throw new Error('no database loaded in this page: call load() (or coldOpen()) first')
  return fixture
}

/** Documents a phone shows at once: the catch-up's `first` phase is when observe({}) first reports this many. */
const SCREENFUL = 20

/** Replicated KiteDB state of this page (one database per page). */
const repl: { db?: Database, docs?: Collection<BenchDoc>, pings?: Collection<{ seq: number, sentAt: number }>, latencyBySeq: Map<number, number>, seen: number, onSeen: Set<() => void> } = {
  latencyBySeq: new Map(), seen: -1, onSeen: new Set()
}

function replDb (): Database {
  if (repl.db === undefined) throw new Error('no replicated database open in this page')
  return repl.db
}

const api = {
  /** Insert documents 0…count-1 into a new database with one call. */
  async insertBulk (system: LocalSystem, name: string, count: number): Promise<Timed> {
    const store = await openStore(system, name)
    const docs = makeDocs(0, count)
    const ms = await time(async () => { await store.insertMany(docs) })
    const result = await summary(store)
    await store.close()
    return { ms, result, notes: store.notes }
  },

  /** Insert documents 0…count-1 into a new database one call at a time; returns each call's ms. */
  async insertOneEach (system: LocalSystem, name: string, count: number): Promise<{ ms: number[], notes: string[] }> {
    const store = await openStore(system, name)
    const docs = makeDocs(0, count)
    const ms: number[] = []
    gc()
    for (const doc of docs) {
      const t0 = performance.now()
      await store.insertOne(doc)
      ms.push(performance.now() - t0)
    }
    await store.close()
    return { ms, notes: store.notes }
  },

  /** Create the page's fixture database `name` with documents 0…count-1, inserted `chunk` at a time. */
  async load (system: LocalSystem, name: string, count: number, chunk: number): Promise<Timed> {
    const store = fixture = await openStore(system, name)
    const ms = await time(async () => {
      for (let start = 0; start < count; start += chunk) await store.insertMany(makeDocs(start, Math.min(chunk, count - start)))
    })
    return { ms, notes: store.notes }
  },

  /** One query on the fixture: equality on email, age range sorted and limited, or scan on nested.city. */
  async find (kind: FindKind, arg: string): Promise<Timed> {
    const store = loaded()
    let ids: string[] = []
    const ms = await time(async () => { ids = await store.find(kind, arg) })
    // Only the range query has an order (sorted by age, ties by _id); the others are sets.
    const result = digest(kind === 'range' ? ids : [...ids].sort())
    return { ms, result, notes: store.explain !== undefined ? [...store.notes, await store.explain(kind, arg)] : store.notes }
  },

  /** In a freshly loaded page: open the fixture database `name` and find `email`; the time covers both. */
  async coldOpen (system: LocalSystem, name: string, email: string): Promise<Timed> {
    let ids: string[] = []
    const ms = await time(async () => {
      fixture = await openStore(system, name)
      ids = await fixture.find('email', email)
    })
    return { ms, result: digest([...ids].sort()), notes: loaded().notes }
  },

  /** A new database holding documents 0…count-1; time setting `status` on all of them. */
  async updateMany (system: LocalSystem, name: string, count: number): Promise<Timed> {
    const store = await openStore(system, name)
    try {
      const docs = makeDocs(0, count)
      await store.insertMany(docs)
      const changed = docs.map(d => ({ ...d, status: 'archived' }))
      const ms = await time(async () => { await store.updateMany(changed) })
      return { ms, result: await summary(store), notes: store.notes }
    } finally {
      await store.close()
    }
  },

  /** Replicated: create database `name` on the relays, wait until online (local-only without relays); returns its address. */
  async replCreate (name: string, relays: string[]): Promise<string> {
    // Plain, as docs/benchmarks.md's figures were measured (joiners open it by address, without a key).
    const db = repl.db = await KiteDB.init(name, { relays, storage: 'indexeddb', encrypt: false, access: { write: ['*'] } })
    if (relays.length > 0) await db.whenOnline()
    repl.docs = await db.initCollection<BenchDoc>('docs')
    repl.pings = await db.initCollection('pings')
    return db.address
  },

  /** Replicated: insert documents 0…count-1, `chunk` per call (one block each). */
  async replInsertHistory (count: number, chunk: number): Promise<void> {
    const docs = repl.docs as Collection<BenchDoc>
    for (let start = 0; start < count; start += chunk) await docs.insert(makeDocs(start, Math.min(chunk, count - start)))
  },

  /** Replicated: write `{seq, sentAt: now}` into the `ping` document. */
  async replPing (seq: number): Promise<void> {
    await repl.pings?.updateOne({ _id: 'ping' }, { $set: { seq, sentAt: nowAbs() } }, { upsert: true })
  },

  /**
   * Replicated: join `address`, wait until online (with relays; without, the database is opened
   * local-only, as a second tab of the same origin does) and observe the `ping` document,
   * recording each new seq's latency.
   */
  async replJoin (address: string, relays: string[]): Promise<void> {
    const db = repl.db = await KiteDB.open(address, { relays, storage: 'indexeddb' })
    if (relays.length > 0) await db.whenOnline()
    const pings = repl.pings = await db.initCollection('pings')
    pings.observe({ _id: 'ping' }, docs => {
      const doc = docs[0]
      if (doc === undefined || doc.seq <= repl.seen) return
      repl.latencyBySeq.set(doc.seq, nowAbs() - doc.sentAt)
      repl.seen = doc.seq
      for (const f of repl.onSeen) f()
    })
  },

  /** Replicated: resolves once the observed ping reached `seq`. */
  async replWaitSeq (seq: number, timeoutMs: number): Promise<void> {
    let off = (): void => {}
    try {
      await withTimeout(`ping ${seq}`, timeoutMs, new Promise<void>(resolve => {
        const check = (): void => { if (repl.seen >= seq) resolve() }
        repl.onSeen.add(check)
        off = () => { repl.onSeen.delete(check) }
        check()
      }))
    } finally {
      off()
    }
  },

  /** Replicated: observe latencies (ms) of pings `from`… in seq order (a seq coalesced into a later one has none). */
  replLatencies (from: number): number[] {
    return [...repl.latencyBySeq.entries()].filter(([seq]) => seq >= from).sort(([a], [b]) => a - b).map(([, ms]) => ms)
  },

  /**
   * Replicated: open `address` in this fresh page; ms until `observe({})` reports `count`
   * documents and storage holds them all, the bytes the page moved on the network by then (since page load), whether it
   * joined from a snapshot, and when (ms from the start) each phase was first reached: a peer, a
   * direct connection, the first screenful observed (`first`), all documents observed (`shown`), the snapshot offered (its first node progress), all its nodes fetched, installed.
   */
  async replCatchUp (address: string, relays: string[], count: number, timeoutMs: number): Promise<{ ms: number, wire: WireBytes, snapshot: boolean, phases: Record<string, number> }> {
    const t0 = performance.now()
    const phases: Record<string, number> = {}
    const mark = (phase: string): void => { phases[phase] ??= Math.round(performance.now() - t0) }
    const db = repl.db = await KiteDB.open(address, { relays, storage: 'indexeddb' })
    mark('open')
    db.on('sync:progress', p => {
      if (p.snapshot !== undefined) mark('snapshot')
      if (p.snapshot !== undefined && p.snapshot.documents > 0 && p.snapshot.fetched >= p.snapshot.nodes) mark('fetched')
      if (p.snapshot?.installed === true) mark('installed')
    })
    const poll = setInterval(() => {
      const peers = db.peers()
      if (peers.length > 0) mark('peer')
      if (peers.some(p => p.kind === 'direct')) mark('direct')
    }, 20)
    const docs = await db.initCollection<BenchDoc>('docs')
    let stop = (): void => {}
    try {
      await withTimeout(`catching up ${count} documents`, timeoutMs, new Promise<void>(resolve => {
        stop = docs.observe({}, found => {
          if (found.length >= SCREENFUL) mark('first')
          if (found.length >= count) resolve()
        })
      }))
      // observe shows a snapshot's documents before its install commits: caught up means stored.
      mark('shown')
      while (await docs.countDocuments() < count) await new Promise(resolve => setTimeout(resolve, 10))
    } finally {
      stop()
      clearInterval(poll)
    }
    const ms = performance.now() - t0
    const wire = await wireBytes()
    return { ms, wire, snapshot: (await db.syncState()).snapshot !== null, phases }
  },

  /** Replicated: insert `count` small documents whose ids start with `prefix`, one call each. */
  async replInsert (prefix: string, count: number): Promise<void> {
    const docs = await replDb().initCollection<{ _id: string, n: number }>('extra')
    for (let n = 0; n < count; n++) await docs.insertOne({ _id: `${prefix}-${n}`, n })
  },

  /** Replicated: the ids of the `extra` documents (see `replInsert`), sorted. */
  async replExtraIds (): Promise<string[]> {
    const docs = await replDb().initCollection<{ _id: string, n: number }>('extra')
    return (await docs.find({}, { _id: 1 })).map(d => d._id).sort()
  },

  /** Replicated: this page's network status and how many relays hold its reservation. */
  replNetwork (): { status: string, reserved: number } {
    const s = replDb().networkState()
    return { status: s.status, reserved: s.reserved }
  },

  /** Replicated: what a failed network measure reports: extra ids, network state, peers, sync state. */
  async replDebug (): Promise<unknown> {
    const db = replDb()
    return { extra: await api.replExtraIds(), network: db.networkState(), peers: db.peers(), sync: await db.syncState() }
  },

  /** Replicated: this page's peers and how they are connected. */
  replPeers (): PeerInfo[] {
    return replDb().peers()
  },

  /**
   * Replicated: resolves once a keeper stores everything this page holds (`whenKept`), with
   * `snapshot` also a snapshot of its current heads; returns the ms it waited.
   */
  async replWhenKept (snapshot: boolean, timeoutMs: number): Promise<number> {
    const t0 = performance.now()
    await replDb().whenKept({ timeoutMs, snapshot })
    return performance.now() - t0
  },

  /** Replicated: close this page's database. */
  async replClose (): Promise<void> {
    await replDb().close()
  }
}

/** The functions the driver calls. */
export type BenchApi = typeof api

declare global {
  interface Window { bench: BenchApi }
}

window.bench = api
