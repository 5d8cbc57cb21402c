import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { HybridClock, compareHlc, type Hlc } from '../../src/crdt/index.js'

describe('HLC', () => {
  it('orders by wall time, then counter, then replica id', () => {
    const a: Hlc = { t: 10, c: 5, r: 'b' }
    expect(compareHlc(a, { t: 11, c: 0, r: 'a' })).toBeLessThan(0)
    expect(compareHlc(a, { t: 10, c: 6, r: 'a' })).toBeLessThan(0)
    expect(compareHlc(a, { t: 10, c: 5, r: 'c' })).toBeLessThan(0)
    expect(compareHlc(a, { t: 10, c: 5, r: 'b' })).toBe(0)
    expect(compareHlc({ t: 10, c: 5, r: 'c' }, a)).toBeGreaterThan(0)
  })

  it('ticks strictly increase even when the wall clock stands still or goes back', () => {
    let now = 1000
    const clock = new HybridClock('r1', () => now)
    const a = clock.tick()
    const b = clock.tick()
    now = 500
    const c = clock.tick()
    expect(compareHlc(a, b)).toBeLessThan(0)
    expect(compareHlc(b, c)).toBeLessThan(0)
    expect(c.t).toBe(1000)
    now = 2000
    expect(clock.tick()).toEqual({ t: 2000, c: 0, r: 'r1' })
  })

  it('orders every tick after every observed remote timestamp', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ t: fc.integer({ min: 0, max: 1e6 }), c: fc.nat(50), r: fc.constantFrom('x', 'y') }), { maxLength: 20 }),
      fc.integer({ min: 0, max: 1e6 }),
      (remotes, wall) => {
        const clock = new HybridClock('me', () => wall)
        for (const r of remotes) clock.observe(r)
        const t = clock.tick()
        for (const r of remotes) expect(compareHlc(t, r)).toBeGreaterThan(0)
      }))
  })

  it('rejects an empty replica id', () => {
    expect(() => new HybridClock('')).toThrow(TypeError)
  })
})
