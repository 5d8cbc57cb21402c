/**
 * `decodeManifestAsync` (src/crdt/manifest.ts), hashed by the platform, answers as `decodeManifest`
 * does: the same manifest for its bytes, and `InvalidBlockError` for bytes that are not the
 * address's manifest, a mismatch reported before any decoding error.
 */
import { describe, expect, it } from 'vitest'
import { InvalidBlockError } from '../../src/errors.js'
import { cidOf, createManifest, decodeManifest, decodeManifestAsync, encode, encodeManifest, generateKey } from '../../src/crdt/index.js'

describe('decodeManifestAsync', () => {
  const plain = encodeManifest(createManifest('plain', ['*']))
  const sealed = encodeManifest(createManifest('sealed', ['*'], generateKey()))

  it('decodes a manifest as decodeManifest does, plain or encrypted', async () => {
    for (const m of [plain, sealed]) expect(await decodeManifestAsync(m.bytes, m.cid)).toEqual(decodeManifest(m.bytes, m.cid))
    expect((await decodeManifestAsync(plain.bytes, plain.cid)).name).toBe('plain')
  })

  it('refuses another database\'s manifest, and bytes that are no manifest, with InvalidBlockError', async () => {
    await expect(decodeManifestAsync(sealed.bytes, plain.cid)).rejects.toThrow(InvalidBlockError)
    await expect(decodeManifestAsync(sealed.bytes, plain.cid)).rejects.toThrow(/do not match the address/)
    const notManifest = encode({ v: 1, hello: 'world' })
    await expect(decodeManifestAsync(notManifest, cidOf(notManifest))).rejects.toThrow(/not a KiteDB manifest/)
    const notCbor = new Uint8Array([0xff, 0x00, 0x13])
    await expect(decodeManifestAsync(notCbor, cidOf(notCbor))).rejects.toThrow(/not dag-cbor/)
    // the address is checked first: undecodable bytes under another CID are a mismatch
    await expect(decodeManifestAsync(notCbor, plain.cid)).rejects.toThrow(/do not match the address/)
  })
})
