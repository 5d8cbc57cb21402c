/**
 * The want list on a fake clock: bounds per peer and in total, attribution (a peer is asked only
 * for what it announced, and stops being asked for what it showed it lacks), fair eviction, the
 * order of asking, and missing parents becoming unavailable, then asked again.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { UNAVAILABLE_ROUNDS, WantList } from '../../src/sync/want-list.js'

const options = { maxPerPeer: 4, maxTotal: 10, unavailableAfterMs: 1000, retryMs: 5000 }

function setup (over: Partial<typeof options> = {}): { list: WantList, clock: { t: number } } {
  const clock = { t: 1_000_000 }
  return { list: new WantList({ ...options, ...over, now: () => clock.t }), clock }
}

const cid = (peer: string, i: number): string => `${peer}-${i}`

describe('WantList', () => {
  it('holds at most maxPerPeer announced wants per peer and maxTotal in all', () => {
    const { list } = setup()
    const outcomes = Array.from({ length: 6 }, (_, i) => list.announce(cid('a', i), 'a'))
    expect(outcomes).toEqual(['wanted', 'wanted', 'wanted', 'wanted', 'refused', 'refused'])
    expect(list.wantsOf('a')).toBe(4)
    for (const p of ['b', 'c', 'd']) for (let i = 0; i < 4; i++) list.announce(cid(p, i), p)
    expect(list.announcedCount).toBeLessThanOrEqual(10)
    expect(list.wantsOf('d')).toBeLessThanOrEqual(4)
  })

  it('a want announced by two peers counts once in all, and against each', () => {
    const { list } = setup()
    expect(list.announce('x', 'a')).toBe('wanted')
    expect(list.announce('x', 'b')).toBe('wanted')
    expect(list.announcedCount).toBe(1)
    expect(list.wantsOf('a')).toBe(1)
    expect(list.wantsOf('b')).toBe(1)
  })

  it('a full list evicts the newest want of the peer holding the most, for a trusted peer or one holding fewer', () => {
    const { list } = setup({ maxPerPeer: 8, maxTotal: 10 })
    for (let i = 0; i < 8; i++) list.announce(cid('flood', i), 'flood')
    list.announce(cid('b', 0), 'b')
    list.announce(cid('b', 1), 'b')
    expect(list.announcedCount).toBe(10)
    // c holds none: the flooder (8) holds more than one more than c (0) does.
    expect(list.announce(cid('c', 0), 'c')).toBe('wanted')
    expect(list.has(cid('flood', 7))).toBe(false)
    expect(list.has(cid('flood', 0))).toBe(true)
    // the flooder cannot evict a peer holding fewer than it
    expect(list.announce(cid('flood', 8), 'flood')).toBe('refused')
    // a trusted peer gets in even against a peer holding as few as it
    list.trust('t')
    expect(list.announce(cid('t', 0), 't')).toBe('wanted')
    expect(list.announcedCount).toBe(10)
  })

  it('never evicts a trusted peer\'s wants for an untrusted one', () => {
    const { list } = setup({ maxPerPeer: 10, maxTotal: 10 })
    list.trust('t')
    for (let i = 0; i < 10; i++) list.announce(cid('t', i), 't')
    expect(list.announce(cid('u', 0), 'u')).toBe('refused')
    expect(list.wantsOf('t')).toBe(10)
  })

  it('a peer answering completely without a want stops being its source; without sources it is forgotten', () => {
    const { list } = setup()
    list.announce('x', 'a')
    list.announce('x', 'b')
    list.syncMissing([])
    list.answered('a', ['x'], new Set(), true)
    expect(list.has('x')).toBe(true)
    expect(list.wantsOf('a')).toBe(0)
    list.answered('b', ['x'], new Set(), false) // cut short by the message budget: no judgement
    expect(list.has('x')).toBe(true)
    list.answered('b', ['x'], new Set(), true)
    expect(list.has('x')).toBe(false)
    expect(list.announcedCount).toBe(0)
  })

  it('dropPeer forgets what only that peer announced', () => {
    const { list } = setup()
    list.announce('x', 'a')
    list.announce('y', 'a')
    list.announce('y', 'b')
    list.dropPeer('a')
    expect(list.has('x')).toBe(false)
    expect(list.has('y')).toBe(true)
    expect(list.sources()).toEqual(['b'])
  })

  it('asks a peer for chunks and open wants, then missing parents alternating with its own announced wants, never another peer\'s', () => {
    const { list } = setup({ maxPerPeer: 10, maxTotal: 20 })
    for (let i = 0; i < 3; i++) list.announce(cid('a', i), 'a')
    list.announce(cid('b', 0), 'b')
    list.wantOpen('chunk', 'chunk')
    list.wantOpen('asked', 'headset')
    list.syncMissing(['p0', 'p1'])
    expect(list.forPeer('a', 100)).toEqual(['chunk', 'asked', 'p0', 'a-0', 'p1', 'a-1', 'a-2'])
    expect(list.forPeer('b', 100)).toEqual(['chunk', 'asked', 'p0', 'b-0', 'p1'])
    expect(list.forPeer('c', 100)).toEqual(['chunk', 'asked', 'p0', 'p1'])
    expect(list.forPeer('a', 3)).toEqual(['chunk', 'asked', 'p0'])
  })

  it('an open want (a chunk, an app\'s ask) is never refused and counts against no one', () => {
    const { list } = setup({ maxPerPeer: 1, maxTotal: 1 })
    list.announce('x', 'a')
    list.wantOpen('x', 'chunk')
    expect(list.wantsOf('a')).toBe(0)
    expect(list.announcedCount).toBe(0)
    for (let i = 0; i < 50; i++) list.wantOpen(`c${i}`, 'chunk')
    expect(list.size).toBe(51)
  })

  it('a missing parent no peer serves becomes unavailable after the rounds and the time, is asked again later and of new peers, and is forgotten once stored', () => {
    const { list, clock } = setup()
    const round = (peer: string, got: string[] = []): string[] => {
      list.syncMissing(['p'].filter(c => !got.includes(c)))
      const ask = list.forPeer(peer, 10)
      list.answered(peer, ask, new Set(got), true)
      return list.endRound()
    }
    for (let i = 0; i < UNAVAILABLE_ROUNDS; i++) expect(round('a')).toEqual([])
    expect(list.isUnavailable('p')).toBe(false) // enough rounds, not enough time
    clock.t += 1000
    expect(round('a')).toEqual(['p'])
    expect(list.isUnavailable('p')).toBe(true)
    expect(list.unavailable()).toEqual(['p'])
    list.syncMissing(['p'])
    expect(list.forPeer('a', 10)).toEqual([]) // not due yet
    clock.t += 5000
    expect(list.retryDue()).toBe(true)
    expect(list.forPeer('a', 10)).toEqual(['p'])
    round('a')
    expect(list.forPeer('a', 10)).toEqual([])
    list.retryUnavailable() // a new peer appeared
    expect(list.forPeer('b', 10)).toEqual(['p'])
    expect(list.syncMissing([])).toEqual(['p']) // it arrived
    expect(list.unavailable()).toEqual([])
  })

  it('a failed request counts no miss: a parent is unavailable only when peers answered without it', () => {
    const { list, clock } = setup()
    for (let i = 0; i < 10; i++) {
      list.syncMissing(['p'])
      list.forPeer('a', 10)
      list.endRound() // no answer at all
      clock.t += 1000
    }
    expect(list.isUnavailable('p')).toBe(false)
  })

  it('property: under any sequence of announcements, answers and drops, the bounds hold and a peer is asked only for its own, open or missing', () => {
    const peers = ['a', 'b', 'c', 'd', 'e', 'f']
    const step = fc.oneof(
      fc.record({ k: fc.constant('announce' as const), peer: fc.constantFrom(...peers), cid: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ k: fc.constant('open' as const), cid: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ k: fc.constant('answer' as const), peer: fc.constantFrom(...peers), got: fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 3 }), complete: fc.boolean() }),
      fc.record({ k: fc.constant('trust' as const), peer: fc.constantFrom(...peers) }),
      fc.record({ k: fc.constant('drop' as const), peer: fc.constantFrom(...peers) }),
      fc.record({ k: fc.constant('delete' as const), cid: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ k: fc.constant('round' as const), missing: fc.array(fc.integer({ min: 100, max: 110 }), { maxLength: 4 }) })
    )
    fc.assert(fc.property(fc.array(step, { maxLength: 120 }), steps => {
      const { list } = setup({ maxPerPeer: 5, maxTotal: 12 })
      const announcedBy = new Map<string, Set<string>>()
      const open = new Set<string>()
      let missing: string[] = []
      for (const s of steps) {
        if (s.k === 'announce') {
          if (list.announce(`c${s.cid}`, s.peer) === 'wanted' && !open.has(`c${s.cid}`)) {
            let set = announcedBy.get(`c${s.cid}`)
            if (set === undefined) announcedBy.set(`c${s.cid}`, set = new Set())
            set.add(s.peer)
          }
        } else if (s.k === 'open') {
          list.wantOpen(`c${s.cid}`, 'head')
          open.add(`c${s.cid}`)
        } else if (s.k === 'answer') {
          const ask = list.forPeer(s.peer, 50)
          for (const c of ask) {
            const mayAsk = open.has(c) || missing.includes(c) || (announcedBy.get(c)?.has(s.peer) ?? false)
            expect(mayAsk).toBe(true)
          }
          list.answered(s.peer, ask, new Set(s.got.map(g => `c${g}`)), s.complete)
        } else if (s.k === 'trust') {
          list.trust(s.peer)
        } else if (s.k === 'drop') {
          list.dropPeer(s.peer)
        } else if (s.k === 'delete') {
          list.delete(`c${s.cid}`)
          open.delete(`c${s.cid}`)
          announcedBy.delete(`c${s.cid}`)
        } else {
          list.endRound()
          missing = s.missing.map(m => `c${m}`)
          list.syncMissing(missing)
        }
        expect(list.announcedCount).toBeLessThanOrEqual(12)
        for (const p of peers) expect(list.wantsOf(p)).toBeLessThanOrEqual(5)
      }
    }), { numRuns: 300 })
  })
})
