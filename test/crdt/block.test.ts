import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { InvalidBlockError } from '../../src/errors.js'
import {
  type Block, MAX_BLOCK_BYTES, MAX_PARENTS, cidOf, decode, decodeBlock, disablePlatformEd25519, encode, encodeBlock, generateKey,
  generateSigner, readBlockHeader
} from '../../src/crdt/index.js'
import { Replica } from '../../src/sync/index.js'
import { MemoryStorage } from '../../src/store/memory.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const OTHER_DB = 'bafyreihiekde7ck57zwp4wcddjir6blyvwzm2qjaqpszd4nzwmwhikwrwi'
const signer = generateSigner()

function sample (): Block {
  return {
    v: 1,
    db: DB,
    parents: [],
    hlc: { t: 1700000000000, c: 0, r: 'abc' },
    ops: [
      { op: 'put', coll: 'todos', id: 'a', set: { title: 'x', n: 1.5, tags: ['a'], o: { p: null } }, unset: ['gone'], inc: { count: 2 } },
      { op: 'del', coll: 'todos', id: 'b' }
    ]
  }
}

/** Assert `p` rejects with InvalidBlockError and nothing else. */
async function rejectsInvalid (p: Promise<unknown>, message?: RegExp): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(InvalidBlockError)
  if (message !== undefined) expect((err as Error).message).toMatch(message)
}

describe('blocks', () => {
  it('round-trips through dag-cbor with a CID over the bytes, carrying the writer key', async () => {
    const enc = await encodeBlock(sample(), { signer })
    const dec = await decodeBlock(enc.bytes, enc.cid)
    expect(dec.cid.equals(enc.cid)).toBe(true)
    expect(dec.block).toEqual({ ...sample(), writer: signer.publicKey })
    expect(enc.cid.toString()).toBe(cidOf(enc.bytes).toString())
    expect(enc.cid.version).toBe(1)
    expect(enc.cid.code).toBe(0x71)
  })

  it('links parents by CID', async () => {
    const first = await encodeBlock(sample(), { signer })
    const second = await encodeBlock({ ...sample(), parents: [first.cid] }, { signer })
    expect((await decodeBlock(second.bytes)).block.parents.map(String)).toEqual([first.cid.toString()])
    expect(readBlockHeader(second.bytes).parents.map(String)).toEqual([first.cid.toString()])
  })

  it('rejects bytes that do not match the expected CID', async () => {
    const a = await encodeBlock(sample(), { signer })
    const b = await encodeBlock({ ...sample(), hlc: { t: 1, c: 0, r: 'z' } }, { signer })
    await rejectsInvalid(decodeBlock(a.bytes, b.cid))
  })

  it('rejects invalid blocks on encode', async () => {
    await rejectsInvalid(encodeBlock({ ...sample(), ops: [] }, { signer }))
    await rejectsInvalid(encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: 'a', set: { $bad: 1 } }] }, { signer }), /field name/)
    await rejectsInvalid(encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: '', set: {} }] }, { signer }), /document id/)
    await rejectsInvalid(encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: 'a', set: { x: Number.NaN } }] }, { signer }))
    await rejectsInvalid(encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: 'a', set: { big: 'x'.repeat(MAX_BLOCK_BYTES) } }] }, { signer }), /limit/)
  })

  it('decoding is total: random bytes give a valid block or InvalidBlockError, nothing else', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async bytes => {
      await decodeBlock(bytes).catch(err => { expect(err).toBeInstanceOf(InvalidBlockError) })
    }), { numRuns: 2000 })
  })

  it('decoding is total on mutations of a valid block, and a mutated block never verifies', async () => {
    const valid = (await encodeBlock(sample(), { signer })).bytes
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), async muts => {
      const bytes = Uint8Array.from(valid)
      for (const [i, v] of muts) bytes[i] = v
      const same = bytes.every((b, i) => b === valid[i])
      try {
        await decodeBlock(bytes)
        expect(same).toBe(true)
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidBlockError)
      }
    }), { numRuns: 1000 })
  })
})

describe('signatures', () => {
  it('refuses a block whose body was changed after signing (forged content)', async () => {
    const enc = await encodeBlock(sample(), { signer })
    const envelope = decode(enc.bytes) as { v: 1, body: Uint8Array, w: Uint8Array, s: Uint8Array }
    const body = decode(envelope.body) as Record<string, unknown>
    const forged = encode({ ...envelope, body: encode({ ...body, ops: [{ op: 'del', coll: 'todos', id: 'a' }] }) })
    await rejectsInvalid(decodeBlock(forged), /signature/)
  })

  it('refuses a signature by another key than the one named (forged writer)', async () => {
    const other = generateSigner()
    const enc = await encodeBlock(sample(), { signer: other })
    const envelope = decode(enc.bytes) as Record<string, unknown>
    await rejectsInvalid(decodeBlock(encode({ ...envelope, w: signer.publicKey })), /signature/)
  })

  it('gives identical, verifiable signatures with WebCrypto and with @noble/curves', async () => {
    const platform = await encodeBlock(sample(), { signer })
    disablePlatformEd25519(true)
    try {
      const noble = await encodeBlock(sample(), { signer })
      expect(noble.cid.toString()).toBe(platform.cid.toString())
      await decodeBlock(platform.bytes)
      const forged = decode(platform.bytes) as Record<string, unknown>
      await rejectsInvalid(decodeBlock(encode({ ...forged, s: new Uint8Array(64) })), /signature/)
    } finally {
      disablePlatformEd25519(false)
    }
  })
})

describe('encryption', () => {
  const key = generateKey()

  it('seals the ops: the plaintext appears nowhere in the bytes, and only the key opens them', async () => {
    const block = { ...sample(), ops: [{ op: 'put' as const, coll: 'todos', id: 'a', set: { title: 'buy oat milk' } }] }
    const enc = await encodeBlock(block, { signer, key })
    expect(new TextDecoder('latin1').decode(enc.bytes)).not.toContain('oat milk')
    expect((await decodeBlock(enc.bytes, enc.cid, { key })).block.ops).toEqual(block.ops)
    await rejectsInvalid(decodeBlock(enc.bytes, enc.cid, { key: generateKey() }), /wrong key/)
    await rejectsInvalid(decodeBlock(enc.bytes, enc.cid), /no key/)
  })

  it('refuses a plaintext block in an encrypted database', async () => {
    const plain = await encodeBlock(sample(), { signer })
    await rejectsInvalid(decodeBlock(plain.bytes, plain.cid, { key }), /not encrypted/)
  })

  it('binds the box to the database: moved into another database, it does not open', async () => {
    const enc = await encodeBlock(sample(), { signer, key })
    const envelope = decode(enc.bytes) as { v: 1, body: Uint8Array, w: Uint8Array, s: Uint8Array }
    const body = decode(envelope.body) as Record<string, unknown>
    const moved = await (async () => {
      const movedBody = encode({ ...body, db: OTHER_DB })
      return encode({ v: 1, body: movedBody, w: signer.publicKey, s: await signer.sign(movedBody) })
    })()
    await rejectsInvalid(decodeBlock(moved, undefined, { key }), /wrong key|altered/)
  })
})

describe('large blocks', () => {
  it('keeps ops beyond 512 KiB in chunks, each under the block limit, and reassembles them (plain and encrypted)', async () => {
    const { CHUNK_TARGET_BYTES, assembleOps, decodeChunk } = await import('../../src/crdt/index.js')
    const ops = Array.from({ length: 6000 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${i}`, set: { text: 'x'.repeat(300), i } }))
    for (const key of [undefined, generateKey()]) {
      const opened = key === undefined ? {} : { key }
      const enc = await encodeBlock({ ...sample(), ops }, { signer, ...opened })
      expect(enc.chunks?.length).toBeGreaterThanOrEqual(3)
      expect(enc.bytes.byteLength).toBeLessThanOrEqual(CHUNK_TARGET_BYTES + 64 * 1024)
      for (const c of enc.chunks ?? []) expect(c.bytes.byteLength).toBeLessThanOrEqual(MAX_BLOCK_BYTES)
      const dec = await decodeBlock(enc.bytes, enc.cid, opened)
      expect(dec.block.chunks?.map(String)).toEqual(enc.chunks?.map(c => c.cid.toString()))
      const all = assembleOps(dec.block, (enc.chunks ?? []).map(c => decodeChunk(c.bytes, c.cid, DB, opened)))
      expect(all).toEqual(ops)
      // A chunk under another CID, a block posing as a chunk, or a chunk of another database, is rejected.
      const [first, second] = enc.chunks ?? []
      expect(() => decodeChunk((first as { bytes: Uint8Array }).bytes, (second as unknown as { cid: never }).cid, DB, opened)).toThrow(InvalidBlockError)
      expect(() => decodeChunk(enc.bytes, enc.cid, DB, opened)).toThrow(InvalidBlockError)
      if (key !== undefined) expect(() => decodeChunk((first as { bytes: Uint8Array }).bytes, (first as unknown as { cid: never }).cid, OTHER_DB, opened)).toThrow(InvalidBlockError)
    }
  })

  it('refuses a single document over the block limit', async () => {
    await rejectsInvalid(encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: 'big', set: { x: 'y'.repeat(MAX_BLOCK_BYTES) } }] }, { signer }), /limit/)
  })
})

describe('parents per block', () => {
  const parent = (i: number): ReturnType<typeof cidOf> => cidOf(encode(i))
  /** A correctly signed block naming `n` parents, built by hand as a hostile writer would (encodeBlock refuses it). */
  async function signedWithParents (n: number): Promise<Uint8Array> {
    const body = encode({ db: DB, parents: Array.from({ length: n }, (_, i) => parent(i)), hlc: [1, 0, 'r'], ops: [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }] })
    return encode({ v: 1, body, w: signer.publicKey, s: await signer.sign(body) })
  }

  it(`a block may name at most MAX_PARENTS (${MAX_PARENTS}) parents: more are refused by the decoder and the header reader, whoever signed them`, async () => {
    expect(MAX_PARENTS).toBe(64)
    expect((await decodeBlock(await signedWithParents(MAX_PARENTS))).block.parents).toHaveLength(MAX_PARENTS)
    for (const n of [MAX_PARENTS + 1, 1023]) {
      const bytes = await signedWithParents(n)
      await rejectsInvalid(decodeBlock(bytes), /parents/)
      expect(() => readBlockHeader(bytes)).toThrow(InvalidBlockError)
    }
    await rejectsInvalid(encodeBlock({ ...sample(), parents: Array.from({ length: MAX_PARENTS + 1 }, (_, i) => parent(i)) }, { signer }), /parents/)
  })

  it('property: any parent count decodes when within the bound and is refused with InvalidBlockError beyond it', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 300 }), async n => {
      const outcome = await decodeBlock(await signedWithParents(n)).then(() => 'ok', (e: unknown) => e instanceof InvalidBlockError ? 'refused' : 'other')
      expect(outcome).toBe(n <= MAX_PARENTS ? 'ok' : 'refused')
    }), { numRuns: 60 })
  })

  it('a replica with more heads than MAX_PARENTS names the first MAX_PARENTS; the rest stay heads and are merged by its next write', async () => {
    const replica = await Replica.open(new MemoryStorage(), DB)
    for (let i = 0; i < MAX_PARENTS + 10; i++) {
      await replica.receive((await encodeBlock({ ...sample(), hlc: { t: 1700000000000 + i, c: 0, r: 'w' } }, { signer: generateSigner() })).bytes)
    }
    const heads = await replica.heads()
    expect(heads).toHaveLength(MAX_PARENTS + 10)
    const first = await replica.commit([{ op: 'put', coll: 'c', id: 'merge', set: { n: 1 } }])
    expect(first?.parents.map(String)).toEqual(heads.slice(0, MAX_PARENTS))
    expect(await replica.heads()).toHaveLength(11)
    const second = await replica.commit([{ op: 'put', coll: 'c', id: 'merge', set: { n: 2 } }])
    expect(second?.parents).toHaveLength(11)
    expect(await replica.heads()).toEqual([second?.cid.toString()])
  })
})
