/**
 * The keep protocol (`/kitedb/1/keep`, docs/keepers.md "Protocol"): how a replica asks a keeper to
 * keep a database and hands it blocks and snapshots. One dag-cbor request and one response per
 * stream, as the other KiteDB protocols. Every decoder is total: bytes either decode to a valid
 * message or throw `InvalidMessageError`.
 *
 * Requests `{v: 1, t, db, …}`:
 * - `state`: what the keeper holds of `db`: its heads, a page of its missing parents (after
 *   `after`), its snapshot's root and block count; changes nothing.
 * - `keep`: keep `db` from now on (the requester counts it against its quota); carries the
 *   manifest when the requester has it, else the keeper fetches it from the requester.
 * - `has`: which of `cids` (at most `MAX_REQUEST_CIDS`) the keeper stores.
 * - `put`: store `blocks` (blocks and chunks; chunks before the blocks naming them). Answered
 *   with the CIDs stored (now or before), each only after the write committed, and those refused
 *   with why.
 * - `nodes`: store the nodes of snapshot `root` (before `snapshot` names them).
 * - `snapshot`: the writer's signed snapshot offer `{root, w, s, l?}`, the nodes it consists of,
 *   its heads (stored blocks) and the blocks it covers: once its nodes are all handed over
 *   (`nodes`), kept in place of the previous one. Answered like `put`: `stored` names the nodes
 *   the keeper has already.
 *
 * Responses: `{v: 1, …}` with the request's answer, or `{v: 1, error: {code, message}}` when the
 * keeper refuses the whole request (see `KeepErrorCode`).
 */
import { InvalidMessageError } from '../errors.js'
import { asCid, encode, isPlainObject, type CID } from '../crdt/index.js'
import { bytesList, dbId, decodeMap } from './message.js'
import { MAX_HEADS, MAX_MESSAGE_BYTES, MAX_REQUEST_CIDS } from './wire.js'

/** Protocol id of the keep stream; a keeper announces it over identify. */
export const KEEP_PROTOCOL = '/kitedb/1/keep'
/** Most missing CIDs in one `state` answer. */
export const MAX_MISSING_PAGE = 1024
/** Most nodes one kept snapshot may consist of (a node is up to 1 MiB: 4 GiB, beyond any quota). */
export const MAX_SNAPSHOT_NODES = 4096

/** Most CIDs one `put` answer names (a 4 MiB request holds fewer blocks than this). */
const MAX_ACKS = 65_536

/**
 * Why a keeper refused a request: `full` (a quota: the database's, the requesting peer's, or the
 * keeper's in all), `busy` (too many requests at once: try later), `not-kept` (a `put` for a
 * database not asked to be kept), `manifest-unavailable` (the manifest could not be had, so
 * nothing can be checked), `refused` (invalid input).
 */
export type KeepErrorCode = 'full' | 'busy' | 'not-kept' | 'manifest-unavailable' | 'refused'
const ERROR_CODES: readonly string[] = ['full', 'busy', 'not-kept', 'manifest-unavailable', 'refused']

/** A keep request. */
export type KeepRequest =
  | { t: 'state', db: string, after?: CID }
  | { t: 'keep', db: string, manifest?: Uint8Array }
  | { t: 'has', db: string, cids: CID[] }
  | { t: 'put', db: string, blocks: Uint8Array[] }
  | { t: 'nodes', db: string, root: CID, nodes: Uint8Array[] }
  | { t: 'snapshot', db: string, offer: KeptSnapshotOffer }

/** A writer's signed snapshot as a keeper keeps and offers it. */
export interface KeptSnapshotOffer {
  root: CID
  /** the producer's Ed25519 key and its signature of the root (`signSnapshotRoot`) */
  w: Uint8Array
  s: Uint8Array
  /** the link signature of the root, in a link-secret database */
  l?: Uint8Array
  /** its head blocks (stored at the keeper) */
  heads: CID[]
  /** every node of it: root, pages, covered lists */
  nodes: CID[]
  /** how many blocks it covers (as its root says) */
  blocks: number
}

/** A keeper's refusal of a whole request. */
export interface KeepError { code: KeepErrorCode, message: string }

/** What the keeper holds of a database (`state`). */
export interface KeepState {
  /** whether it keeps the database */
  kept: boolean
  /** its heads (at most `MAX_HEADS`) */
  heads: CID[]
  /** a page of the parents its blocks name that it does not store, after the request's `after` */
  missing: CID[]
  /** whether more missing CIDs follow the page */
  more: boolean
  /** blocks and chunks it stores */
  blocks: number
  /** the root of its snapshot, if it has one */
  snapshot?: CID
}

/** Answer of `put` and `nodes`: CIDs stored (now, or before), and those refused with why. */
export interface PutResult {
  stored: CID[]
  refused: Array<{ cid: CID, reason: string }>
}

/** Any keep response. */
export type KeepResponse =
  | { error: KeepError }
  | { state: KeepState }
  | { ok: true }
  | { has: boolean[] }
  | { put: PutResult }

/** Encode a keep request. */
export function encodeKeepRequest (m: KeepRequest): Uint8Array {
  switch (m.t) {
    case 'state': return encode({ v: 1, t: m.t, db: m.db, ...(m.after !== undefined ? { after: m.after } : {}) })
    case 'keep': return encode({ v: 1, t: m.t, db: m.db, ...(m.manifest !== undefined ? { manifest: m.manifest } : {}) })
    case 'has': return encode({ v: 1, t: m.t, db: m.db, cids: m.cids })
    case 'put': return encode({ v: 1, t: m.t, db: m.db, blocks: m.blocks })
    case 'nodes': return encode({ v: 1, t: m.t, db: m.db, root: m.root, nodes: m.nodes })
    case 'snapshot': {
      const o = m.offer
      return encode({ v: 1, t: m.t, db: m.db, root: o.root, w: o.w, s: o.s, ...(o.l !== undefined ? { l: o.l } : {}), heads: o.heads, nodes: o.nodes, blocks: o.blocks })
    }
  }
}

/** Decode a keep request. Throws `InvalidMessageError` for any invalid input. */
export function decodeKeepRequest (bytes: Uint8Array): KeepRequest {
  const raw = decodeMap(bytes, MAX_MESSAGE_BYTES)
  const db = dbId(raw.db)
  switch (raw.t) {
    case 'state': {
      if (raw.after === undefined) return { t: 'state', db }
      const after = asCid(raw.after)
      if (after === undefined) throw new InvalidMessageError('after is not a CID')
      return { t: 'state', db, after }
    }
    case 'keep':
      if (raw.manifest !== undefined && !(raw.manifest instanceof Uint8Array)) throw new InvalidMessageError('manifest is not bytes')
      return raw.manifest instanceof Uint8Array ? { t: 'keep', db, manifest: raw.manifest } : { t: 'keep', db }
    case 'has': return { t: 'has', db, cids: cidList(raw.cids, MAX_REQUEST_CIDS, 'cids') }
    case 'put': return { t: 'put', db, blocks: bytesList(raw.blocks, 'blocks') }
    case 'nodes': return { t: 'nodes', db, root: cid(raw.root, 'root'), nodes: bytesList(raw.nodes, 'nodes') }
    case 'snapshot': {
      if (!(raw.w instanceof Uint8Array) || raw.w.length !== 32 || !(raw.s instanceof Uint8Array) || raw.s.length !== 64) {
        throw new InvalidMessageError('a snapshot needs the producer key w (32 bytes) and signature s (64 bytes)')
      }
      if (raw.l !== undefined && (!(raw.l instanceof Uint8Array) || raw.l.length !== 64)) throw new InvalidMessageError('the link signature l is not 64 bytes')
      if (!Number.isSafeInteger(raw.blocks) || (raw.blocks as number) < 0) throw new InvalidMessageError('blocks is not a count')
      const offer: KeptSnapshotOffer = {
        root: cid(raw.root, 'root'),
        w: raw.w,
        s: raw.s,
        heads: cidList(raw.heads, MAX_HEADS, 'heads'),
        nodes: cidList(raw.nodes, MAX_SNAPSHOT_NODES, 'nodes'),
        blocks: raw.blocks as number
      }
      if (raw.l instanceof Uint8Array) offer.l = raw.l
      if (offer.heads.length === 0 || offer.nodes.length === 0) throw new InvalidMessageError('a snapshot names at least one head and one node')
      return { t: 'snapshot', db, offer }
    }
    default: throw new InvalidMessageError(`unknown keep request ${String(raw.t)}`)
  }
}

/** Encode a keep response. */
export function encodeKeepResponse (m: KeepResponse): Uint8Array {
  if ('error' in m) return encode({ v: 1, error: { code: m.error.code, message: m.error.message.slice(0, 1000) } })
  if ('ok' in m) return encode({ v: 1, ok: true })
  if ('has' in m) return encode({ v: 1, has: m.has })
  if ('put' in m) return encode({ v: 1, stored: m.put.stored, refused: m.put.refused.map(r => [r.cid, r.reason.slice(0, 500)]) })
  const s = m.state
  return encode({ v: 1, kept: s.kept, heads: s.heads, missing: s.missing, more: s.more, blocks: s.blocks, ...(s.snapshot !== undefined ? { snapshot: s.snapshot } : {}) })
}

/**
 * Decode the response to a request of type `t`. Throws `InvalidMessageError` for any invalid
 * input (a refusal `{error}` decodes: it is a valid answer to any request).
 */
export function decodeKeepResponse (bytes: Uint8Array, t: KeepRequest['t']): KeepResponse {
  const raw = decodeMap(bytes, MAX_MESSAGE_BYTES)
  if (raw.error !== undefined) {
    const e = raw.error
    if (!isPlainObject(e) || typeof e.code !== 'string' || !ERROR_CODES.includes(e.code) || typeof e.message !== 'string' || e.message.length > 1000) {
      throw new InvalidMessageError('error is not {code, message}')
    }
    return { error: { code: e.code as KeepErrorCode, message: e.message } }
  }
  switch (t) {
    case 'keep':
      if (raw.ok !== true) throw new InvalidMessageError('not an ok')
      return { ok: true }
    case 'has':
      if (!Array.isArray(raw.has) || raw.has.length > MAX_REQUEST_CIDS || !raw.has.every(h => typeof h === 'boolean')) throw new InvalidMessageError('has is not a list of booleans')
      return { has: raw.has }
    case 'put':
    case 'nodes':
    case 'snapshot': {
      const stored = cidList(raw.stored, MAX_ACKS, 'stored')
      if (!Array.isArray(raw.refused) || raw.refused.length > MAX_ACKS) throw new InvalidMessageError('refused is not a list')
      const refused = raw.refused.map(r => {
        if (!Array.isArray(r) || r.length !== 2 || typeof r[1] !== 'string' || r[1].length > 500) throw new InvalidMessageError('refused holds a bad entry')
        return { cid: cid(r[0], 'refused'), reason: r[1] }
      })
      return { put: { stored, refused } }
    }
    case 'state': {
      if (typeof raw.kept !== 'boolean' || typeof raw.more !== 'boolean' || !Number.isSafeInteger(raw.blocks) || (raw.blocks as number) < 0) {
        throw new InvalidMessageError('not a keep state')
      }
      const state: KeepState = {
        kept: raw.kept,
        heads: cidList(raw.heads, MAX_HEADS, 'heads'),
        missing: cidList(raw.missing, MAX_MISSING_PAGE, 'missing'),
        more: raw.more,
        blocks: raw.blocks as number
      }
      if (raw.snapshot !== undefined) state.snapshot = cid(raw.snapshot, 'snapshot')
      return { state }
    }
  }
}

function cid (value: unknown, what: string): CID {
  const c = asCid(value)
  if (c === undefined) throw new InvalidMessageError(`${what} is not a CID`)
  return c
}

function cidList (value: unknown, max: number, what: string): CID[] {
  if (!Array.isArray(value)) throw new InvalidMessageError(`${what} is not a list`)
  if (value.length > max) throw new InvalidMessageError(`${what} has ${value.length} entries, over ${max}`)
  return value.map(v => cid(v, `${what} entry`))
}
