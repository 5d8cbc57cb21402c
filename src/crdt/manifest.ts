/**
 * Database manifests and addresses.
 *
 * A manifest is the immutable description of a database, encoded as dag-cbor. Its CID is the
 * database's identity; the address is `/kite/<manifest-cid>`.
 */
import { AccessError, InvalidAddressError, InvalidBlockError, ValidationError } from '../errors.js'
import { cidOf, cidOfAsync, decode, encode, parseCid, type CID } from './codec.js'
import { isPlainObject } from './json.js'
import { equalBytes, formatPublicKey, keyCheck, parsePublicKey, seal, unseal } from './seal.js'
import { linkSigner } from './link.js'

/** The immutable description of a database. */
export interface Manifest {
  v: 1
  /** human-readable name given at creation (empty for an encrypted database: see `enc.name`) */
  name: string
  /** creation time, ms since the Unix epoch */
  created: number
  /** random hex, so two databases created with the same name get different addresses */
  nonce: string
  /**
   * Who may write (OrbitDB's immutable access controller): writers' Ed25519 public keys as
   * `z…` base58btc text, or `['*']` for anyone who can read. Fixed for the life of the database.
   */
  write: string[]
  /** present when the database is encrypted */
  enc?: {
    /** `keyCheck(key)`: tells a replica at once whether it holds the right key */
    check: Uint8Array
    /** the name, sealed with the key (nobody without the key learns it) */
    name: Uint8Array
    /**
     * the link public key (`linkSigner(key).publicKey`), in a database everyone holding its link
     * may write (`write: ['*']`): every block must carry its signature, so what someone with the
     * address alone signs is refused without the key (see `link.ts`). Absent in manifests made
     * before it existed, whose blocks are checked as they always were.
     */
    link?: Uint8Array
  }
}

/** Most writers a write list may name. */
export const MAX_WRITERS = 1024

/** Check a write list; returns it. Throws `ValidationError`. */
export function checkWriteList (write: unknown): string[] {
  if (!Array.isArray(write) || write.length === 0 || write.length > MAX_WRITERS) throw new ValidationError(`access.write must list 1–${MAX_WRITERS} public keys, or be ['*']`)
  if (write.includes('*')) {
    if (write.length !== 1) throw new ValidationError("access.write is either ['*'] or a list of public keys, not both")
    return ['*']
  }
  for (const k of write) parsePublicKey(k)
  return [...new Set(write as string[])].sort()
}

/** Whether `manifest` lets the holder of `publicKey` write. */
export function mayWrite (manifest: Manifest, publicKey: Uint8Array): boolean {
  return manifest.write[0] === '*' || manifest.write.includes(formatPublicKey(publicKey))
}

/** Associated data of a sealed manifest name. */
function nameAad (created: number, nonce: string): Uint8Array {
  return new TextEncoder().encode(`kitedb-name:${created}:${nonce}`)
}

/**
 * A new manifest. With `key`, the database is encrypted: the manifest holds a check of the key
 * and the name sealed with it, and, when everyone holding the link may write (`['*']`), the link
 * public key. Throws `ValidationError` for a bad write list.
 */
export function createManifest (name: string, write: string[], key?: Uint8Array, created = Date.now()): Manifest {
  const nonce = Array.from(globalThis.crypto.getRandomValues(new Uint8Array(8)), b => b.toString(16).padStart(2, '0')).join('')
  const manifest: Manifest = { v: 1, name: key === undefined ? name : '', created, nonce, write: checkWriteList(write) }
  if (key !== undefined) {
    manifest.enc = { check: keyCheck(key), name: seal(key, new TextEncoder().encode(name), nameAad(created, nonce)) }
    if (manifest.write[0] === '*') manifest.enc.link = linkSigner(key).publicKey
  }
  return manifest
}

/** The link public key of a link-secret database (see `Manifest.enc.link`), or undefined. */
export function linkKeyOf (manifest: Manifest | null | undefined): Uint8Array | undefined {
  return manifest?.enc?.link
}

/**
 * The name of a database: the manifest's, or, for an encrypted one, its sealed name opened with
 * `key`. Throws `AccessError` when the database is encrypted and `key` is missing or wrong.
 */
export function manifestName (manifest: Manifest, key?: Uint8Array): string {
  if (manifest.enc === undefined) return manifest.name
  checkKey(manifest, key)
  return new TextDecoder().decode(unseal(key as Uint8Array, manifest.enc.name, nameAad(manifest.created, manifest.nonce)))
}

/**
 * Check that `key` fits the manifest: none for a plain database, the right one for an encrypted
 * database. Throws `AccessError` otherwise.
 */
export function checkKey (manifest: Manifest, key: Uint8Array | undefined): void {
  if (manifest.enc === undefined) {
    if (key !== undefined) throw new AccessError('this database is not encrypted, but a key was given')
    return
  }
  if (key === undefined) throw new AccessError('this database is encrypted: open it with the key from its share link')
  if (!equalBytes(keyCheck(key), manifest.enc.check)) throw new AccessError('wrong key for this database')
  if (manifest.enc.link !== undefined && !equalBytes(linkSigner(key).publicKey, manifest.enc.link)) throw new AccessError('the manifest\'s link key does not derive from this key')
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
  if (!cidOf(bytes).equals(expected)) throw new InvalidBlockError(MISMATCH)
  return manifestOf(bytes)
}

/**
 * `decodeManifest`, hashed by the platform (`cidOfAsync`): off the main thread in browsers. Opening
 * a database checks its stored manifest so; hashed in JavaScript, in a reloaded page (code not yet
 * compiled), the check held the open's critical path for about 0.4 ms. Rejects with `InvalidBlockError`.
 */
export async function decodeManifestAsync (bytes: Uint8Array, expected: CID): Promise<Manifest> {
  // decoded while the platform hashes; a mismatch is reported before any decoding error
  const hashed = cidOfAsync(bytes)
  let manifest: Manifest | undefined
  let invalid: unknown
  try { manifest = manifestOf(bytes) } catch (err) { invalid = err }
  if (!(await hashed).equals(expected)) throw new InvalidBlockError(MISMATCH)
  if (manifest === undefined) throw invalid
  return manifest
}

const MISMATCH = 'manifest bytes do not match the address'

/** The manifest in `bytes` (already checked against its CID). Throws `InvalidBlockError`. */
function manifestOf (bytes: Uint8Array): Manifest {
  let raw: unknown
  try {
    raw = decode(bytes)
  } catch (err) {
    throw new InvalidBlockError('manifest is not dag-cbor', { cause: err })
  }
  if (!isPlainObject(raw) || raw.v !== 1 || typeof raw.name !== 'string' || !Number.isSafeInteger(raw.created) || typeof raw.nonce !== 'string') {
    throw new InvalidBlockError('not a KiteDB manifest')
  }
  let write: string[]
  try {
    write = checkWriteList(raw.write)
  } catch (err) {
    throw new InvalidBlockError(`manifest write list: ${(err as Error).message}`)
  }
  const manifest: Manifest = { v: 1, name: raw.name, created: raw.created as number, nonce: raw.nonce, write }
  if (raw.enc !== undefined) {
    const enc = raw.enc
    if (!isPlainObject(enc) || !(enc.check instanceof Uint8Array) || enc.check.length !== 16 || !(enc.name instanceof Uint8Array)) throw new InvalidBlockError('manifest enc is not {check, name, link?}')
    manifest.enc = { check: enc.check, name: enc.name }
    if (enc.link !== undefined) {
      if (!(enc.link instanceof Uint8Array) || enc.link.length !== 32) throw new InvalidBlockError('manifest enc.link is not a 32-byte public key')
      if (write[0] !== '*') throw new InvalidBlockError('manifest enc.link is for databases everyone with the link may write')
      manifest.enc.link = enc.link
    }
  }
  return manifest
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
