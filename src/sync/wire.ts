/**
 * The replication wire protocol (docs/design.md, "Replication"): messages on the database topic and
 * the blocks request/response. Every decoder is total: bytes either decode to a valid message or
 * throw `InvalidMessageError`.
 */
import { InvalidMessageError } from '../errors.js'
import { asCid, encode, type CID } from '../crdt/index.js'
import { bytesList, dbId, decodeMap } from './message.js'

/** Protocol id of the missing-block fetch stream. */
export const BLOCKS_PROTOCOL = '/kitedb/1/blocks'
/** Protocol id of the snapshot offer stream (docs/snapshots.md). */
export const SNAPSHOT_PROTOCOL = '/kitedb/1/snapshot'
/** Topic prefix of a database's gossip topic: `/kitedb/1/<manifest-cid>`. */
export const TOPIC_PREFIX = '/kitedb/1/'
/** Largest message accepted on a topic or stream, in bytes (4 MiB). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024
/** Most heads in one message. */
export const MAX_HEADS = 1024
/** Most CIDs in one fetch request. */
export const MAX_REQUEST_CIDS = 1000
/** Blocks up to this size are published inline with the heads (64 KiB). */
export const INLINE_BLOCK_BYTES = 64 * 1024

/** The gossip topic of a database, from its manifest CID string. */
export function topicOf (dbId: string): string {
  return TOPIC_PREFIX + dbId
}

/** Gossip message: the sender's heads, and new blocks inline when small. */
export interface HeadsMessage {
  heads: CID[]
  blocks: Uint8Array[]
}

/**
 * Fetch request: CIDs of blocks of database `db` that the sender lacks, and the sender's heads
 * (`have`). The responder sends the requested blocks, then their chunks and ancestors (breadth
 * first, stopping at `have` and at the message budget), so a long chain costs one round trip.
 */
export interface BlocksRequest {
  db: string
  cids: CID[]
  have: CID[]
  /**
   * the most bytes the response may hold (blocks and their framing): set by a requester on a
   * connection that may carry only so much (a relayed circuit); absent: up to `MAX_MESSAGE_BYTES`.
   * A block that does not fit on its own is left out.
   */
  max?: number
}

/** Fetch response: the requested blocks the responder has (a subset, possibly empty). */
export interface BlocksResponse {
  blocks: Uint8Array[]
}

/**
 * Snapshot request: the sender would join database `db` from a snapshot, and has `blocks` blocks
 * (stored plus covered) already; the responder offers one only when the sender lacks most of its history.
 */
export interface SnapshotRequest {
  db: string
  blocks: number
}

/** Snapshot response: the root CID of the responder's latest snapshot, or none. */
export interface SnapshotResponse {
  root?: CID
  /** the producer's Ed25519 public key and its signature of the root (see `signSnapshotRoot`); present with `root` */
  w?: Uint8Array
  s?: Uint8Array
  /** in a link-secret database: the link key's signature of the root (see `signSnapshotRoot`) */
  l?: Uint8Array
}

/** Encode a gossip heads message. */
export function encodeHeadsMessage (m: HeadsMessage): Uint8Array {
  return encode(m.blocks.length > 0 ? { v: 1, heads: m.heads, blocks: m.blocks } : { v: 1, heads: m.heads })
}

/** Decode a gossip heads message. Throws `InvalidMessageError` for any invalid input. */
export function decodeHeadsMessage (bytes: Uint8Array): HeadsMessage {
  const raw = decodeMap(bytes, MAX_MESSAGE_BYTES)
  const heads = cidList(raw.heads, MAX_HEADS, 'heads')
  const blocks = raw.blocks === undefined ? [] : bytesList(raw.blocks, 'blocks')
  return { heads, blocks }
}

/** Largest presence state on the wire (its sealed or plain bytes), bytes. */
export const MAX_PRESENCE_BYTES = 4096

/**
 * Presence message, on the database topic beside heads messages: a peer's ephemeral state (its
 * bytes: sealed with the database key for an encrypted database, JSON text otherwise), or `null`
 * when it leaves. Never stored.
 */
export interface PresenceMessage {
  state: Uint8Array | null
}

/** Encode a presence message. */
export function encodePresenceMessage (m: PresenceMessage): Uint8Array {
  return encode({ v: 1, presence: m.state })
}

/** Whether `bytes` are a presence message (rather than heads): cheap enough for a topic validator. */
export function isPresenceMessage (bytes: Uint8Array): boolean {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength > MAX_PRESENCE_BYTES + 64) return false
  try { return 'presence' in decodeMap(bytes, MAX_MESSAGE_BYTES) } catch { return false }
}

/** Decode a presence message. Throws `InvalidMessageError` for any invalid input. */
export function decodePresenceMessage (bytes: Uint8Array): PresenceMessage {
  if (bytes.byteLength > MAX_PRESENCE_BYTES + 64) throw new InvalidMessageError('presence message over its size limit')
  const raw = decodeMap(bytes, MAX_MESSAGE_BYTES)
  if (raw.presence === null) return { state: null }
  if (!(raw.presence instanceof Uint8Array) || raw.presence.byteLength > MAX_PRESENCE_BYTES) throw new InvalidMessageError('presence state is not bytes within the limit')
  return { state: raw.presence }
}

/** Encode a blocks request. */
export function encodeBlocksRequest (m: BlocksRequest): Uint8Array {
  return encode({ v: 1, db: m.db, cids: m.cids, have: m.have, ...(m.max !== undefined ? { max: m.max } : {}) })
}

/** Decode a blocks request. Throws `InvalidMessageError` for any invalid input. */
export function decodeBlocksRequest (bytes: Uint8Array): BlocksRequest {
  const raw = decodeMap(bytes, MAX_MESSAGE_BYTES)
  const out: BlocksRequest = { db: dbId(raw.db), cids: cidList(raw.cids, MAX_REQUEST_CIDS, 'cids'), have: raw.have === undefined ? [] : cidList(raw.have, MAX_HEADS, 'have') }
  if (raw.max !== undefined) {
    if (typeof raw.max !== 'number' || !Number.isSafeInteger(raw.max) || raw.max < 0) throw new InvalidMessageError('max is not a byte count')
    out.max = raw.max
  }
  return out
}

/** Encode a blocks response. */
export function encodeBlocksResponse (m: BlocksResponse): Uint8Array {
  return encode({ v: 1, blocks: m.blocks })
}

/** Decode a blocks response. Throws `InvalidMessageError` for any invalid input. */
export function decodeBlocksResponse (bytes: Uint8Array): BlocksResponse {
  return { blocks: bytesList(decodeMap(bytes, MAX_MESSAGE_BYTES).blocks, 'blocks') }
}

/** Encode a snapshot request. */
export function encodeSnapshotRequest (m: SnapshotRequest): Uint8Array {
  return encode({ v: 1, db: m.db, blocks: m.blocks })
}

/** Decode a snapshot request. Throws `InvalidMessageError` for any invalid input. */
export function decodeSnapshotRequest (bytes: Uint8Array): SnapshotRequest {
  const raw = decodeMap(bytes, MAX_MESSAGE_BYTES)
  if (!Number.isSafeInteger(raw.blocks) || (raw.blocks as number) < 0) throw new InvalidMessageError('blocks is not a count')
  return { db: dbId(raw.db), blocks: raw.blocks as number }
}

/** Encode a snapshot response. */
export function encodeSnapshotResponse (m: SnapshotResponse): Uint8Array {
  if (m.root === undefined) return encode({ v: 1 })
  if (m.w === undefined || m.s === undefined) throw new InvalidMessageError('a snapshot offer needs the producer key and signature')
  return encode({ v: 1, root: m.root, w: m.w, s: m.s, ...(m.l !== undefined ? { l: m.l } : {}) })
}

/** Decode a snapshot response. Throws `InvalidMessageError` for any invalid input. */
export function decodeSnapshotResponse (bytes: Uint8Array): SnapshotResponse {
  const raw = decodeMap(bytes, MAX_MESSAGE_BYTES)
  if (raw.root === undefined) return {}
  const root = asCid(raw.root)
  if (root === undefined) throw new InvalidMessageError('root is not a CID')
  if (!(raw.w instanceof Uint8Array) || raw.w.length !== 32 || !(raw.s instanceof Uint8Array) || raw.s.length !== 64) {
    throw new InvalidMessageError('a snapshot offer needs the producer key w (32 bytes) and signature s (64 bytes)')
  }
  if (raw.l !== undefined && (!(raw.l instanceof Uint8Array) || raw.l.length !== 64)) throw new InvalidMessageError('a snapshot offer\'s link signature l is not 64 bytes')
  return { root, w: raw.w, s: raw.s, ...(raw.l instanceof Uint8Array ? { l: raw.l } : {}) }
}

function cidList (value: unknown, max: number, what: string): CID[] {
  if (!Array.isArray(value)) throw new InvalidMessageError(`${what} is not a list`)
  if (value.length > max) throw new InvalidMessageError(`${what} has ${value.length} entries, over ${max}`)
  return value.map(v => {
    const cid = asCid(v)
    if (cid === undefined) throw new InvalidMessageError(`${what} holds a non-CID`)
    return cid
  })
}
