import { afterEach, describe, expect, it, vi } from 'vitest'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { claimIdentity } from '../../src/net/index.js'
import { generateEd25519Key } from '../../src/net/identity.js'
import { ed25519 } from '@noble/curves/ed25519.js'
import { privateKeyFromRaw } from '@libp2p/crypto/keys'
import { MemoryStorageProvider } from '../../src/store/index.js'
import { createRelayNode } from '../../src/net/index.js'
import { KiteDB } from '../../src/index.js'

/** A minimal Web Locks API: `ifAvailable` requests get `null` while the name is held. */
function fakeLocks (): void {
  const held = new Set<string>()
  ;(globalThis as { navigator?: unknown }).navigator = {
    locks: {
      request: async (name: string, _options: { ifAvailable: boolean }, callback: (lock: unknown) => Promise<void>) => {
        if (held.has(name)) { await callback(null); return }
        held.add(name)
        try { await callback({ name }) } finally { held.delete(name) }
      }
    }
  }
}

afterEach(() => { delete (globalThis as { navigator?: unknown }).navigator })

const id = (claim: { privateKey: Parameters<typeof peerIdFromPrivateKey>[0] }): string => peerIdFromPrivateKey(claim.privateKey).toString()

describe('device identity', () => {
  it('a new key made by WebCrypto is a valid Ed25519 key: its public half is its seed\'s, its signatures verify', async () => {
    const made = vi.spyOn(globalThis.crypto.subtle, 'generateKey')
    const keys = await Promise.all([generateEd25519Key(), generateEd25519Key()])
    expect(made).toHaveBeenCalledTimes(2) // by WebCrypto, not the fallback
    made.mockRestore()
    for (const key of keys) {
      expect(key.type).toBe('Ed25519')
      const seed = key.raw.subarray(0, 32)
      expect(key.publicKey.raw).toEqual(ed25519.getPublicKey(seed))
      const message = new TextEncoder().encode('kitedb')
      const signature = await key.sign(message)
      expect(ed25519.verify(signature, message, key.publicKey.raw)).toBe(true)
      expect(await privateKeyFromRaw(key.raw).publicKey.verify(message, signature)).toBe(true)
    }
    expect(keys[0]?.raw).not.toEqual(keys[1]?.raw)
  })


  it('is created once, saved, and the same on the next claim', async () => {
    const store = new MemoryStorageProvider()
    const a = await claimIdentity(store, 'default')
    a.release()
    const b = await claimIdentity(store, 'default')
    expect(a.persistent && b.persistent).toBe(true)
    expect(id(b)).toBe(id(a))
    expect(id(await claimIdentity(store, 'other'))).not.toBe(id(a))
  })

  it('a second tab, finding the identity held, gets a fresh unsaved one; after release the saved one again', async () => {
    fakeLocks()
    const store = new MemoryStorageProvider()
    const first = await claimIdentity(store, 'default')
    const second = await claimIdentity(store, 'default')
    expect(second.persistent).toBe(false)
    expect(id(second)).not.toBe(id(first))
    first.release()
    await new Promise(resolve => setTimeout(resolve, 0))
    const third = await claimIdentity(store, 'default')
    expect(third.persistent).toBe(true)
    expect(id(third)).toBe(id(first))
  })

  it('a database reopened on the same device keeps its peer id', async () => {
    const relay = await createRelayNode({ port: 0 })
    try {
      const storage = new MemoryStorageProvider()
      const relays = relay.getMultiaddrs()[0]?.toString()
      const db = await KiteDB.init('id', { storage, relays, node: 'identity-test' })
      await db.whenOnline()
      const peerId = db.peerId
      await db.close()
      const again = await KiteDB.init('id', { storage, relays, node: 'identity-test' })
      await again.whenOnline()
      expect(again.peerId).toBe(peerId)
      await again.close()
    } finally {
      await relay.stop()
    }
  })
})
