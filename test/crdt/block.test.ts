import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { InvalidBlockError } from '../../src/errors.js'
import { type Block, MAX_BLOCK_BYTES, cidOf, decodeBlock, encodeBlock } from '../../src/crdt/index.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'

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

describe('blocks', () => {
  it('round-trips through dag-cbor with a CID over the bytes', () => {
    const enc = encodeBlock(sample())
    const dec = decodeBlock(enc.bytes, enc.cid)
    expect(dec.cid.equals(enc.cid)).toBe(true)
    expect(dec.block).toEqual(sample())
    expect(enc.cid.toString()).toBe(cidOf(enc.bytes).toString())
    expect(enc.cid.version).toBe(1)
    expect(enc.cid.code).toBe(0x71)
  })

  it('links parents by CID', () => {
    const first = encodeBlock(sample())
    const second = encodeBlock({ ...sample(), parents: [first.cid] })
    expect(decodeBlock(second.bytes).block.parents.map(String)).toEqual([first.cid.toString()])
  })

  it('rejects bytes that do not match the expected CID', () => {
    const a = encodeBlock(sample())
    const b = encodeBlock({ ...sample(), hlc: { t: 1, c: 0, r: 'z' } })
    expect(() => decodeBlock(a.bytes, b.cid)).toThrow(InvalidBlockError)
  })

  it('rejects invalid blocks on encode', () => {
    expect(() => encodeBlock({ ...sample(), ops: [] })).toThrow(InvalidBlockError)
    expect(() => encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: 'a', set: { $bad: 1 } }] })).toThrow(/field name/)
    expect(() => encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: '', set: {} }] })).toThrow(/document id/)
    expect(() => encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: 'a', set: { x: Number.NaN } }] })).toThrow(InvalidBlockError)
    expect(() => encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: 'a', set: { big: 'x'.repeat(MAX_BLOCK_BYTES) } }] })).toThrow(/limit/)
  })

  it('decoding is total: random bytes give a valid block or InvalidBlockError, nothing else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), bytes => {
      try {
        decodeBlock(bytes)
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidBlockError)
      }
    }), { numRuns: 2000 })
  })

  it('decoding is total on mutations of a valid block', () => {
    const valid = encodeBlock(sample()).bytes
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), muts => {
      const bytes = Uint8Array.from(valid)
      for (const [i, v] of muts) bytes[i] = v
      try {
        const dec = decodeBlock(bytes)
        // Whatever still decodes must re-encode to a valid block.
        expect(() => encodeBlock(dec.block)).not.toThrow()
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidBlockError)
      }
    }), { numRuns: 2000 })
  })
})

describe('large blocks', () => {
  it('keeps ops beyond 512 KiB in chunks, each under the block limit, and reassembles them', async () => {
    const { CHUNK_TARGET_BYTES, assembleOps, decodeChunk } = await import('../../src/crdt/index.js')
    const ops = Array.from({ length: 6000 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${i}`, set: { text: 'x'.repeat(300), i } }))
    const enc = encodeBlock({ ...sample(), ops })
    expect(enc.chunks?.length).toBeGreaterThanOrEqual(3)
    expect(enc.bytes.byteLength).toBeLessThanOrEqual(CHUNK_TARGET_BYTES + 64 * 1024)
    for (const c of enc.chunks ?? []) expect(c.bytes.byteLength).toBeLessThanOrEqual(MAX_BLOCK_BYTES)
    const dec = decodeBlock(enc.bytes, enc.cid)
    expect(dec.block.chunks?.map(String)).toEqual(enc.chunks?.map(c => c.cid.toString()))
    const all = assembleOps(dec.block, (enc.chunks ?? []).map(c => decodeChunk(c.bytes, c.cid)))
    expect(all).toEqual(ops)
    // A chunk under another CID, or a block posing as a chunk, is rejected.
    const [first, second] = enc.chunks ?? []
    expect(() => decodeChunk((first as { bytes: Uint8Array }).bytes, (second as unknown as { cid: never }).cid)).toThrow(InvalidBlockError)
    expect(() => decodeChunk(enc.bytes, enc.cid)).toThrow(InvalidBlockError)
  })

  it('refuses a single document over the block limit', () => {
    expect(() => encodeBlock({ ...sample(), ops: [{ op: 'put', coll: 'c', id: 'big', set: { x: 'y'.repeat(MAX_BLOCK_BYTES) } }] })).toThrow(/limit/)
  })
})
