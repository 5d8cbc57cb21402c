/** PeerGuard's stream count and answer budget on a fake clock (the libp2p side: test/integration/slowloris.test.ts). */
import { afterEach, describe, expect, it, vi } from 'vitest'
import fc from 'fast-check'
import { PeerGuard } from '../../src/net/index.js'
import { resolveLimits } from '../../src/sync/index.js'

afterEach(() => { vi.restoreAllMocks() })

function setup (): { guard: PeerGuard, clock: { t: number } } {
  vi.spyOn(console, 'warn').mockImplementation(() => {})
  const clock = { t: 1_000_000 }
  const limits = resolveLimits({ streamsPerPeer: 3, answerBytesPerSecond: 1000, answerBurstBytes: 5000, maxRefusals: 1_000_000 })
  return { guard: new PeerGuard(limits, { now: () => clock.t }), clock }
}

describe('PeerGuard: streams and answers', () => {
  it('admits streamsPerPeer streams per peer at once, and another once one ends', () => {
    const { guard } = setup()
    expect([1, 2, 3, 4].map(() => guard.openStream('p', '/x'))).toEqual([true, true, true, false])
    expect(guard.openStream('q', '/x')).toBe(true) // another peer counts apart
    guard.closeStream('p')
    expect(guard.openStream('p', '/x')).toBe(true)
    expect(guard.openStreams('p')).toBe(3)
  })

  it('answers while the budget is above zero; a spent budget refuses until it refills at the rate', () => {
    const { guard, clock } = setup()
    expect(guard.admitAnswer('p', '/x')).toBe(true)
    guard.chargeAnswer('p', 4000)
    expect(guard.admitAnswer('p', '/x')).toBe(true) // 1000 left
    guard.chargeAnswer('p', 3000) // into debt by one response
    expect(guard.admitAnswer('p', '/x')).toBe(false)
    clock.t += 1999
    expect(guard.admitAnswer('p', '/x')).toBe(false)
    clock.t += 2
    expect(guard.admitAnswer('p', '/x')).toBe(true)
    expect(guard.admitAnswer('q', '/x')).toBe(true)
  })

  it('property: over any schedule of requests, the bytes answered stay within burst + rate × time + one response', () => {
    fc.assert(fc.property(fc.array(fc.record({ wait: fc.integer({ min: 0, max: 500 }), size: fc.integer({ min: 1, max: 4000 }) }), { maxLength: 200 }), schedule => {
      const { guard, clock } = setup()
      const start = clock.t
      let answered = 0
      for (const { wait, size } of schedule) {
        clock.t += wait
        if (!guard.admitAnswer('p', '/x')) continue
        guard.chargeAnswer('p', size)
        answered += size
        expect(answered).toBeLessThanOrEqual(5000 + (clock.t - start) + 4000)
      }
    }), { numRuns: 300 })
  })
})
