/**
 * The link key of a link-secret database (docs/keepers.md, "Link-secret signatures"): an Ed25519
 * key derived from the database key, whose public half the manifest holds (`enc.link`).
 *
 * In an encrypted database that everyone holding its link may write (`write: ['*']`), the writer
 * signature alone proves nothing: any key may sign, so someone who learnt only the address (a
 * relay, a keeper, a peer on the topic) could sign junk blocks that every key holder would
 * receive, store and forward until decryption failed. Every block of such a database therefore
 * carries a second signature by the link key (`l` in the block envelope), and every snapshot
 * offer one of its root: whoever checks it — replicas, relays' validators and keepers, none of
 * which needs the database key for that — refuses what someone without the link made.
 *
 * Derivation: HKDF-SHA256 (RFC 5869) of the 256-bit database key, salt `kitedb-link-key`, info
 * `v1`, 32 bytes, used as the Ed25519 seed (RFC 8032). HKDF's output reveals nothing about its
 * input key, so the public key in the manifest does not weaken the encryption.
 */
import { hkdf } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { type Signer, signerFromSeed } from './seal.js'

const SALT = new TextEncoder().encode('kitedb-link-key')
const INFO = new TextEncoder().encode('v1')

/** Derived link signers, by database key (hex): derivation costs a scalar multiplication. Bounded. */
const cache = new Map<string, Signer>()

/**
 * The link signer of a database key: deterministic, so every holder of the key derives the same
 * key pair. Throws `ValidationError` for a key that is not 32 bytes (see `signerFromSeed`).
 */
export function linkSigner (key: Uint8Array): Signer {
  const id = Array.from(key, b => b.toString(16).padStart(2, '0')).join('')
  let signer = cache.get(id)
  if (signer === undefined) {
    if (cache.size >= 64) cache.clear()
    signer = signerFromSeed(hkdf(sha256, key, SALT, INFO, 32))
    cache.set(id, signer)
  }
  return signer
}
