/**
 * What a database remembers of its last open by name through the registry of local names: the
 * name, the node whose device key signs its blocks, that key's public half, and the registry's
 * generation token then (`StorageProvider.registryGeneration`). The token moves before every
 * change of the registry (a name registered or forgotten, a secret saved), so while it is the
 * same, the name still maps to this database and the device key is the same one: `KiteDB.init`
 * reopens the database by name without opening the registry, a second IndexedDB database that
 * Chromium opens only after the first (about 1.5 ms of a reloaded page's open; docs/design.md,
 * "Storage"), and loads the device key when it first signs.
 */
import { type Signer, equalBytes } from '../crdt/index.js'
import { AccessError } from '../errors.js'

/** Storage meta key of the record. */
export const OPENED_AS_KEY = 'openedAs'

/** The record (see the module comment). */
export interface OpenedAs {
  /** the registry's generation token when the name and the device key were read */
  gen: string
  name: string
  node: string
  /** the device key's 32-byte Ed25519 public key */
  publicKey: Uint8Array
}

/** The record stored as `value`, if it is one (a malformed one counts as none). */
export function parseOpenedAs (value: unknown): OpenedAs | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { gen, name, node, publicKey } = value as Partial<OpenedAs>
  if (typeof gen !== 'string' || typeof name !== 'string' || typeof node !== 'string') return undefined
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return undefined
  return { gen, name, node, publicKey }
}

/**
 * A signer known by its public key alone until it signs: the first `sign` calls `load` (once; a
 * failed load is tried again by the next `sign`). Throws `AccessError` from `sign` when the key
 * loaded is not the one announced, so nothing is ever signed by a key other than `publicKey`.
 */
export function deferredSigner (publicKey: Uint8Array, load: () => Promise<Signer>): Signer {
  let loading: Promise<Signer> | undefined
  const loaded = async (): Promise<Signer> => {
    const signer = await load()
    if (!equalBytes(signer.publicKey, publicKey)) {
      throw new AccessError('the device key changed since this database was opened: open it again')
    }
    return signer
  }
  return {
    publicKey,
    async sign (body) {
      loading ??= loaded()
      try {
        return await (await loading).sign(body)
      } catch (err) {
        loading = undefined
        throw err
      }
    }
  }
}
