/**
 * What a keeper checks of a block or chunk it is handed, without the database key
 * (docs/keepers.md, "What a keeper checks"): it never decrypts, so of a sealed block it checks
 * everything but the ops — size, CID, envelope and body structure, that it names this database,
 * its HLC's bounds, the writer's signature, that the manifest lets the writer write, and in a
 * link-secret database the link signature. A block of a plain database is checked in full, as any
 * replica checks it (`decodeBlock`). A chunk is checked for size, CID and form (its ops sealed, or
 * valid when plain); it is kept only with a block that names it (see `KeepStore.putBlocks`).
 */
import { InvalidBlockError } from '../errors.js'
import {
  type CID, type Manifest, MAX_BLOCK_BYTES, cidOfAsync, decodeBlock, decodeChunk, decodeNodeMap, formatPublicKey, isValidHlcTime, linkKeyOf,
  mayWrite, readBlockHeader, verifyHeaderSignatures
} from '../crdt/index.js'

/** A checked block or chunk, ready to store. */
export interface CheckedNode {
  cid: CID
  bytes: Uint8Array
  kind: 'block' | 'chunk'
  /** a block's parents and chunks (CID strings) */
  parents: string[]
  chunks: string[]
}

/**
 * Check `bytes`, handed to keep database `db` described by `manifest`. Resolves with what it is,
 * or rejects with `InvalidBlockError` (never anything else) giving the reason.
 */
export async function checkKeptNode (bytes: Uint8Array, db: string, manifest: Manifest): Promise<CheckedNode> {
  if (!(bytes instanceof Uint8Array)) throw new InvalidBlockError('not a byte array')
  if (bytes.byteLength > MAX_BLOCK_BYTES) throw new InvalidBlockError(`${bytes.byteLength} bytes, over the ${MAX_BLOCK_BYTES}-byte limit`)
  const cid = await cidOfAsync(bytes)
  const raw = decodeNodeMap(bytes, 'node')
  const encrypted = manifest.enc !== undefined
  if (raw.body === undefined) {
    // A chunk `{v: 1, ops | box}`.
    if (encrypted) {
      if (raw.v !== 1 || Object.keys(raw).length !== 2 || !(raw.box instanceof Uint8Array)) throw new InvalidBlockError('not a sealed chunk {v: 1, box}')
    } else {
      decodeChunk(bytes, cid, db)
    }
    return { cid, bytes, kind: 'chunk', parents: [], chunks: [] }
  }
  const header = readBlockHeader(bytes)
  if (header.db !== db) throw new InvalidBlockError(`block belongs to database ${header.db}, not ${db}`)
  if (!isValidHlcTime(header.hlc.t, header.hlc.c) || typeof header.hlc.r !== 'string' || header.hlc.r.length === 0 || header.hlc.r.length > 128) {
    throw new InvalidBlockError('hlc is out of bounds')
  }
  if (encrypted) {
    // Sealed: the ops are a box only key holders open. Everything around it is checked.
    if (header.raw.ops !== undefined || !(header.raw.box instanceof Uint8Array)) throw new InvalidBlockError('not encrypted, in an encrypted database')
    await verifyHeaderSignatures(header, linkKeyOf(manifest))
  } else {
    await decodeBlock(bytes, cid)
  }
  if (!mayWrite(manifest, header.writer)) throw new InvalidBlockError(`writer ${formatPublicKey(header.writer)} is not on the write list`)
  return { cid, bytes, kind: 'block', parents: header.parents.map(p => p.toString()), chunks: header.chunks.map(c => c.toString()) }
}
