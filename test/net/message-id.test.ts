/** The fast message id gossipsub drops duplicates by before verifying signatures (src/net/node.ts). */
import { describe, expect, it } from 'vitest'
import { fastMessageId } from '../../src/net/index.js'

const from = Uint8Array.from({ length: 38 }, (_, i) => i)
const seqno = Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 2])

describe('fastMessageId', () => {
  it('names a message by its origin and sequence number, whatever its data', () => {
    const id = fastMessageId({ from, seqno })
    expect(fastMessageId({ from: from.slice(), seqno: seqno.slice() })).toBe(id)
    expect(fastMessageId({ from, seqno: Uint8Array.from([0, 0, 0, 0, 0, 0, 1, 3]) })).not.toBe(id)
    expect(fastMessageId({ from: Uint8Array.from({ length: 38 }, (_, i) => i + 1), seqno })).not.toBe(id)
  })

  it('gives a malformed message (no origin or sequence number, either of the wrong size) an id no valid one has', () => {
    for (const msg of [{}, { from }, { seqno }, { from, seqno: seqno.subarray(1) }, { from: new Uint8Array(4 * 1024 * 1024), seqno }, { from: null, seqno: null }]) {
      expect(fastMessageId(msg)).toBe('')
    }
  })
})
