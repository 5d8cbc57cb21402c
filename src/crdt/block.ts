/**
 * Blocks: the immutable nodes of a database's Merkle-DAG, each carrying ops (`ops.ts`).
 *
 * A block is a signed dag-cbor node (see `encodeBlock` for the format); its CID (CIDv1, dag-cbor,
 * sha2-256) is its identity. `decodeBlock` is total: any byte string either yields a valid,
 * correctly signed `Block` or throws `InvalidBlockError` with the reason.
 */
import { InvalidBlockError } from '../errors.js'
import { asCid, cidOf, cidOfAsync, decode, encode, type CID } from './codec.js'
import { type Hlc, MAX_HLC_COUNTER, MAX_HLC_TIME } from './hlc.js'
import { type JsonValue, isPlainObject } from './json.js'
import { type Op, type PutOp, validateOp } from './ops.js'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, type Signer, seal, unseal, verifySignature } from './seal.js'

/** Largest encoded block (or chunk) accepted, in bytes (1 MiB). */
export const MAX_BLOCK_BYTES = 1024 * 1024
/**
 * Most parents a block may name (64; a protocol constant: every replica must refuse the same
 * blocks). A block's parents are the heads its writer had: one per branch no block it had seen
 * merged, so about one per writer that wrote concurrently since the last merge. 64 such branches
 * is far beyond a collaborative database's concurrency; a replica with more heads names the
 * first 64 (sorted) and merges the rest with its next writes (`Replica.commit`), so the bound
 * costs no correctness. Each parent a receiver lacks becomes a fetch, so this also bounds what one
 * block can make every replica look for (a block naming 1,023 parents that do not exist once left
 * 1,023 fetches outstanding on every replica).
 */
export const MAX_PARENTS = 64
/** Ops beyond about this many encoded bytes move into chunks (512 KiB). */
export const CHUNK_TARGET_BYTES = 512 * 1024
/** Most chunks one block may name (so one call writes at most about 32 MiB). */
export const MAX_CHUNKS = 64

/**
 * A decoded block. Its ops are `ops` followed by the ops of each chunk in `chunks`, in order: a
 * large call keeps being one block (applied atomically everywhere) while no encoded node exceeds
 * `MAX_BLOCK_BYTES`. A block with chunks is applied only once all its chunks are present.
 */
export interface Block {
  /** format version, always 1 */
  v: 1
  /** CID string of the database manifest this block belongs to (stops replay into another database) */
  db: string
  /** CIDs of the heads this block was written on top of */
  parents: CID[]
  hlc: Hlc
  /** the ops held in the block itself (all of them, when it has no chunks) */
  ops: Op[]
  /** CIDs of chunks holding the rest of the ops (`{v: 1, ops}` or `{v: 1, box}` dag-cbor nodes) */
  chunks?: CID[]
  /** the writer's 32-byte Ed25519 public key (set by `encodeBlock` from its signer) */
  writer?: Uint8Array
}

/** An encoded chunk of a block's ops. */
export interface EncodedChunk {
  cid: CID
  bytes: Uint8Array
}

/** A block together with its encoding and CID (and, for a large block, its encoded chunks). */
export interface EncodedBlock {
  cid: CID
  bytes: Uint8Array
  /** the block; `writer` is always set */
  block: Block & { writer: Uint8Array }
  /** encoded chunks, when the block has them and they are at hand */
  chunks?: EncodedChunk[]
}

/** How a block is signed and, for an encrypted database, sealed. */
export interface SealOptions {
  /** the writer's key; its public key goes into the block */
  signer: Signer
  /** the database key: ops are encrypted with it (XChaCha20-Poly1305) */
  key?: Uint8Array
  /** the caller has already checked every value is JSON-like (local writes, checked by the API): only the structure is checked */
  valuesChecked?: boolean
  /** the link signer of a link-secret database (see `link.ts`): the block then carries its signature `l` too */
  link?: Signer
}

/** How a received block is opened. */
export interface OpenOptions {
  /** the database key, for an encrypted database: every block must then be encrypted with it */
  key?: Uint8Array
  /**
   * the link public key of a link-secret database (the manifest's `enc.link`): every block must
   * then carry a valid link signature `l` (see `link.ts`)
   */
  link?: Uint8Array
}

/**
 * Encode, sign and (with `key`) encrypt a block whose ops are all in `block.ops` (`chunks` must be
 * absent), and compute its CID.
 *
 * Wire format (dag-cbor): the block node is `{v: 1, body, w, s}` where `body` is the dag-cbor
 * encoding of `{db, parents, hlc: [t, c, r], ops | box, chunks?}`, `w` the writer's Ed25519
 * public key and `s` its signature of `body` (see `seal.ts`); in a link-secret database also `l`,
 * the link key's signature of `body` (`{v: 1, body, w, s, l}`, see `link.ts`). `box` replaces `ops` in an
 * encrypted database: the sealed dag-cbor of the ops, bound to the database id. Ops beyond
 * `CHUNK_TARGET_BYTES` go into chunk nodes `{v: 1, ops | box}`, named by CID in the body.
 * Signing the body bytes as they are sent means verifying never re-encodes anything.
 *
 * Throws `InvalidBlockError` if the block is not valid or too large (one op over
 * `MAX_BLOCK_BYTES`, or more than `MAX_CHUNKS` chunks).
 */
export async function encodeBlock (block: Block, options: SealOptions): Promise<EncodedBlock> {
  validateBlock(block, options.valuesChecked === true)
  const aad = aadOf(block.db)
  const opsField = (group: Op[]): Record<string, unknown> => options.key === undefined
    ? { ops: group }
    : { box: seal(options.key, encodeBytes(group, 'ops'), aad) }
  const ops = block.ops.map(stripEmpty)
  const groups = splitOps(ops)
  // Hashed by the platform (`cidOfAsync`), not on the main thread: a 10,000-document insert's
  // 3.5 MB of chunks took 72 ms to hash in JavaScript in Chromium.
  const chunks = await Promise.all(groups.slice(1).map(async group => await nodeOf(encodeBytes({ v: 1, ...opsField(group) }, 'chunk'))))
  if (chunks.length > MAX_CHUNKS) throw new InvalidBlockError(`one call writes about ${chunks.length * CHUNK_TARGET_BYTES} bytes, over the ${MAX_CHUNKS * CHUNK_TARGET_BYTES}-byte limit`)
  const body: Record<string, unknown> = {
    db: block.db,
    parents: block.parents,
    hlc: [block.hlc.t, block.hlc.c, block.hlc.r],
    ...opsField(groups[0])
  }
  if (chunks.length > 0) body.chunks = chunks.map(c => c.cid)
  const bodyBytes = encodeBytes(body, 'block')
  const writer = options.signer.publicKey
  const signature = await options.signer.sign(bodyBytes)
  const envelope: Record<string, unknown> = { v: 1, body: bodyBytes, w: writer, s: signature }
  if (options.link !== undefined) envelope.l = await options.link.sign(bodyBytes)
  const { bytes, cid } = await nodeOf(encodeBytes(envelope, 'block'))
  const out: EncodedBlock = { cid, bytes, block: { ...block, ops: block.ops, writer } }
  delete out.block.chunks
  if (chunks.length > 0) {
    out.block.chunks = chunks.map(c => c.cid)
    out.chunks = chunks
  }
  return out
}

/** Associated data of every box of a database: its id, so a box cannot move to another database. */
function aadOf (db: string): Uint8Array {
  return new TextEncoder().encode(`kitedb:${db}`)
}

/** Encode `value` as dag-cbor, checking the size limit. Throws `InvalidBlockError`. */
function encodeBytes (value: unknown, what: string): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = encode(value)
  } catch (err) {
    throw new InvalidBlockError(`cannot encode ${what}`, { cause: err })
  }
  if (bytes.byteLength > MAX_BLOCK_BYTES) throw new InvalidBlockError(`${what} is ${bytes.byteLength} bytes, over the ${MAX_BLOCK_BYTES}-byte limit (a document over 1 MiB?)`)
  return bytes
}

/** Encoded bytes with their CID, hashed by the platform. */
async function nodeOf (bytes: Uint8Array): Promise<EncodedChunk> {
  return { cid: await cidOfAsync(bytes), bytes }
}

/**
 * Split ops into groups of about `CHUNK_TARGET_BYTES` encoded (estimated from their JSON length,
 * which dag-cbor does not exceed for these values): the first group stays in the block.
 */
function splitOps (ops: Op[]): Op[][] {
  const groups: Op[][] = [[]]
  let size = 0
  for (const op of ops) {
    const estimate = JSON.stringify(op).length + 16
    if (size + estimate > CHUNK_TARGET_BYTES && groups[groups.length - 1].length > 0) {
      groups.push([])
      size = 0
    }
    groups[groups.length - 1].push(op)
    size += estimate
  }
  return groups
}

/** Decode dag-cbor that must be a plain map (a node of ours); throws `InvalidBlockError` naming `what`. */
export function decodeNodeMap (bytes: Uint8Array, what: string): Record<string, unknown> {
  let raw: unknown
  try {
    raw = decode(bytes)
  } catch (err) {
    throw new InvalidBlockError(`${what} is not dag-cbor`, { cause: err })
  }
  if (!isPlainObject(raw)) throw new InvalidBlockError(`${what} is not a map`)
  return raw
}

/** The op list in `ops`, or sealed in `box`, of a block body or chunk, checked against `key`. */
function readOps (raw: Record<string, unknown>, db: string, options: OpenOptions, what: string): unknown {
  if (options.key === undefined) {
    if (raw.box !== undefined) throw new InvalidBlockError(`${what} is encrypted and this replica has no key`)
    return raw.ops
  }
  if (raw.ops !== undefined || !(raw.box instanceof Uint8Array)) throw new InvalidBlockError(`${what} is not encrypted, in an encrypted database`)
  const plain = unseal(options.key, raw.box, aadOf(db))
  let ops: unknown
  try {
    ops = decode(plain)
  } catch (err) {
    throw new InvalidBlockError(`${what}'s sealed ops are not dag-cbor`, { cause: err })
  }
  return ops
}

/**
 * Decode and verify a chunk of a block of database `db` that must hash to `expected`; returns
 * its ops. With `key`, the chunk must be encrypted under it. Throws `InvalidBlockError` for any
 * invalid input.
 */
export function decodeChunk (bytes: Uint8Array, expected: CID, db: string, options: OpenOptions = {}): Op[] {
  if (!(bytes instanceof Uint8Array)) throw new InvalidBlockError('chunk is not a byte array')
  if (bytes.byteLength > MAX_BLOCK_BYTES) throw new InvalidBlockError('chunk is over the size limit')
  if (!cidOf(bytes).equals(expected)) throw new InvalidBlockError(`chunk bytes do not hash to ${String(expected)}`)
  const raw = decodeNodeMap(bytes, 'chunk')
  if (raw.v !== 1 || Object.keys(raw).length !== 2) throw new InvalidBlockError('not a chunk')
  const list = readOps(raw, db, options, 'chunk')
  if (!Array.isArray(list) || list.length === 0) throw new InvalidBlockError('not a chunk')
  const ops = list.map(normaliseOp)
  ops.forEach((op, i) => { validateOp(op, i) })
  return ops
}

/** The full op list of a block whose chunks' ops are given (in the block's chunk order). */
export function assembleOps (block: Block, chunkOps: Op[][]): Op[] {
  return chunkOps.length === 0 ? block.ops : [...block.ops, ...chunkOps.flat()]
}

/** What `readBlockHeader` returns: a block's links and metadata, without its ops. */
export interface BlockHeader {
  db: string
  parents: CID[]
  hlc: Hlc
  chunks: CID[]
  writer: Uint8Array
  /** the signed body bytes and the signature (not verified by `readBlockHeader`) */
  body: Uint8Array
  signature: Uint8Array
  /** the link signature of `body`, in a link-secret database (not verified by `readBlockHeader`) */
  link?: Uint8Array
  /** the body's raw map (ops or box still inside) */
  raw: Record<string, unknown>
}

/**
 * Read a block's envelope and body: its database, parents, HLC, chunks and writer, WITHOUT
 * checking the signature or the ops. Enough to walk the DAG over blocks already verified (stored
 * ones); use `decodeBlock` for anything received. Throws `InvalidBlockError` for malformed bytes.
 */
export function readBlockHeader (bytes: Uint8Array): BlockHeader {
  if (!(bytes instanceof Uint8Array)) throw new InvalidBlockError('not a byte array')
  if (bytes.byteLength > MAX_BLOCK_BYTES) throw new InvalidBlockError(`block is ${bytes.byteLength} bytes, over the ${MAX_BLOCK_BYTES}-byte limit`)
  const envelope = decodeNodeMap(bytes, 'block')
  if (envelope.v !== 1) throw new InvalidBlockError(`unknown version ${String(envelope.v)}`)
  const { body, w, s, l } = envelope
  if (Object.keys(envelope).length !== (l === undefined ? 4 : 5) || !(body instanceof Uint8Array) || !(w instanceof Uint8Array) || !(s instanceof Uint8Array)) {
    throw new InvalidBlockError('not a signed block {v, body, w, s, l?}')
  }
  if (w.length !== PUBLIC_KEY_BYTES || s.length !== SIGNATURE_BYTES) throw new InvalidBlockError('writer key or signature has the wrong length')
  if (l !== undefined && (!(l instanceof Uint8Array) || l.length !== SIGNATURE_BYTES)) throw new InvalidBlockError('link signature has the wrong length')
  const raw = decodeNodeMap(body, 'block body')
  const hlc = raw.hlc
  if (!Array.isArray(hlc) || hlc.length !== 3) throw new InvalidBlockError('hlc is not [t, c, r]')
  if (typeof raw.db !== 'string') throw new InvalidBlockError('db is not a CID string')
  if (!Array.isArray(raw.parents)) throw new InvalidBlockError('parents is not a list of CIDs')
  if (raw.parents.length > MAX_PARENTS) throw new InvalidBlockError(`${raw.parents.length} parents, over ${MAX_PARENTS}`)
  const parents = raw.parents.map(p => {
    const cid = asCid(p)
    if (cid === undefined) throw new InvalidBlockError('parents holds a non-CID')
    return cid
  })
  let chunks: CID[] = []
  if (raw.chunks !== undefined) {
    if (!Array.isArray(raw.chunks) || raw.chunks.length === 0 || raw.chunks.length > MAX_CHUNKS) throw new InvalidBlockError('chunks is not a list of 1–64 CIDs')
    chunks = raw.chunks.map(c => {
      const chunk = asCid(c)
      if (chunk === undefined) throw new InvalidBlockError('chunks holds a non-CID')
      return chunk
    })
  }
  const header: BlockHeader = { db: raw.db, parents, hlc: { t: hlc[0] as number, c: hlc[1] as number, r: hlc[2] as string }, chunks, writer: w, body, signature: s, raw }
  if (l instanceof Uint8Array) header.link = l
  return header
}

/**
 * Check the signatures of a block header: the writer's, and with `link` (the manifest's link
 * public key) the link signature, which must then be present. Throws `InvalidBlockError`.
 */
export async function verifyHeaderSignatures (header: BlockHeader, link?: Uint8Array): Promise<void> {
  if (!await verifySignature(header.writer, header.body, header.signature)) throw new InvalidBlockError('the signature does not match the writer key')
  if (link === undefined) return
  if (header.link === undefined) throw new InvalidBlockError('no link signature, in a link-secret database (made without the link?)')
  if (!await verifySignature(link, header.body, header.link)) throw new InvalidBlockError('the link signature does not match the database\'s link key (made without the link?)')
}

/**
 * Decode and verify block bytes: size, CID (when `expected` is given, the bytes must hash to
 * it), the writer's signature (and with `options.link` the link signature), structure and every op. With `options.key`, the block must be
 * encrypted under that key, and is decrypted; without it, an encrypted block is refused. (Whether
 * the writer may write is the replica's decision: see `Replica.receive`.)
 * Throws `InvalidBlockError` (never anything else) for any invalid input.
 */
export async function decodeBlock (bytes: Uint8Array, expected?: CID, options: OpenOptions = {}): Promise<EncodedBlock> {
  if (!(bytes instanceof Uint8Array)) throw new InvalidBlockError('not a byte array')
  if (bytes.byteLength > MAX_BLOCK_BYTES) throw new InvalidBlockError(`block is ${bytes.byteLength} bytes, over the ${MAX_BLOCK_BYTES}-byte limit`)
  const cid = cidOf(bytes)
  if (expected != null && !cid.equals(expected)) throw new InvalidBlockError(`bytes hash to ${cid.toString()}, not ${String(expected)}`)
  const header = readBlockHeader(bytes)
  await verifyHeaderSignatures(header, options.link)
  const list = readOps(header.raw, header.db, options, 'block')
  const block: Block & { writer: Uint8Array } = {
    v: 1,
    db: header.db,
    parents: header.parents,
    hlc: header.hlc,
    ops: Array.isArray(list) ? list.map(normaliseOp) : (undefined as unknown as Op[]),
    writer: header.writer
  }
  if (header.chunks.length > 0) block.chunks = header.chunks
  validateBlock(block)
  return { cid, bytes, block }
}

function normaliseOp (raw: unknown): Op {
  if (!isPlainObject(raw)) return raw as Op
  if (raw.op === 'del') return { op: 'del', coll: raw.coll as string, id: raw.id as string }
  if (raw.op === 'coll' || raw.op === 'drop') return { op: raw.op, coll: raw.coll as string }
  const op: PutOp = { op: raw.op as 'put', coll: raw.coll as string, id: raw.id as string }
  if (raw.set !== undefined) op.set = raw.set as Record<string, JsonValue>
  if (raw.unset !== undefined) op.unset = raw.unset as string[]
  if (raw.inc !== undefined) op.inc = raw.inc as Record<string, number>
  return op
}

function stripEmpty (op: Op): Op {
  if (op.op === 'del') return { op: 'del', coll: op.coll, id: op.id }
  if (op.op === 'coll' || op.op === 'drop') return { op: op.op, coll: op.coll }
  const out: PutOp = { op: 'put', coll: op.coll, id: op.id }
  if (op.set != null && Object.keys(op.set).length > 0) out.set = op.set
  if (op.unset != null && op.unset.length > 0) out.unset = op.unset
  if (op.inc != null && Object.keys(op.inc).length > 0) out.inc = op.inc
  return out
}

function validateBlock (block: Block, valuesChecked = false): void {
  if (typeof block.db !== 'string' || block.db.length === 0 || block.db.length > 200) throw new InvalidBlockError('db is not a CID string')
  if (!Array.isArray(block.parents) || block.parents.some(p => p == null)) throw new InvalidBlockError('parents is not a list of CIDs')
  if (block.parents.length > MAX_PARENTS) throw new InvalidBlockError(`more than ${MAX_PARENTS} parents`)
  const { t, c, r } = block.hlc
  if (!Number.isSafeInteger(t) || t < 0 || t > MAX_HLC_TIME) throw new InvalidBlockError(`hlc.t is not an integer in [0, ${MAX_HLC_TIME}]`)
  if (!Number.isSafeInteger(c) || c < 0 || c > MAX_HLC_COUNTER) throw new InvalidBlockError(`hlc.c is not an integer in [0, ${MAX_HLC_COUNTER}]`)
  if (typeof r !== 'string' || r.length === 0 || r.length > 128) throw new InvalidBlockError('hlc.r is not a replica id')
  if (!Array.isArray(block.ops) || block.ops.length === 0) throw new InvalidBlockError('ops is not a non-empty list')
  if (block.chunks !== undefined && (!Array.isArray(block.chunks) || block.chunks.some(c => c == null))) throw new InvalidBlockError('chunks is not a list of CIDs')
  block.ops.forEach((op, i) => { validateOp(op, i, valuesChecked) })
}
