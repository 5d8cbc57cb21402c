/** PeerGuard and the gossip validator on a fake clock: rates, refusal windows, bans, logging once per window. */
import { afterEach, describe, expect, it, vi, type MockInstance } from 'vitest'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { PeerGuard, messageValidator } from '../../src/net/index.js'
import { DEFAULT_LIMITS, resolveLimits } from '../../src/sync/index.js'
import { ValidationError } from '../../src/index.js'

const limits = resolveLimits({ requestsPerSecond: 10, requestBurst: 5, messagesPerSecond: 2, messageBurst: 2, maxRefusals: 4, refusalWindowMs: 1000, banMs: 5000 })

function setup (exempt: string[] = []): { guard: PeerGuard, clock: { t: number }, bans: string[], warn: MockInstance<typeof console.warn> } {
  const clock = { t: 1_000_000 }
  const bans: string[] = []
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
  const guard = new PeerGuard(limits, { now: () => clock.t, onBan: p => bans.push(p), exempt: p => exempt.includes(p) })
  return { guard, clock, bans, warn }
}

afterEach(() => { vi.restoreAllMocks() })

describe('limits', () => {
  it('defaults: 1 MiB blocks, 4 MiB messages, 1000 CIDs per request; only rates are options', () => {
    expect(DEFAULT_LIMITS).toMatchObject({ maxBlockBytes: 1024 * 1024, maxMessageBytes: 4 * 1024 * 1024, maxRequestCids: 1000, requestsPerSecond: 50, requestBurst: 100 })
    expect(resolveLimits({ banMs: 1 }).banMs).toBe(1)
    expect(() => resolveLimits({ maxMessageBytes: 1 } as never)).toThrow(/protocol constant/)
    expect(() => resolveLimits({ bogus: 1 } as never)).toThrow(ValidationError)
    expect(() => resolveLimits({ requestsPerSecond: 0 })).toThrow(ValidationError)
    expect(() => resolveLimits({ banMs: Number.NaN })).toThrow(ValidationError)
  })
})

describe('PeerGuard', () => {
  it('admits a burst, then the rate, and refuses the excess', () => {
    const { guard, clock } = setup()
    const admitted = (n: number): number => Array.from({ length: n }, () => guard.admitRequest('p', '/x')).filter(Boolean).length
    expect(admitted(8)).toBe(5) // the burst
    clock.t += 200 // 10/s → 2 more tokens
    expect(admitted(3)).toBe(2)
    expect(guard.admitRequest('q', '/x')).toBe(true) // another peer has its own bucket
  })

  it('bans a peer that keeps exceeding, logs it once per window, and lets it back after banMs', () => {
    const { guard, clock, bans, warn } = setup()
    for (let i = 0; i < 5; i++) guard.admitRequest('p', '/x')
    expect(guard.admitRequest('p', '/x')).toBe(false)
    expect(guard.admitRequest('p', '/x')).toBe(false)
    expect(guard.admitRequest('p', '/x')).toBe(false)
    expect(bans).toEqual([])
    expect(warn.mock.calls.filter(c => String(c[1]).startsWith('refusing input from p')).length).toBe(1)
    expect(guard.admitRequest('p', '/x')).toBe(false) // the 4th refusal in the window
    expect(bans).toEqual(['p'])
    expect(warn.mock.calls.filter(c => String(c[1]).startsWith('disconnecting p')).length).toBe(1)
    clock.t += 4000
    expect(guard.admitRequest('p', '/x')).toBe(false) // still banned (buckets are full again)
    expect(guard.isBanned('p')).toBe(true)
    clock.t += 1001
    expect(guard.isBanned('p')).toBe(false)
    expect(guard.admitRequest('p', '/x')).toBe(true)
  })

  it('refusals spread over windows do not ban', () => {
    const { guard, clock, bans } = setup()
    for (let w = 0; w < 5; w++) {
      for (let i = 0; i < 3; i++) guard.refuse('p', 'junk')
      clock.t += 1000
    }
    expect(bans).toEqual([])
  })

  it('never bans an exempt peer (a relay), but still refuses its excess', () => {
    const { guard, bans } = setup(['relay'])
    for (let i = 0; i < 20; i++) guard.admitMessage('relay', '/t')
    expect(bans).toEqual([])
    expect(guard.admitMessage('relay', '/t')).toBe(false)
  })
})

describe('messageValidator', () => {
  const peer = '12D3KooWGRUVh9ZbqYJHuyXmXrSu6j7jhgaXvNQ3ZXQp4pGq9KvU'
  const msg = (data: Uint8Array, from = peer): Message => ({ type: 'signed', from: peerIdFromString(from), topic: '/t', data, sequenceNumber: 1n, signature: new Uint8Array(), key: undefined as never })

  it('ignores oversized messages, messages over the origin\'s rate and unsigned ones', async () => {
    const { guard } = setup()
    const validate = messageValidator('/t', guard, 100, 'me')
    const forwarder = peerIdFromString(peer)
    expect(await validate(forwarder, msg(new Uint8Array(101)))).toBe(TopicValidatorResult.Ignore)
    expect(await validate(forwarder, msg(new Uint8Array(100)))).toBe(TopicValidatorResult.Accept)
    expect(await validate(forwarder, msg(new Uint8Array(1)))).toBe(TopicValidatorResult.Accept)
    expect(await validate(forwarder, msg(new Uint8Array(1)))).toBe(TopicValidatorResult.Ignore) // burst of 2 used
    expect(await validate(forwarder, { type: 'unsigned', topic: '/t', data: new Uint8Array(1) })).toBe(TopicValidatorResult.Ignore)
  })
})
