/**
 * Signatures and encryption of blocks (pure: no I/O).
 *
 * - Signatures: Ed25519 (RFC 8032) over `"kitedb-block:" || body`, the domain prefix keeping a
 *   block signature from ever being valid for another protocol that uses the same key (the key
 *   is also the device's libp2p identity, which signs gossipsub and noise payloads with their own
 *   prefixes). WebCrypto's Ed25519 is used where the platform has it (about 8× faster than
 *   JavaScript), @noble/curves otherwise; both give identical, deterministic signatures. On the
 *   platform path no curve arithmetic runs in JavaScript: @noble/curves' first multiplication by
 *   the base point builds tables of it (about 0.3 MB for a signature or public key, 0.2 MB more
 *   for a verification) that stay for the page's life.
 * - Encryption: XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) from @noble/ciphers with a random
 *   24-byte nonce per box; the database id is the associated data, so a box cannot be replayed
 *   into another database.
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import { base58btc } from 'multiformats/bases/base58'
import { base64url } from 'multiformats/bases/base64'
import { InvalidBlockError, ValidationError } from '../errors.js'

/** Bytes of an Ed25519 public key. */
export const PUBLIC_KEY_BYTES = 32
/** Bytes of an Ed25519 signature. */
export const SIGNATURE_BYTES = 64
/** Bytes of a database encryption key (256 bits). */
export const KEY_BYTES = 32
/** Bytes of an XChaCha20 nonce. */
const NONCE_BYTES = 24
/** Bytes of a Poly1305 tag. */
const TAG_BYTES = 16

const SIGNING_DOMAIN = new TextEncoder().encode('kitedb-block:')
const KEY_CHECK_DOMAIN = new TextEncoder().encode('kitedb-key-check:')

/** Signs blocks with one Ed25519 key. */
export interface Signer {
  /** the 32-byte Ed25519 public key */
  readonly publicKey: Uint8Array
  /** Sign `body` (the domain prefix is added here); resolves with a 64-byte signature. */
  sign (body: Uint8Array): Promise<Uint8Array>
}

interface SubtleLike {
  importKey: (format: string, data: Uint8Array, algorithm: string, extractable: boolean, usages: string[]) => Promise<unknown>
  exportKey: (format: 'jwk', key: unknown) => Promise<{ x?: unknown }>
  sign: (algorithm: string, key: unknown, data: Uint8Array) => Promise<ArrayBuffer>
  verify: (algorithm: string, key: unknown, signature: Uint8Array, data: Uint8Array) => Promise<boolean>
}

/**
 * The Ed25519 signature (RFC 8032) of `SIGNING_DOMAIN` under the all-zero seed, as @noble/curves
 * computes it (test/crdt/seal.test.ts checks that it does): the known answer WebCrypto must give.
 * Written out rather than computed, so trusting the platform runs no curve arithmetic.
 */
export const PROBE_SIGNATURE = hexToBytes(
  'ad037c1c7c75347915d42ec2f48e736b0e425772aa734e99190b3abb5415b85b' +
  'c6903387d6eefcab7fc671184fe2c6e58e9f4710fae431bdd1affb830523f803')

/** WebCrypto's subtle API when it supports Ed25519 (probed once), else undefined. */
let subtleProbe: Promise<SubtleLike | undefined> | undefined
async function subtleEd25519 (): Promise<SubtleLike | undefined> {
  subtleProbe ??= (async () => {
    const subtle = (globalThis.crypto as { subtle?: SubtleLike } | undefined)?.subtle
    if (subtle === undefined) return undefined
    try {
      const seed = new Uint8Array(32)
      const key = await subtle.importKey('pkcs8', pkcs8(seed), 'Ed25519', false, ['sign'])
      const sig = new Uint8Array(await subtle.sign('Ed25519', key, SIGNING_DOMAIN))
      // Only trust the platform if it agrees with RFC 8032 (as @noble/curves implements it).
      return equalBytes(sig, PROBE_SIGNATURE) ? subtle : undefined
    } catch {
      return undefined
    }
  })()
  return await subtleProbe
}

/** Use @noble/curves even where WebCrypto has Ed25519 (tests of the fallback path). */
export function disablePlatformEd25519 (disabled: boolean): void {
  subtleProbe = disabled ? Promise.resolve(undefined) : undefined
}

/** PKCS#8 DER of an Ed25519 private key seed (RFC 8410: fixed 16-byte prefix + 32-byte seed). */
function pkcs8 (seed: Uint8Array): Uint8Array {
  const prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
  const out = new Uint8Array(prefix.length + 32)
  out.set(prefix)
  out.set(seed, prefix.length)
  return out
}

function withDomain (body: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGNING_DOMAIN.length + body.length)
  out.set(SIGNING_DOMAIN)
  out.set(body, SIGNING_DOMAIN.length)
  return out
}

/**
 * A signer from a 32-byte Ed25519 private key seed (the first 32 bytes of a libp2p Ed25519
 * private key's `raw`). `publicKey`, when the caller has it saved beside the seed (as libp2p's
 * key format does), spares deriving it — a scalar multiplication whose first run builds the base
 * point's tables, about 18 ms in a browser — so opening a database costs no curve arithmetic; the
 * first signature is then checked against it, and `sign` rejects with `ValidationError` if the
 * saved public key is not the seed's. Throws `ValidationError` for a seed or public key of the
 * wrong length.
 */
export function signerFromSeed (seed: Uint8Array, publicKey?: Uint8Array): Signer {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new ValidationError('an Ed25519 seed is 32 bytes')
  if (publicKey !== undefined && (!(publicKey instanceof Uint8Array) || publicKey.length !== 32)) throw new ValidationError('an Ed25519 public key is 32 bytes')
  const secret = seed.slice()
  const known = publicKey?.slice() ?? ed25519.getPublicKey(secret)
  let unchecked = publicKey !== undefined
  let platformKey: Promise<unknown> | undefined
  const sign = async (message: Uint8Array): Promise<Uint8Array> => {
    const subtle = await subtleEd25519()
    if (subtle === undefined) return ed25519.sign(message, secret)
    platformKey ??= subtle.importKey('pkcs8', pkcs8(secret), 'Ed25519', false, ['sign'])
    return new Uint8Array(await subtle.sign('Ed25519', await platformKey, message))
  }
  return {
    publicKey: known,
    async sign (body) {
      const message = withDomain(body)
      const signature = await sign(message)
      if (unchecked) {
        if (!await verifySignature(known, body, signature)) throw new ValidationError('the saved public key does not belong to the saved seed')
        unchecked = false
      }
      return signature
    }
  }
}

/**
 * The 32-byte Ed25519 public key of a 32-byte private key seed: by WebCrypto where the platform
 * has Ed25519 (its JWK export of the private key carries the public key), else by @noble/curves.
 * Throws `ValidationError` for a seed of the wrong length.
 */
export async function publicKeyOf (seed: Uint8Array): Promise<Uint8Array> {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new ValidationError('an Ed25519 seed is 32 bytes')
  const subtle = await subtleEd25519()
  if (subtle !== undefined) {
    try {
      const { x } = await subtle.exportKey('jwk', await subtle.importKey('pkcs8', pkcs8(seed), 'Ed25519', true, ['sign']))
      const publicKey = typeof x === 'string' ? base64url.baseDecode(x) : undefined
      if (publicKey?.length === PUBLIC_KEY_BYTES) return publicKey
    } catch { /* derived below */ }
  }
  return ed25519.getPublicKey(seed)
}

/** A signer with a fresh random key (tests, and replicas that never persist an identity). */
export function generateSigner (): Signer {
  return signerFromSeed(ed25519.utils.randomSecretKey())
}

/** Imported WebCrypto verification keys, by public key (base58btc); bounded. */
const verifyKeys = new Map<string, Promise<unknown>>()

/**
 * Whether `signature` is `publicKey`'s signature of `body` (with the block domain prefix).
 * Never throws: malformed keys or signatures verify as false.
 */
export async function verifySignature (publicKey: Uint8Array, body: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (publicKey.length !== PUBLIC_KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false
  const message = withDomain(body)
  const subtle = await subtleEd25519()
  try {
    if (subtle === undefined) return ed25519.verify(signature, message, publicKey)
    const id = formatPublicKey(publicKey)
    let key = verifyKeys.get(id)
    if (key === undefined) {
      if (verifyKeys.size >= 1024) verifyKeys.clear()
      key = subtle.importKey('raw', publicKey, 'Ed25519', false, ['verify'])
      verifyKeys.set(id, key)
    }
    return await subtle.verify('Ed25519', await key, signature, message)
  } catch {
    return false
  }
}

/** A public key as text: multibase base58btc (`z…`), as in `access.write` lists. */
export function formatPublicKey (publicKey: Uint8Array): string {
  return base58btc.encode(publicKey)
}

/** Parse `formatPublicKey`'s text. Throws `ValidationError` if it is not a 32-byte key. */
export function parsePublicKey (text: unknown): Uint8Array {
  if (typeof text !== 'string' || !text.startsWith('z') || text.length > 64) throw new ValidationError(`${JSON.stringify(text)} is not a public key (z… base58btc)`)
  let bytes: Uint8Array
  try {
    bytes = base58btc.decode(text)
  } catch {
    throw new ValidationError(`${JSON.stringify(text)} is not a public key (z… base58btc)`)
  }
  if (bytes.length !== PUBLIC_KEY_BYTES) throw new ValidationError(`${JSON.stringify(text)} is not a 32-byte public key`)
  return bytes
}

/** A new random 256-bit database key. */
export function generateKey (): Uint8Array {
  const key = new Uint8Array(KEY_BYTES)
  globalThis.crypto.getRandomValues(key)
  return key
}

/** A key as text for links: base64url without padding (43 characters). */
export function formatKey (key: Uint8Array): string {
  return base64url.baseEncode(key)
}

/** Parse `formatKey`'s text. Throws `ValidationError` unless it is 32 bytes of base64url. */
export function parseKey (text: unknown): Uint8Array {
  if (text instanceof Uint8Array && text.length === KEY_BYTES) return text.slice()
  if (typeof text !== 'string' || text.length !== 43) throw new ValidationError('a database key is 43 characters of base64url')
  try {
    const key = base64url.baseDecode(text)
    if (key.length === KEY_BYTES) return key
  } catch { /* not base64url: refused below */ }
  throw new ValidationError('a database key is 43 characters of base64url')
}

/**
 * A 16-byte commitment to a key, kept in the manifest: a replica given the wrong key finds out
 * at once. SHA-256 of a random 256-bit key reveals nothing usable about it.
 */
export function keyCheck (key: Uint8Array): Uint8Array {
  const input = new Uint8Array(KEY_CHECK_DOMAIN.length + key.length)
  input.set(KEY_CHECK_DOMAIN)
  input.set(key, KEY_CHECK_DOMAIN.length)
  return sha256(input).slice(0, 16)
}

/** Encrypt `plaintext` under `key` bound to `aad`: returns `nonce || ciphertext || tag`. */
export function seal (key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(NONCE_BYTES)
  globalThis.crypto.getRandomValues(nonce)
  const sealed = xchacha20poly1305(key, nonce, aad).encrypt(plaintext)
  const out = new Uint8Array(NONCE_BYTES + sealed.length)
  out.set(nonce)
  out.set(sealed, NONCE_BYTES)
  return out
}

/** Decrypt a `seal` box. Throws `InvalidBlockError` when it is malformed or not sealed under `key` and `aad`. */
export function unseal (key: Uint8Array, box: Uint8Array, aad: Uint8Array): Uint8Array {
  if (!(box instanceof Uint8Array) || box.length < NONCE_BYTES + TAG_BYTES) throw new InvalidBlockError('encrypted box is too short')
  try {
    return xchacha20poly1305(key, box.subarray(0, NONCE_BYTES), aad).decrypt(box.subarray(NONCE_BYTES))
  } catch {
    throw new InvalidBlockError('cannot decrypt: wrong key, or the box was altered')
  }
}

/** Byte-wise equality. */
export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
