/**
 * The device's libp2p identity: one Ed25519 key per node name, kept in the KiteDB registry
 * (IndexedDB in browsers), so a peer id — and a share link that names it — survives reloads.
 *
 * Two tabs of one origin must not run one peer id at once (they would take each other's relay
 * reservation): a tab claims the saved identity with the Web Locks API and holds it while its node
 * runs; a tab that finds it held uses a fresh, unsaved identity instead, and queues for the saved
 * one: when the tab holding it closes, the next tab in the queue takes it over (`upgrade`), so the
 * device's peer id — the one share links name — stays reachable while any tab is open.
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyFromRaw } from '@libp2p/crypto/keys'
import { type PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { base64url } from 'multiformats/bases/base64'
import { createLogger } from '../log.js'
import { type SecretStore, deviceKeyName, loadDeviceKeyPair, lockManager } from '../store/device-key.js'

export { type SecretStore } from '../store/device-key.js'

const log = createLogger('net')

/** A claimed identity: use `privateKey`; call `release()` when the node stops. */
export interface IdentityClaim {
  privateKey: PrivateKey
  /** false when another tab holds the saved identity and this one is fresh and unsaved */
  persistent: boolean
  /**
   * A fresh identity's place in the queue for the saved one: resolves with the saved identity,
   * claimed, once the context holding it lets go (its tab closed). Never settles after `release()`.
   */
  upgrade?: Promise<IdentityClaim>
  release (): void
}

/**
 * A new Ed25519 key. Made by the platform's WebCrypto where it has Ed25519 (browsers since 2025,
 * Node ≥ 18), else by @libp2p/crypto (@noble/curves): in a fresh page, noble's first key costs
 * about 60 ms of the main thread (it builds its base-point tables), on the path of a first join.
 */
export async function generateEd25519Key (): Promise<PrivateKey> {
  try {
    const pair = await globalThis.crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])
    // JWK (RFC 8037): `d` is the 32-byte seed, `x` the public key, both base64url
    const { d, x } = await globalThis.crypto.subtle.exportKey('jwk', pair.privateKey)
    const seed = base64url.baseDecode(d ?? '')
    const publicKey = base64url.baseDecode(x ?? '')
    if (seed.length !== 32 || publicKey.length !== 32) throw new Error('unexpected Ed25519 JWK')
    const raw = new Uint8Array(64)
    raw.set(seed)
    raw.set(publicKey, 32)
    return privateKeyFromRaw(raw)
  } catch (err) {
    log.debug(`WebCrypto cannot make an Ed25519 key (${(err as Error).message}): using @libp2p/crypto`)
    return await generateKeyPair('Ed25519')
  }
}

/**
 * The device key saved under `node` in `store` (see src/store/device-key.ts: created and saved the
 * first time, under a Web Lock, without libp2p), as a libp2p private key. It signs the device's
 * blocks (every tab signs as the same writer) and is the libp2p identity of whichever tab holds
 * it (see `claimIdentity`). Throws `ValidationError` when the saved key is corrupt.
 */
export async function loadDeviceKey (store: SecretStore, node: string): Promise<PrivateKey> {
  const saved = await store.loadSecret(deviceKeyName(node))
  if (saved !== undefined) return privateKeyFromProtobuf(saved)
  await loadDeviceKeyPair(store, node)
  return privateKeyFromProtobuf(await store.loadSecret(deviceKeyName(node)) as Uint8Array)
}

/** The peer id of the device key saved under `node` in `store` (what share links name). */
export async function devicePeerId (store: SecretStore, node: string): Promise<string> {
  return peerIdFromPrivateKey(await loadDeviceKey(store, node)).toString()
}

/**
 * Claim the identity saved under `node` in `store` (creating and saving it the first time). Where
 * the Web Locks API exists and another context holds it, returns a fresh identity instead, with an
 * `upgrade` that claims the saved one when it is let go.
 */
export async function claimIdentity (store: SecretStore, node: string): Promise<IdentityClaim> {
  const name = deviceKeyName(node)
  const locks = lockManager()
  if (locks === undefined) return { privateKey: await loadDeviceKey(store, node), persistent: true, release: () => {} }
  let release = (): void => {}
  const granted = await new Promise<boolean>(resolve => {
    void locks.request(`kitedb:${name}`, { ifAvailable: true }, async lock => {
      if (lock === null) { resolve(false); return }
      resolve(true)
      await new Promise<void>(resolve2 => { release = resolve2 })
    })
  })
  if (granted) {
    try {
      return { privateKey: await loadDeviceKey(store, node), persistent: true, release }
    } catch (err) {
      release()
      throw err
    }
  }
  log.debug(`identity "${node}" is in use by another tab: using a fresh one until it is free`)
  const queue = new AbortController()
  const upgrade = new Promise<IdentityClaim>(resolve => {
    locks.request(`kitedb:${name}`, { signal: queue.signal }, async () => {
      let letGo = (): void => {}
      const held = new Promise<void>(resolve2 => { letGo = resolve2 })
      try {
        resolve({ privateKey: await loadDeviceKey(store, node), persistent: true, release: letGo })
      } catch (err) {
        log.warn(`cannot load identity "${node}": ${(err as Error).message}`)
        letGo()
      }
      await held
    }).catch(() => {}) // aborted by release(): this context left the queue
  })
  return { privateKey: await generateEd25519Key(), persistent: false, upgrade, release: () => { queue.abort() } }
}
