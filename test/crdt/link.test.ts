/**
 * Link-secret signatures: in an encrypted database everyone holding the link may write, a block
 * made by someone who knows only the address (any key signs it) is refused before anything is
 * decrypted or stored; databases with a write list, plain ones and manifests made before the link
 * key existed work as before.
 */
import { describe, expect, it } from 'vitest'
import { AccessError, InvalidBlockError } from '../../src/errors.js'
import {
  type Manifest, cidOf, createManifest, decodeBlock, decodeManifest, encode, encodeBlock, encodeManifest, formatPublicKey, generateKey, generateSigner,
  linkKeyOf, linkSigner, readBlockHeader, verifyHeaderSignatures
} from '../../src/crdt/index.js'
import { Replica } from '../../src/sync/index.js'
import { MemoryStorage } from '../../src/store/memory.js'

async function replicaOf (manifest: Manifest, key: Uint8Array | undefined): Promise<Replica> {
  const { cid } = encodeManifest(manifest)
  return await Replica.open(new MemoryStorage(), cid.toString(), { manifest, ...(key !== undefined ? { key } : {}) })
}

describe('link-secret signatures', () => {
  it('the link key is derived from the database key alone, and is in the manifest of encrypted databases everyone with the link writes', () => {
    const key = generateKey()
    expect(linkSigner(key).publicKey).toEqual(linkSigner(key.slice()).publicKey)
    expect(linkSigner(generateKey()).publicKey).not.toEqual(linkSigner(key).publicKey)
    const manifest = createManifest('todos', ['*'], key)
    expect(manifest.enc?.link).toEqual(linkSigner(key).publicKey)
    const { bytes, cid } = encodeManifest(manifest)
    expect(decodeManifest(bytes, cid).enc?.link).toEqual(linkSigner(key).publicKey)
    // A write list says who writes: no link key. A plain database has no key to derive it from.
    expect(createManifest('todos', [formatPublicKey(generateSigner().publicKey)], key).enc?.link).toBeUndefined()
    expect(createManifest('todos', ['*']).enc).toBeUndefined()
  })

  it('every block a link holder writes carries a link signature; a block forged with the address alone is refused before decryption', async () => {
    const key = generateKey()
    const manifest = createManifest('todos', ['*'], key)
    const writer = await replicaOf(manifest, key)
    const reader = await replicaOf(manifest, key)
    const applied = await writer.commit([{ op: 'put', coll: 'todos', id: 'a', set: { title: 'milk' } }])
    if (applied === undefined) throw new Error('nothing written')
    expect(readBlockHeader(applied.bytes).link).toBeInstanceOf(Uint8Array)
    await reader.receive(applied.bytes, applied.cid)
    expect(await reader.storage.getDoc('todos', 'a')).toMatchObject({ title: 'milk' })

    // Someone with the address only: any key may write, but the link signature cannot be made.
    const dbId = writer.dbId
    const forger = generateSigner()
    const forged = await encodeBlock({ v: 1, db: dbId, parents: [], hlc: { t: Date.now(), c: 0, r: 'x' }, ops: [{ op: 'put', coll: 'todos', id: 'b', set: { title: 'spam' } }] },
      { signer: forger, key: generateKey() })
    await expect(reader.verify(forged.bytes, forged.cid)).rejects.toThrow(/link signature/)
    // Signed by another database's link key: refused too.
    const other = await encodeBlock({ v: 1, db: dbId, parents: [], hlc: { t: Date.now(), c: 0, r: 'x' }, ops: [{ op: 'put', coll: 'todos', id: 'b', set: { title: 'spam' } }] },
      { signer: forger, key: generateKey(), link: linkSigner(generateKey()) })
    await expect(reader.verify(other.bytes, other.cid)).rejects.toThrow(/link signature does not match/)
    // Without the key, only the signatures: the same verdicts (what keepers and relays check).
    const link = linkKeyOf(manifest)
    await expect(verifyHeaderSignatures(readBlockHeader(applied.bytes), link)).resolves.toBeUndefined()
    await expect(verifyHeaderSignatures(readBlockHeader(forged.bytes), link)).rejects.toBeInstanceOf(InvalidBlockError)
    await expect(verifyHeaderSignatures(readBlockHeader(other.bytes), link)).rejects.toBeInstanceOf(InvalidBlockError)
    expect(await reader.storage.getDoc('todos', 'b')).toBeUndefined()
  })

  it('a manifest from before the link key (encrypted, everyone writes, no enc.link) works as before: blocks need no link signature', async () => {
    const key = generateKey()
    const manifest = createManifest('todos', ['*'], key)
    delete manifest.enc?.link
    const writer = await replicaOf(manifest, key)
    const reader = await replicaOf(manifest, key)
    const applied = await writer.commit([{ op: 'put', coll: 'todos', id: 'a', set: { title: 'milk' } }])
    if (applied === undefined) throw new Error('nothing written')
    expect(readBlockHeader(applied.bytes).link).toBeUndefined()
    await reader.receive(applied.bytes, applied.cid)
    expect(await reader.storage.getDoc('todos', 'a')).toMatchObject({ title: 'milk' })
  })

  it('a manifest whose link key does not derive from the key, or that has one with a write list, is refused', async () => {
    const key = generateKey()
    const manifest = createManifest('todos', ['*'], key)
    if (manifest.enc !== undefined) manifest.enc.link = linkSigner(generateKey()).publicKey
    await expect(replicaOf(manifest, key)).rejects.toBeInstanceOf(AccessError)
    const listed = createManifest('todos', [formatPublicKey(generateSigner().publicKey)], key)
    const bytes = encode({ ...listed, enc: { ...listed.enc, link: linkSigner(key).publicKey } })
    expect(() => decodeManifest(bytes, cidOf(bytes))).toThrow(/link/)
  })

  it('a block envelope with a malformed link signature does not decode', async () => {
    const key = generateKey()
    const block = await encodeBlock({ v: 1, db: 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4', parents: [], hlc: { t: 1, c: 0, r: 'x' }, ops: [{ op: 'del', coll: 'c', id: 'a' }] },
      { signer: generateSigner(), key, link: linkSigner(key) })
    const header = readBlockHeader(block.bytes)
    const bad = encode({ v: 1, body: header.body, w: header.writer, s: header.signature, l: new Uint8Array(10) })
    await expect(decodeBlock(bad)).rejects.toThrow(/link signature has the wrong length/)
  })
})

