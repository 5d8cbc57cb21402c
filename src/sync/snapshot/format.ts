/**
 * Snapshot nodes (docs/snapshots.md): the CRDT states of a database at a set of heads H, as
 * content-addressed dag-cbor nodes, so a new replica joins from them instead of replaying history.
 *
 * - **root** `{v: 1, t: 'root', db, heads, pages, covered, docs, blocks}` names everything else;
 *   its CID identifies the snapshot.
 * - **page** `{v: 1, t: 'page', z: gzip(content)}`, the content (`page.ts`) holding document
 *   states and collection states (first page only). Compressed, because field names repeat in
 *   every document.
 * - **covered** `{v: 1, t: 'covered', cids}`: the CIDs of every block at or below H.
 *
 * Every node, and a page's content before compression, is at most `MAX_BLOCK_BYTES` (1 MiB). All
 * snapshot node encoding and decoding is here, behind one entry point each (`encodeSnapshotNode`,
 * `decodeSnapshotNode`). `decodeSnapshotNode` is total: any bytes give a node or reject with
 * `InvalidBlockError`.
 *
 * Trust: in an encrypted database every node is `{v: 1, box}`, the node sealed with the database
 * key (XChaCha20-Poly1305, bound to the database id), so only key holders can read or make one. A
 * snapshot is offered with its producer's public key and signature of the root CID
 * (`signSnapshotRoot`); a joiner takes it only from a producer the manifest lets write, since the
 * root's CID commits to every node.
 */
import { InvalidBlockError } from '../../errors.js'
import {
  type CID, type EncodedChunk, type Signer, MAX_BLOCK_BYTES, asCid, cidOfAsync, decodeNodeMap, encode, parseCid, seal, unseal, verifySignature
} from '../../crdt/index.js'
import { MAX_HEADS } from '../wire.js'
import { MAX_LIST, type SnapshotPage, decodePage, encodePageContent } from './page.js'

export { type SnapshotPage } from './page.js'

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

/** A list of covered block CIDs. */
export interface CoveredList {
  kind: 'covered'
  cids: CID[]
}

/** Any snapshot node. */
export type SnapshotNode = SnapshotRoot | SnapshotPage | CoveredList

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
  return await encodeSizedNode(node, sealing)
}

/** `encodeSnapshotNode`, also giving a page's content size before compression (`buildSnapshot` sizes pages by it). */
export async function encodeSizedNode (node: SnapshotNode, sealing?: SnapshotSealing): Promise<EncodedChunk & { content: number }> {
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
    return decodePage(await gunzip(raw.z, MAX_BLOCK_BYTES))
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
