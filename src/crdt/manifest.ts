/**
 * Database manifests and addresses.
 *
 * A manifest is the immutable description of a database, encoded as dag-cbor. Its CID is the
 * database's identity; the address is `/kite/<manifest-cid>`.
 */
import { InvalidAddressError, InvalidBlockError } from '../errors.js'
import { cidOf, decode, encode, parseCid, type CID } from './codec.js'
import { isPlainObject } from './json.js'

/** The immutable description of a database. */
export interface Manifest {
  v: 1
  /** human-readable name given at creation */
  name: string
  /** creation time, ms since the Unix epoch */
  created: number
  /** random hex, so two databases created with the same name get different addresses */
  nonce: string
}

/** Address prefix: an address is `/kite/<manifest-cid>`. */
export const ADDRESS_PREFIX = '/kite/'

/** Encode a manifest; returns its bytes, CID and address. */
export function encodeManifest (manifest: Manifest): { bytes: Uint8Array, cid: CID, address: string } {
  const bytes = encode(manifest)
  const cid = cidOf(bytes)
  return { bytes, cid, address: ADDRESS_PREFIX + cid.toString() }
}

/** Decode manifest bytes, checking they hash to `expected`. Throws `InvalidBlockError`. */
export function decodeManifest (bytes: Uint8Array, expected: CID): Manifest {
  if (!cidOf(bytes).equals(expected)) throw new InvalidBlockError('manifest bytes do not match the address')
  let raw: unknown
  try {
    raw = decode(bytes)
  } catch (err) {
    throw new InvalidBlockError('manifest is not dag-cbor', { cause: err })
  }
  if (!isPlainObject(raw) || raw.v !== 1 || typeof raw.name !== 'string' || !Number.isSafeInteger(raw.created) || typeof raw.nonce !== 'string') {
    throw new InvalidBlockError('not a KiteDB manifest')
  }
  return { v: 1, name: raw.name, created: raw.created as number, nonce: raw.nonce }
}

/**
 * Parse `/kite/<cid>` (or a bare CID) into the manifest CID. Throws `InvalidAddressError`.
 */
export function parseAddress (address: unknown): CID {
  if (typeof address !== 'string') throw new InvalidAddressError('a database address must be a string like /kite/<cid>')
  const text = address.startsWith(ADDRESS_PREFIX) ? address.slice(ADDRESS_PREFIX.length) : address
  const cid = parseCid(text)
  if (cid === undefined) throw new InvalidAddressError(`"${address}" is not a KiteDB address (/kite/<cid>)`)
  return cid
}

/** Canonical address string of a manifest CID. */
export function formatAddress (cid: CID): string {
  return ADDRESS_PREFIX + cid.toString()
}
