import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { HybridClock, MAX_CLOCK_AHEAD_MS, MAX_HLC_COUNTER, MAX_HLC_TIME, compareHlc, isValidHlcTime, type Hlc } from '../../src/crdt/index.js'

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

  it('a full counter carries into the wall time instead of overflowing', () => {
    const clock = new HybridClock('me', () => 1000)
    clock.observe({ t: 1000, c: MAX_HLC_COUNTER, r: 'x' })
    const next = clock.tick()
    expect(next).toEqual({ t: 1001, c: 0, r: 'me' })
    expect(compareHlc(next, { t: 1000, c: MAX_HLC_COUNTER, r: 'x' })).toBeGreaterThan(0)
  })

  it('no remote timestamp, however large or malformed, makes a tick invalid or run more than the bound ahead of the wall clock', () => {
    const huge = fc.oneof(
      fc.constantFrom(2 ** 53 - 1, 2 ** 53, Number.MAX_VALUE, Infinity, NaN, -1, MAX_HLC_TIME, MAX_HLC_TIME + 1, MAX_HLC_COUNTER, MAX_HLC_COUNTER + 1),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.double()
    )
    fc.assert(fc.property(
      fc.array(fc.record({ t: huge, c: huge, r: fc.constantFrom('x', 'y') }), { minLength: 1, maxLength: 10 }),
      fc.integer({ min: 0, max: 4e12 }),
      fc.integer({ min: 1, max: 50 }),
      (remotes, wall, ticks) => {
        const clock = new HybridClock('me', () => wall)
        for (const r of remotes) clock.observe(r)
        let last: Hlc | undefined
        for (let i = 0; i < ticks; i++) {
          const t = clock.tick()
          expect(isValidHlcTime(t.t, t.c)).toBe(true)
          expect(t.t).toBeLessThanOrEqual(wall + MAX_CLOCK_AHEAD_MS + 1)
          if (last !== undefined) expect(compareHlc(t, last)).toBeGreaterThan(0)
          last = t
        }
        // Within the bound, a tick still orders after every valid remote timestamp.
        for (const r of remotes) {
          if (isValidHlcTime(r.t, r.c) && r.t <= wall + MAX_CLOCK_AHEAD_MS) expect(compareHlc(last as Hlc, r)).toBeGreaterThan(0)
        }
      }))
  })

  it('a wall clock that reads garbage still gives valid ticks', () => {
    for (const wall of [NaN, -5, Infinity, 1e300]) {
      const clock = new HybridClock('me', () => wall)
      const a = clock.tick()
      const b = clock.tick()
      expect(isValidHlcTime(a.t, a.c) && isValidHlcTime(b.t, b.c)).toBe(true)
      expect(compareHlc(b, a)).toBeGreaterThan(0)
    }
  })

  it('rejects an empty replica id', () => {
    expect(() => new HybridClock('')).toThrow(TypeError)
  })
})
