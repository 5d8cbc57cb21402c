/**
 * Content addressing: dag-cbor encoding and CIDv1 (dag-cbor codec 0x71, sha2-256 multihash).
 * sha2-256 comes from @noble/hashes, which is synchronous, so computing a CID never awaits.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from '@noble/hashes/sha2.js'
import { sha256 as nativeSha256 } from 'multiformats/hashes/sha2'

/** Multicodec code of SHA2-256. */
const SHA2_256 = 0x12

export { CID }

/** Encode a value as dag-cbor bytes. Throws `TypeError` for values dag-cbor cannot hold (undefined, NaN, ±Infinity). */
export function encode (value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

/** Decode dag-cbor bytes. Throws (an Error from @ipld/dag-cbor) on malformed input. */
export function decode (bytes: Uint8Array): unknown {
  return dagCbor.decode(bytes)
}

/** The CIDv1 (dag-cbor, sha2-256) of already-encoded dag-cbor bytes. */
export function cidOf (bytes: Uint8Array): CID {
  return CID.create(1, dagCbor.code, Digest.create(SHA2_256, sha256(bytes)))
}

/**
 * `cidOf`, hashed by the platform (WebCrypto's `crypto.subtle` in browsers, `node:crypto` in Node,
 * through multiformats): about 10× faster than `cidOf` on large inputs (a 200 KB snapshot page),
 * and off the main thread in browsers; `cidOf` where the platform has no `crypto.subtle` (a page
 * that is not a secure context). For hashing in bulk: blocks written, and what arrives from the network.
 */
export async function cidOfAsync (bytes: Uint8Array): Promise<CID> {
  // A page served over plain http from a LAN address is not a secure context: no `crypto.subtle`.
  if (globalThis.crypto?.subtle === undefined) return cidOf(bytes)
  return CID.create(1, dagCbor.code, await nativeSha256.digest(bytes))
}

/** Parse a CID string; returns `undefined` (never throws) when it is not a valid CID. */
export function parseCid (text: unknown): CID | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > 200) return undefined
  try {
    return CID.parse(text)
  } catch {
    return undefined
  }
}

/** Whether `value` is a CID object (as dag-cbor decodes links). */
export function asCid (value: unknown): CID | undefined {
  return CID.asCID(value) ?? undefined
}
