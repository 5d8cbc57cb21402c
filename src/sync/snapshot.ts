/**
 * Snapshots (docs/snapshots.md): the CRDT states of a database at a set of heads H, as
 * content-addressed dag-cbor nodes, so a new replica joins from them instead of replaying history.
 *
 * - **root** `{v: 1, t: 'root', db, heads, pages, covered, docs, blocks}` names everything else;
 *   its CID identifies the snapshot.
 * - **page** `{v: 1, t: 'page', z: gzip(content)}`, the content `{clocks, docs, colls}` as JSON
 *   text (parsed natively: several times faster than dag-cbor for the joiner): document states in
 *   (collection, id) order, and collection states (first page only). A stamp
 *   `[t, c, r, blockCid, opIndex]` is written `[k, opIndex]`, `k` indexing the page's `clocks`
 *   table of `[t, c, r, blockCid]`: every op of a block shares its HLC and CID, so a page names
 *   each block once. A document is its values and its few stamps (`encodeDocEntry`). Compressed,
 *   because field names repeat in every document.
 * - **covered** `{v: 1, t: 'covered', cids}`: the CIDs of every block at or below H.
 *
 * Every node, and a page's content before compression, is at most `MAX_BLOCK_BYTES` (1 MiB). All
 * snapshot node encoding and decoding is here, behind one entry point each (`encodeSnapshotNode`,
 * `decodeSnapshotNode`). `decodeSnapshotNode` is total: any bytes give a node or reject with
 * `InvalidBlockError`.
 *
 * Trust (issue 6): in an encrypted database every node is `{v: 1, box}`, the node sealed with the
 * database key (XChaCha20-Poly1305, bound to the database id), so only key holders can read or
 * make one. A snapshot is offered with its producer's public key and signature of the root CID
 * (`signSnapshotRoot`); a joiner takes it only from a producer the manifest lets write, since the
 * root's CID commits to every node.
 */
import { InvalidBlockError, NetworkError } from '../errors.js'
import {
  type CID, type CollState, type DocState, type EncodedBlock, type EncodedChunk, type JsonValue, type Register, type Signer, type Stamp,
  MAX_BLOCK_BYTES, asCid, assertJsonValue, cidOfAsync, decodeBlock, decodeChunk, encode, isPlainObject,
  decodeNodeMap, isValidCollectionName, isValidDocId, isValidFieldName, parseCid, seal, unseal, verifySignature
} from '../crdt/index.js'
import { type DocKey } from '../store/index.js'
import { createLogger } from '../log.js'
import { type Replica, type SnapshotContent } from './replica.js'
import { MAX_HEADS } from './wire.js'

const log = createLogger('snapshot')

/** A snapshot's root. */
export interface SnapshotRoot {
  kind: 'root'
  /** CID string of the database manifest */
  db: string
  /** the heads H the snapshot was taken at (1 to `MAX_HEADS`) */
  heads: CID[]
  /** its pages, in (collection, id) order */
  pages: CID[]
  /** its covered lists */
  covered: CID[]
  /** documents in all pages (for progress, and checked) */
  docs: number
  /** CIDs in all covered lists (checked) */
  blocks: number
}

/** A page of document and collection states. */
export interface SnapshotPage {
  kind: 'page'
  docs: Array<DocKey & { state: DocState }>
  colls: Array<{ coll: string, state: CollState }>
}

/** A list of covered block CIDs. */
export interface CoveredList {
  kind: 'covered'
  cids: CID[]
}

/** Any snapshot node. */
export type SnapshotNode = SnapshotRoot | SnapshotPage | CoveredList

/** Pages are filled to about this many bytes of content before compression (estimated from the page before; one over 1 MiB is split). */
const PAGE_TARGET_BYTES = 512 * 1024
/** CIDs per covered list (a CID link is about 41 bytes: about 820 KB per list). */
const COVERED_PER_NODE = 20_000
/** Nodes asked for in one request while fetching a snapshot (≤ 1 MiB each: an answer stays under 4 MiB). */
const FETCH_NODES = 2
/** Requests in flight while fetching a snapshot. */
const FETCH_PARALLEL = 3
/** Most entries of a root's lists and of a page's clock table. */
const MAX_LIST = 100_000

/** The database key of an encrypted database, and its id (the associated data of every box). */
export interface SnapshotSealing {
  db: string
  key: Uint8Array
}

const aadOf = (db: string): Uint8Array => new TextEncoder().encode(`kitedb-snapshot:${db}`)

/** What a snapshot producer signs: a fixed prefix and the root CID's bytes (never a valid block body, which is a map). */
const rootMessage = (root: CID): Uint8Array => {
  const prefix = new TextEncoder().encode('snapshot:')
  const out = new Uint8Array(prefix.length + root.bytes.length)
  out.set(prefix)
  out.set(root.bytes, prefix.length)
  return out
}

/**
 * Sign a snapshot root with the producer's key: the `w` and `s` of a snapshot offer; with `link`
 * (a link-secret database's link signer) also `l`, the link key's signature of the root.
 */
export async function signSnapshotRoot (root: CID, signer: Signer, link?: Signer): Promise<{ w: Uint8Array, s: Uint8Array, l?: Uint8Array }> {
  const message = rootMessage(root)
  return { w: signer.publicKey, s: await signer.sign(message), ...(link !== undefined ? { l: await link.sign(message) } : {}) }
}

/**
 * Whether `s` is `w`'s signature of snapshot root `root`, and with `link` (a link-secret
 * database's link public key) whether `l` is present and the link key's. Never throws.
 */
export async function verifySnapshotRoot (root: CID, w: Uint8Array, s: Uint8Array, link?: Uint8Array, l?: Uint8Array): Promise<boolean> {
  if (!await verifySignature(w, rootMessage(root), s)) return false
  return link === undefined || (l !== undefined && await verifySignature(link, rootMessage(root), l))
}

/**
 * Encode a snapshot node (sealed with `sealing.key` when given) and compute its CID. Rejects with
 * `InvalidBlockError` when it (or a page's content) is over 1 MiB.
 */
export async function encodeSnapshotNode (node: SnapshotNode, sealing?: SnapshotSealing): Promise<EncodedChunk> {
  return await encodeNode(node, sealing)
}

/** `encodeSnapshotNode`, also giving a page's content size before compression. */
async function encodeNode (node: SnapshotNode, sealing?: SnapshotSealing): Promise<EncodedChunk & { content: number }> {
  let wire: Record<string, unknown>
  let content = 0
  if (node.kind === 'root') {
    wire = { v: 1, t: 'root', db: node.db, heads: node.heads, pages: node.pages, covered: node.covered, docs: node.docs, blocks: node.blocks }
  } else if (node.kind === 'covered') {
    wire = { v: 1, t: 'covered', cids: node.cids }
  } else {
    const inner = encodePageContent(node)
    content = inner.byteLength
    if (content > MAX_BLOCK_BYTES) throw new InvalidBlockError(`snapshot page holds ${content} bytes, over the ${MAX_BLOCK_BYTES}-byte limit`)
    wire = { v: 1, t: 'page', z: await gzip(inner) }
  }
  if (sealing !== undefined) wire = { v: 1, box: seal(sealing.key, encode(wire), aadOf(sealing.db)) }
  const bytes = encode(wire)
  if (bytes.byteLength > MAX_BLOCK_BYTES) throw new InvalidBlockError(`snapshot ${node.kind} is ${bytes.byteLength} bytes, over the ${MAX_BLOCK_BYTES}-byte limit`)
  return { cid: await cidOfAsync(bytes), bytes, content }
}

/**
 * Decode and verify a snapshot node that must hash to `expected`. Rejects with `InvalidBlockError`
 * (never anything else) for any invalid input: wrong hash, over 1 MiB (a page's content too), not
 * dag-cbor, bad compression, a page's content not JSON, not a node, bad names, ids, values or
 * stamps, documents out of order.
 */
export async function decodeSnapshotNode (bytes: Uint8Array, expected: CID, sealing?: SnapshotSealing): Promise<SnapshotNode> {
  if (!(bytes instanceof Uint8Array)) throw new InvalidBlockError('snapshot node is not a byte array')
  if (bytes.byteLength > MAX_BLOCK_BYTES) throw new InvalidBlockError('snapshot node is over the size limit')
  if (!(await cidOfAsync(bytes)).equals(expected)) throw new InvalidBlockError(`snapshot node bytes do not hash to ${String(expected)}`)
  let raw = decodeNodeMap(bytes, 'snapshot node')
  if (raw.v !== 1) throw new InvalidBlockError('not a snapshot node')
  if (sealing !== undefined) {
    if (!(raw.box instanceof Uint8Array) || Object.keys(raw).length !== 2) throw new InvalidBlockError('snapshot node is not encrypted, in an encrypted database')
    raw = decodeNodeMap(unseal(sealing.key, raw.box, aadOf(sealing.db)), 'sealed snapshot node')
    if (raw.v !== 1) throw new InvalidBlockError('not a snapshot node')
  } else if (raw.box !== undefined) {
    throw new InvalidBlockError('snapshot node is encrypted and this replica has no key')
  }
  if (raw.t === 'root') {
    if (typeof raw.db !== 'string' || parseCid(raw.db) === undefined) throw new InvalidBlockError('root.db is not a database id')
    return {
      kind: 'root',
      db: raw.db,
      heads: cids(raw.heads, 'root.heads', MAX_HEADS),
      pages: cids(raw.pages, 'root.pages'),
      covered: cids(raw.covered, 'root.covered'),
      docs: count(raw.docs, 'root.docs'),
      blocks: count(raw.blocks, 'root.blocks')
    }
  }
  if (raw.t === 'covered') return { kind: 'covered', cids: cids(raw.cids, 'covered.cids') }
  if (raw.t === 'page') {
    if (!(raw.z instanceof Uint8Array)) throw new InvalidBlockError('page.z is not bytes')
    return decodePage(decodePageContent(await gunzip(raw.z, MAX_BLOCK_BYTES)))
  }
  throw new InvalidBlockError(`unknown snapshot node type ${String(raw.t)}`)
}

/** gzip with the platform's `CompressionStream` (browsers, Node ≥ 18). */
async function gzip (bytes: Uint8Array): Promise<Uint8Array> {
  return await collect(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('gzip')), Infinity)
}

/** Inflate gzip bytes; rejects with `InvalidBlockError` when they are not gzip or inflate to over `max` bytes. */
async function gunzip (bytes: Uint8Array, max: number): Promise<Uint8Array> {
  try {
    return await collect(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip')), max)
  } catch (err) {
    if (err instanceof InvalidBlockError) throw err
    throw new InvalidBlockError('page content is not gzip', { cause: err })
  }
}

/** Read a byte stream to its end into one array; rejects with `InvalidBlockError` past `max` bytes (and cancels the stream). */
async function collect (stream: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array> {
  const reader = stream.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel()
      throw new InvalidBlockError(`page content is over the ${max}-byte limit`)
    }
    parts.push(value)
  }
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

function cids (value: unknown, what: string, max = MAX_LIST): CID[] {
  if (!Array.isArray(value) || value.length > max) throw new InvalidBlockError(`${what} is not a list of at most ${max} CIDs`)
  return value.map(v => {
    const cid = asCid(v)
    if (cid === undefined) throw new InvalidBlockError(`${what} holds a non-CID`)
    return cid
  })
}

function count (value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new InvalidBlockError(`${what} is not a count`)
  return value as number
}

/** A page's stamps as `[k, opIndex]` into its `clocks` table. */
class ClockTable {
  readonly clocks: Array<[number, number, string, string]> = []
  private readonly index = new Map<string, number>()

  ref (s: Stamp): [number, number] {
    const key = `${s[0]},${s[1]},${s[2]},${s[3]}`
    let k = this.index.get(key)
    if (k === undefined) {
      k = this.clocks.length
      this.index.set(key, k)
      this.clocks.push([s[0], s[1], s[2], s[3]])
    }
    return [k, s[4]]
  }
}

/**
 * A document's entry in a page: `[coll, id, v, t]` or `[coll, id, v, t, e]`. `v` holds the values
 * of its registers that have one, as a document would; `t` its distinct stamps as `[k, opIndex]`
 * into the page's `clocks`; a register of `v` is stamped `t[0]` unless `e.f` says otherwise:
 * `e.f[field]` is an index into `t`, or `{s, u?: 1, inc?: [[stampIndex, n]…]}` for an unset
 * register (not in `v`) or a counter; `e.x` indexes the tombstone's stamp. A document written by
 * one op is its values and one stamp: a register costs its value alone to encode and to parse.
 */
function encodeDocEntry (coll: string, id: string, state: DocState, table: ClockTable): unknown[] {
  const t: Array<[number, number]> = []
  const at = (s: Stamp): number => {
    const [k, i] = table.ref(s)
    for (let n = 0; n < t.length; n++) if ((t[n] as [number, number])[0] === k && (t[n] as [number, number])[1] === i) return n
    return t.push([k, i]) - 1
  }
  const v: Record<string, JsonValue> = {}
  const f: Record<string, unknown> = {}
  let exceptions = false
  for (const [field, reg] of Object.entries(state.f)) {
    const n = at(reg.s)
    if (reg.u !== true) v[field] = reg.v as JsonValue
    if (reg.u !== true && reg.inc === undefined) {
      if (n !== 0) { f[field] = n; exceptions = true }
      continue
    }
    const r: Record<string, unknown> = { s: n }
    if (reg.u === true) r.u = 1
    if (reg.inc !== undefined) r.inc = Object.values(reg.inc).map(i => [at(i.s), i.n])
    f[field] = r
    exceptions = true
  }
  const e: Record<string, unknown> = {}
  if (exceptions) e.f = f
  if (state.tomb !== undefined) e.x = at(state.tomb)
  return Object.keys(e).length > 0 ? [coll, id, v, t, e] : [coll, id, v, t]
}

function encodeCollState (state: CollState, table: ClockTable): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (state.created !== undefined) out.created = table.ref(state.created)
  if (state.dropped !== undefined) out.dropped = table.ref(state.dropped)
  return out
}

function encodePage (page: SnapshotPage): Record<string, unknown> {
  const table = new ClockTable()
  const docs = page.docs.map(d => encodeDocEntry(d.coll, d.id, d.state, table))
  const colls = page.colls.map(c => [c.coll, encodeCollState(c.state, table)])
  return { clocks: table.clocks, docs, colls }
}

/**
 * A page's content as bytes: JSON text, because the joiner parses it natively — `JSON.parse` of a
 * page is several times faster than a dag-cbor decoder, on the main thread of a replica that is
 * receiving the rest of the snapshot meanwhile. It holds exactly what dag-cbor would: JSON-like
 * values, with -0 written 0 (as dag-cbor blocks write it). The node's CID commits to the bytes.
 */
function encodePageContent (page: SnapshotPage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(encodePage(page)))
}

/** A page's content from its JSON text; `InvalidBlockError` when it is not UTF-8 JSON of a map. */
function decodePageContent (bytes: Uint8Array): Record<string, unknown> {
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (err) {
    throw new InvalidBlockError('page content is not JSON', { cause: err })
  }
  if (!isPlainObject(raw)) throw new InvalidBlockError('page content is not a map')
  return raw
}

function decodePage (raw: Record<string, unknown>): SnapshotPage {
  if (!Array.isArray(raw.clocks) || raw.clocks.length > MAX_LIST) throw new InvalidBlockError('page.clocks is not a list')
  const clocks = raw.clocks.map(c => {
    if (!Array.isArray(c) || c.length !== 4) throw new InvalidBlockError('page clock is not [t, c, r, cid]')
    const [t, n, r, cid] = c as unknown[]
    if (!Number.isSafeInteger(t) || (t as number) < 0 || !Number.isSafeInteger(n) || (n as number) < 0) throw new InvalidBlockError('page clock time is not a non-negative integer')
    if (typeof r !== 'string' || r.length > 128 || typeof cid !== 'string' || cid.length > 200) throw new InvalidBlockError('page clock replica or CID is not a short string')
    return [t, n, r, cid] as [number, number, string, string]
  })
  // Equal stamps are one array (stamps are never modified): the registers an op wrote share it, as
  // after applyOp, so storing a state clones it once.
  const stamps: Array<Map<number, Stamp> | undefined> = []
  const stamp = (ref: unknown, what: string): Stamp => {
    if (!Array.isArray(ref) || ref.length !== 2) throw new InvalidBlockError(`${what} is not a stamp`)
    const [k, i] = ref as unknown[]
    const clock = Number.isInteger(k) ? clocks[k as number] : undefined
    if (clock === undefined || !Number.isSafeInteger(i) || (i as number) < 0) throw new InvalidBlockError(`${what} is not a stamp`)
    let byOp = stamps[k as number]
    if (byOp === undefined) stamps[k as number] = byOp = new Map()
    let s = byOp.get(i as number)
    if (s === undefined) byOp.set(i as number, s = [clock[0], clock[1], clock[2], clock[3], i as number])
    return s
  }
  if (!Array.isArray(raw.docs) || !Array.isArray(raw.colls)) throw new InvalidBlockError('page.docs or page.colls is not a list')
  let last: DocKey | undefined
  const docs = raw.docs.map((entry, n) => {
    const where = `page.docs[${n}]`
    if (!Array.isArray(entry) || (entry.length !== 4 && entry.length !== 5)) throw new InvalidBlockError(`${where} is not [coll, id, v, t, e?]`)
    const [coll, id] = entry as unknown[]
    if (!isValidCollectionName(coll) || !isValidDocId(id)) throw new InvalidBlockError(`${where} has a bad collection name or id`)
    if (last !== undefined && compareKeys(last, { coll, id }) >= 0) throw new InvalidBlockError(`${where} is out of (collection, id) order`)
    last = { coll, id }
    return { coll, id, state: decodeDocState(entry as unknown[], id, stamp, where) }
  })
  const names = new Set<string>()
  const colls = raw.colls.map((entry, n) => {
    const where = `page.colls[${n}]`
    if (!Array.isArray(entry) || entry.length !== 2) throw new InvalidBlockError(`${where} is not [coll, state]`)
    const [coll, state] = entry as unknown[]
    if (!isValidCollectionName(coll) || names.has(coll)) throw new InvalidBlockError(`${where} has a bad or repeated collection name`)
    names.add(coll)
    if (!isPlainObject(state) || Object.keys(state).some(k => k !== 'created' && k !== 'dropped')) throw new InvalidBlockError(`${where} is not a collection state`)
    const out: CollState = {}
    if (state.created !== undefined) out.created = stamp(state.created, `${where}.created`)
    if (state.dropped !== undefined) out.dropped = stamp(state.dropped, `${where}.dropped`)
    return { coll, state: out }
  })
  return { kind: 'page', docs, colls }
}

/** The state of a page's document entry `[coll, id, v, t, e?]` (see `encodeDocEntry`); `InvalidBlockError` when it is not one. */
function decodeDocState (entry: unknown[], id: string, stamp: (ref: unknown, what: string) => Stamp, where: string): DocState {
  const [, , v, t, e] = entry
  if (!isPlainObject(v) || !Array.isArray(t) || t.length > MAX_LIST) throw new InvalidBlockError(`${where} has no values or stamps`)
  const own = t.map((ref, n) => stamp(ref, `${where}.t[${n}]`))
  const at = (n: unknown, what: string): Stamp => {
    const s = Number.isInteger(n) ? own[n as number] : undefined
    if (s === undefined) throw new InvalidBlockError(`${what} is not a stamp index`)
    return s
  }
  let f: Record<string, unknown> = {}
  const state: DocState = { f: {} }
  if (e !== undefined) {
    if (!isPlainObject(e) || Object.keys(e).some(k => k !== 'f' && k !== 'x')) throw new InvalidBlockError(`${where}: bad extras`)
    if (e.f !== undefined) {
      if (!isPlainObject(e.f)) throw new InvalidBlockError(`${where}: bad registers`)
      f = e.f
    }
    if (e.x !== undefined) state.tomb = at(e.x, `${where}.x`)
  }
  const register = (field: string, value: unknown, hasValue: boolean): Register => {
    const path = `${where}.${field}`
    if (field !== '_id' && !isValidFieldName(field)) throw new InvalidBlockError(`${path}: bad field name`)
    const x = f[field]
    let reg: Register
    if (x === undefined || typeof x === 'number') {
      if (!hasValue) throw new InvalidBlockError(`${path} has no value`)
      reg = { s: at(x ?? 0, path) }
    } else {
      if (!isPlainObject(x)) throw new InvalidBlockError(`${path} is not a register`)
      for (const k in x) if (k !== 's' && k !== 'u' && k !== 'inc') throw new InvalidBlockError(`${path} is not a register`)
      reg = { s: at(x.s, `${path}.s`) }
      if ((x.u !== undefined) === hasValue || (x.u !== undefined && x.u !== 1)) throw new InvalidBlockError(`${path}: a register is either unset or has a value`)
      if (x.u === 1) reg.u = true
      if (x.inc !== undefined) {
        if (!Array.isArray(x.inc) || x.inc.length === 0) throw new InvalidBlockError(`${path}.inc is not a non-empty list`)
        const inc: NonNullable<Register['inc']> = {}
        for (const i of x.inc as unknown[]) {
          if (!Array.isArray(i) || i.length !== 2 || typeof i[1] !== 'number' || !Number.isFinite(i[1])) throw new InvalidBlockError(`${path}.inc holds a bad increment`)
          const s = at(i[0], `${path}.inc`)
          inc[`${s[3]}:${s[4]}`] = { n: i[1], s }
        }
        reg.inc = inc
      }
    }
    if (hasValue) {
      try {
        assertJsonValue(value, path)
      } catch (err) {
        throw new InvalidBlockError((err as Error).message)
      }
      reg.v = value
    }
    if (field === '_id' && (reg.u === true || reg.v !== id)) throw new InvalidBlockError(`${path} does not hold the document's id`)
    return reg
  }
  for (const field of Object.keys(v)) state.f[field] = register(field, v[field], true)
  for (const field of Object.keys(f)) if (!Object.prototype.hasOwnProperty.call(v, field)) state.f[field] = register(field, undefined, false)
  return state
}

function compareKeys (a: DocKey, b: DocKey): number {
  return a.coll < b.coll ? -1 : a.coll > b.coll ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** A snapshot made by this replica: its root, and the bytes of every node by CID string. */
export interface BuiltSnapshot {
  root: CID
  /** root, pages and covered lists */
  nodes: Map<string, Uint8Array>
  /** CID strings of every block at or below its heads */
  covered: Set<string>
  /** heads it was taken at (sorted CID strings) */
  heads: string[]
}

/**
 * Make the snapshot of database `dbId` from a replica's complete state: pages of at most 1 MiB in
 * (collection, id) order, covered lists, and the root. Rejects with `InvalidBlockError` when a
 * single document's state does not fit in a page.
 */
export async function buildSnapshot (dbId: string, source: { heads: string[], docs: SnapshotPage['docs'], colls: SnapshotPage['colls'], blocks: string[] }, key?: Uint8Array): Promise<BuiltSnapshot> {
  const nodes = new Map<string, Uint8Array>()
  const sealing = key !== undefined ? { db: dbId, key } : undefined
  const add = async (node: SnapshotNode): Promise<EncodedChunk & { content: number }> => {
    const encoded = await encodeNode(node, sealing)
    nodes.set(encoded.cid.toString(), encoded.bytes)
    return encoded
  }
  const pages: CID[] = []
  /** content bytes of the last page encoded, per document */
  let perDoc = 0
  const flush = async (docs: SnapshotPage['docs'], colls: SnapshotPage['colls']): Promise<void> => {
    try {
      const { cid, content } = await add({ kind: 'page', docs, colls })
      pages.push(cid)
      if (docs.length > 0) perDoc = content / docs.length
    } catch (err) {
      // Larger documents than the pages before: split the page in two (one document over 1 MiB cannot be).
      if (docs.length < 2) throw err
      const half = docs.length >>> 1
      await flush(docs.slice(0, half), colls)
      await flush(docs.slice(half), [])
    }
  }
  // Pages hold as many documents as fit in PAGE_TARGET_BYTES at the size per document of the
  // page before (the first page: 256 documents).
  let colls = source.colls
  for (let start = 0; start < source.docs.length || colls.length > 0;) {
    const count = perDoc > 0 ? Math.max(1, Math.floor(PAGE_TARGET_BYTES / perDoc)) : 256
    await flush(source.docs.slice(start, start + count), colls)
    colls = []
    start += count
  }
  const covered: CID[] = []
  for (let i = 0; i < source.blocks.length; i += COVERED_PER_NODE) {
    covered.push((await add({ kind: 'covered', cids: source.blocks.slice(i, i + COVERED_PER_NODE).map(c => parseCid(c) as CID) })).cid)
  }
  const { cid: root } = await add({
    kind: 'root',
    db: dbId,
    heads: source.heads.map(h => parseCid(h) as CID),
    pages,
    covered,
    docs: source.docs.length,
    blocks: source.blocks.length
  })
  return { root, nodes, covered: new Set(source.blocks), heads: source.heads }
}

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
 * most a tenth of the time goes to them, however the requests and writes alternate). A request
 * that may not make one is offered the latest one made, which is as correct to join from (the
 * joiner then syncs the blocks after it), or none if there is none.
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
      if (!this.mayBuild(peer)) return this.latest?.root
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
      const wait = this.notBefore - this.opts.now()
      if (wait > 0) { schedule(wait); return }
      if (!this.replica.canWrite) return
      await this.building?.catch(() => undefined) // made for older heads, perhaps
      if (stopped || await this.replica.storage.countBlocks() < this.minBlocks) return
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

  /** Whether a request of `peer` (undefined: this replica's own) may make a new snapshot now. */
  private mayBuild (peer?: string): boolean {
    const now = this.opts.now()
    if (now < this.notBefore) return false
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

/** Progress of fetching a snapshot's nodes. */
export interface SnapshotFetchProgress {
  /** CID string of its root */
  root: string
  /** nodes known so far (root, pages, covered lists, head blocks and their chunks) */
  nodes: number
  /** nodes fetched and verified */
  fetched: number
  /** documents in the snapshot (0 until the root is fetched) */
  documents: number
}

/** How a joiner checks a snapshot beyond its hashes: the database key, and who may have written its head blocks. */
export interface SnapshotTrust {
  /** the database key of an encrypted database (every node and head block must be sealed with it) */
  key?: Uint8Array
  /** whether a head block's writer may write (default: any correctly signed writer) */
  mayWrite?: (writer: Uint8Array) => boolean
  /** the link public key of a link-secret database: every head block must carry the link signature */
  link?: Uint8Array
}

/**
 * Fetch, verify and assemble the snapshot with root `root` of database `dbId`. `fetch` asks a peer
 * for nodes by CID and returns the bytes it got, by CID string, unverified (a subset, possibly
 * empty). Every node is checked against its CID and decoded totally; the whole must be consistent:
 * pages in (collection, id) order adding up to the root's count, covered lists adding up to its
 * count, every head and every head's parent covered, blocks of this database. Throws
 * `InvalidBlockError` for an invalid snapshot, `NetworkError` when the peer stops supplying nodes.
 */
export async function fetchSnapshot (
  dbId: string,
  root: CID,
  fetch: (cids: CID[]) => Promise<Map<string, Uint8Array>>,
  onProgress: (p: SnapshotFetchProgress) => void,
  trust: SnapshotTrust = {}
): Promise<SnapshotContent> {
  const sealing = trust.key !== undefined ? { db: dbId, key: trust.key } : undefined
  const opened = trust.key !== undefined ? { key: trust.key } : {}
  const openedHead = trust.link !== undefined ? { ...opened, link: trust.link } : opened
  const progress: SnapshotFetchProgress = { root: root.toString(), nodes: 1, fetched: 0, documents: 0 }
  /** nodes still wanted, by CID string, with what to do with their bytes */
  const want = new Map<string, { cid: CID, take: (bytes: Uint8Array) => void | Promise<void> }>()
  // FETCH_PARALLEL requests of FETCH_NODES nodes each in flight. A worker asks for its next batch
  // as soon as an answer arrives, and the answer's nodes are verified and decoded meanwhile
  // (`taking`): the peer sends while this replica decodes.
  const inFlight = new Set<string>()
  const taking: Array<Promise<void>> = []
  const failures: unknown[] = []
  let stop = false
  const worker = async (): Promise<void> => {
    while (!stop) {
      const batch = [...want.values()].filter(w => !inFlight.has(w.cid.toString())).slice(0, FETCH_NODES)
      if (batch.length === 0) return
      // A batch stays in flight until answered, so no other worker asks for it meanwhile.
      for (const w of batch) inFlight.add(w.cid.toString())
      let supplied = 0
      try {
        const answer = await fetch(batch.map(w => w.cid))
        for (const w of batch) {
          const bytes = answer.get(w.cid.toString())
          if (bytes === undefined) continue
          want.delete(w.cid.toString())
          supplied++
          taking.push((async () => { await w.take(bytes) })().then(() => {
            progress.fetched++
            onProgress({ ...progress })
          }, err => {
            stop = true
            failures.push(err)
          }))
        }
      } finally {
        for (const w of batch) inFlight.delete(w.cid.toString())
      }
      if (supplied === 0) throw new NetworkError(`the peer stopped supplying snapshot ${root.toString()} (${want.size} nodes left)`)
    }
  }
  const got = async (): Promise<void> => {
    // A head block taken names its chunks: they are wanted next.
    while (want.size > 0 || taking.length > 0) {
      const results = await Promise.allSettled(Array.from({ length: FETCH_PARALLEL }, async () => {
        try {
          await worker()
        } catch (err) {
          stop = true
          throw err
        }
      }))
      await Promise.all(taking.splice(0))
      for (const r of results) if (r.status === 'rejected') failures.push(r.reason)
      // An invalid node outweighs a network failure: the snapshot is refused rather than retried.
      const failure = failures.find(err => err instanceof InvalidBlockError) ?? failures[0]
      if (failure !== undefined) throw failure
    }
  }
  let rootNode: SnapshotRoot | undefined
  want.set(root.toString(), {
    cid: root,
    take: async bytes => {
      const node = await decodeSnapshotNode(bytes, root, sealing)
      if (node.kind !== 'root') throw new InvalidBlockError(`snapshot ${root.toString()} is not a root`)
      if (node.db !== dbId) throw new InvalidBlockError(`snapshot belongs to database ${node.db}, not ${dbId}`)
      rootNode = node
    }
  })
  await got()
  const r = rootNode as SnapshotRoot
  const named = [...r.pages, ...r.covered, ...r.heads].map(c => c.toString())
  if (r.heads.length === 0 || new Set(named).size !== named.length) throw new InvalidBlockError('snapshot root has no heads, or names a node twice')
  progress.documents = r.docs
  const pages: Array<SnapshotPage | undefined> = r.pages.map(() => undefined)
  const covered: Array<CID[] | undefined> = r.covered.map(() => undefined)
  const heads: Array<EncodedBlock | undefined> = r.heads.map(() => undefined)
  r.pages.forEach((cid, i) => {
    want.set(cid.toString(), {
      cid,
      take: async bytes => {
        const node = await decodeSnapshotNode(bytes, cid, sealing)
        if (node.kind !== 'page') throw new InvalidBlockError(`snapshot page ${cid.toString()} is a ${node.kind}`)
        pages[i] = node
      }
    })
  })
  r.covered.forEach((cid, i) => {
    want.set(cid.toString(), {
      cid,
      take: async bytes => {
        const node = await decodeSnapshotNode(bytes, cid, sealing)
        if (node.kind !== 'covered') throw new InvalidBlockError(`snapshot covered list ${cid.toString()} is a ${node.kind}`)
        covered[i] = node.cids
      }
    })
  })
  r.heads.forEach((cid, i) => {
    want.set(cid.toString(), {
      cid,
      take: async bytes => {
        const head = await decodeBlock(bytes, cid, openedHead)
        if (trust.mayWrite !== undefined && !trust.mayWrite(head.block.writer)) throw new InvalidBlockError(`snapshot head ${cid.toString()} is by a writer not on the write list`)
        if (head.block.db !== dbId) throw new InvalidBlockError(`snapshot head ${cid.toString()} belongs to database ${head.block.db}`)
        heads[i] = head
        const chunks: EncodedChunk[] = []
        if (head.block.chunks !== undefined) head.chunks = chunks
        head.block.chunks?.forEach((chunk, n) => {
          progress.nodes++
          want.set(chunk.toString(), {
            cid: chunk,
            take: chunkBytes => {
              decodeChunk(chunkBytes, chunk, dbId, opened)
              chunks[n] = { cid: chunk, bytes: chunkBytes }
            }
          })
        })
      }
    })
  })
  progress.nodes += want.size
  onProgress({ ...progress })
  await got()

  // The whole must add up.
  const docs = (pages as SnapshotPage[]).flatMap(p => p.docs)
  if (docs.length !== r.docs) throw new InvalidBlockError(`snapshot pages hold ${docs.length} documents, its root says ${r.docs}`)
  for (let i = 1; i < docs.length; i++) {
    if (compareKeys(docs[i - 1] as DocKey, docs[i] as DocKey) >= 0) throw new InvalidBlockError('snapshot pages are out of (collection, id) order')
  }
  const colls = (pages as SnapshotPage[]).flatMap(p => p.colls)
  if (new Set(colls.map(c => c.coll)).size !== colls.length) throw new InvalidBlockError('snapshot repeats a collection')
  const coveredCids = (covered as CID[][]).flat().map(c => c.toString())
  const coveredSet = new Set(coveredCids)
  if (coveredCids.length !== r.blocks || coveredSet.size !== coveredCids.length) throw new InvalidBlockError(`snapshot covers ${coveredSet.size} distinct blocks, its root says ${r.blocks}`)
  for (const head of heads as EncodedBlock[]) {
    for (const c of [head.cid, ...head.block.parents]) {
      if (!coveredSet.has(c.toString())) throw new InvalidBlockError(`snapshot does not cover ${c.toString()}, a head or a head's parent`)
    }
  }
  return { root: root.toString(), docs, colls, covered: coveredCids, heads: heads as EncodedBlock[] }
}
