import { afterEach, describe, expect, it, vi } from 'vitest'
import { Coalesced } from '../../src/sync/coalesce.js'

afterEach(() => { vi.useRealTimers() })

describe('Coalesced', () => {
  it('calls at once, then at most once per interval however often it runs, and not after cancel', async () => {
    vi.useFakeTimers()
    let calls = 0
    const c = new Coalesced(1000, () => { calls++ })
    c.run()
    await vi.advanceTimersByTimeAsync(0)
    expect(calls).toBe(1)
    for (let i = 0; i < 50; i++) { c.run(); await vi.advanceTimersByTimeAsync(20) } // 1 s of runs
    expect(calls).toBe(2) // the one pending since the first ran 1000 ms after it
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls).toBe(2) // nothing was asked since
    c.run()
    c.cancel()
    await vi.advanceTimersByTimeAsync(5000)
    expect(calls).toBe(2)
  })
})
