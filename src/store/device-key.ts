/**
 * The device's key: one Ed25519 key per node name, saved among the storage provider's secrets,
 * that signs every block the device writes and is the libp2p identity of whichever of its tabs runs
 * the network (src/net/identity.ts). It is saved as libp2p's protobuf `PrivateKey` (`Type` 1 =
 * Ed25519, `Data` = the 32-byte seed then the 32-byte public key), so the network reads the very
 * bytes written here; this module reads and writes them without loading libp2p, so a local-only
 * app signs its blocks without the network code.
 */
import { ValidationError } from '../errors.js'
import { publicKeyOf } from '../crdt/index.js'

/** Where secrets are saved (a `StorageProvider` fits). */
export interface SecretStore {
  loadSecret (name: string): Promise<Uint8Array | undefined>
  saveSecret (name: string, bytes: Uint8Array): Promise<void>
}

/** The secret name of the device key of `node`. */
export function deviceKeyName (node: string): string {
  return `libp2p-key:${node}`
}

/** libp2p's protobuf `PrivateKey` of an Ed25519 key: `08 01` (Type: Ed25519), `12 40` (Data: 64 bytes). */
const PROTOBUF_HEADER = [0x08, 0x01, 0x12, 0x40]

/** Encode an Ed25519 key (32-byte seed, 32-byte public key) as libp2p's protobuf `PrivateKey`. */
export function encodeDeviceKey (seed: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (seed.length !== 32 || publicKey.length !== 32) throw new ValidationError('an Ed25519 device key is a 32-byte seed and a 32-byte public key')
  const out = new Uint8Array(PROTOBUF_HEADER.length + 64)
  out.set(PROTOBUF_HEADER)
  out.set(seed, 4)
  out.set(publicKey, 36)
  return out
}

/** The seed and public key of a saved device key. Throws `ValidationError` for bytes that are not an Ed25519 `PrivateKey`. */
export function decodeDeviceKey (bytes: Uint8Array): { seed: Uint8Array, publicKey: Uint8Array } {
  if (bytes.length !== PROTOBUF_HEADER.length + 64 || PROTOBUF_HEADER.some((b, i) => bytes[i] !== b)) {
    throw new ValidationError('the saved device key is not an Ed25519 key in libp2p\'s format')
  }
  return { seed: bytes.slice(4, 36), publicKey: bytes.slice(36, 68) }
}

interface LockManagerLike {
  request: (name: string, options: object, callback: (lock: unknown) => Promise<void>) => Promise<void>
}

/** The Web Locks API, where the platform has a usable one. */
export function lockManager (): LockManagerLike | undefined {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike | null } }).navigator?.locks
  return typeof locks?.request === 'function' ? locks : undefined
}

/**
 * The device key saved under `node` in `store` (a 32-byte seed and its 32-byte public key),
 * created and saved the first time. Creation runs under an exclusive Web Lock where the API exists, so two tabs starting
 * at once agree on one key. Throws `ValidationError` when a saved key is corrupt.
 */
export async function loadDeviceKeyPair (store: SecretStore, node: string): Promise<{ seed: Uint8Array, publicKey: Uint8Array }> {
  const name = deviceKeyName(node)
  const loadOrCreate = async (): Promise<{ seed: Uint8Array, publicKey: Uint8Array }> => {
    const saved = await store.loadSecret(name)
    if (saved !== undefined) return decodeDeviceKey(saved)
    const seed = globalThis.crypto.getRandomValues(new Uint8Array(32))
    const publicKey = await publicKeyOf(seed)
    await store.saveSecret(name, encodeDeviceKey(seed, publicKey))
    return { seed, publicKey }
  }
  const saved = await store.loadSecret(name) // the usual case, without a lock
  if (saved !== undefined) return decodeDeviceKey(saved)
  const locks = lockManager()
  if (locks === undefined) return await loadOrCreate()
  let key: { seed: Uint8Array, publicKey: Uint8Array } | undefined
  await locks.request('kitedb:keygen', {}, async () => { key = await loadOrCreate() })
  return key as { seed: Uint8Array, publicKey: Uint8Array }
}
