import { describe, expect, it } from 'vitest'
import { ed25519 } from '@noble/curves/ed25519.js'
import { ValidationError } from '../../src/errors.js'
import { PROBE_SIGNATURE, disablePlatformEd25519, publicKeyOf, signerFromSeed } from '../../src/crdt/index.js'
import { MemoryStorageProvider, loadDeviceKeyPair } from '../../src/store/index.js'

const DOMAIN = new TextEncoder().encode('kitedb-block:') // the signing domain, written out here

describe('Ed25519 without curve arithmetic where WebCrypto has it', () => {
  it('the known answer the platform must give is @noble/curves\' signature', () => {
    expect(PROBE_SIGNATURE).toEqual(ed25519.sign(DOMAIN, new Uint8Array(32)))
  })

  it('publicKeyOf gives the seed\'s public key, by the platform and by @noble/curves', async () => {
    for (const platform of [true, false]) {
      disablePlatformEd25519(!platform)
      try {
        for (let i = 0; i < 4; i++) {
          const seed = crypto.getRandomValues(new Uint8Array(32))
          expect(await publicKeyOf(seed)).toEqual(ed25519.getPublicKey(seed))
        }
        await expect(publicKeyOf(new Uint8Array(31))).rejects.toBeInstanceOf(ValidationError)
      } finally {
        disablePlatformEd25519(false)
      }
    }
  })
})

describe('a signer from a saved key pair', () => {
  it('signs with the seed, and its public key is the seed\'s', async () => {
    const seed = crypto.getRandomValues(new Uint8Array(32))
    const publicKey = ed25519.getPublicKey(seed)
    const signer = signerFromSeed(seed, publicKey)
    expect(signer.publicKey).toEqual(publicKey)
    const body = new Uint8Array([1, 2, 3])
    const signature = await signer.sign(body)
    expect(ed25519.verify(signature, new Uint8Array([...DOMAIN, ...body]), publicKey)).toBe(true)
    expect(await signer.sign(body)).toEqual(signature)
  })

  it('refuses to sign when the saved public key is not the seed\'s', async () => {
    const seed = crypto.getRandomValues(new Uint8Array(32))
    const wrong = ed25519.getPublicKey(crypto.getRandomValues(new Uint8Array(32)))
    const signer = signerFromSeed(seed, wrong)
    await expect(signer.sign(new Uint8Array([1]))).rejects.toBeInstanceOf(ValidationError)
  })

  it('refuses a public key of the wrong length', () => {
    expect(() => signerFromSeed(new Uint8Array(32), new Uint8Array(31))).toThrow(ValidationError)
  })

  it('the device key pair is saved once and read back the same', async () => {
    const provider = new MemoryStorageProvider()
    const first = await loadDeviceKeyPair(provider, 'n')
    const again = await loadDeviceKeyPair(provider, 'n')
    expect(again).toEqual(first)
    expect(first.publicKey).toEqual(ed25519.getPublicKey(first.seed))
  })
})
