/** Connection liveness (src/net/liveness.ts): what is pinged how often, and what a failed ping does. */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type Connection, type Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { monitorConnections } from '../../src/net/liveness.js'

interface FakeConn { conn: Connection, pings: number, aborted: Error | undefined }

/** A connection to `addr` whose every ping stream fails with `error` (counted). */
function fakeConn (addr: string, error: Error): FakeConn {
  const fake: FakeConn = { pings: 0, aborted: undefined, conn: undefined as unknown as Connection }
  fake.conn = {
    status: 'open',
    remoteAddr: multiaddr(addr),
    limits: undefined,
    newStream: async () => { fake.pings++; throw error },
    abort: (err: Error) => { fake.aborted = err }
  } as unknown as Connection
  return fake
}

const unsupported = Object.assign(new Error('protocol selection failed'), { name: 'UnsupportedProtocolError' })
const relay = '/ip4/127.0.0.1/tcp/9091/ws/p2p/12D3KooWLmpgmUkgAvFbNDrk3zszDRuzhTmXBwD9pdMVKmkrJ8zG'
const direct = '/ip4/127.0.0.1/tcp/9091/ws/p2p/12D3KooWLmpgmUkgAvFbNDrk3zszDRuzhTmXBwD9pdMVKmkrJ8zG/p2p-circuit/webrtc/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'

afterEach(() => { vi.useRealTimers() })

describe('monitorConnections', () => {
  it('pings a relay connection every interval, a direct WebRTC one every directEvery-th; a peer not speaking ping is alive', async () => {
    vi.useFakeTimers()
    const conns = [fakeConn(relay, unsupported), fakeConn(direct, unsupported)]
    const stop = monitorConnections({ getConnections: () => conns.map(c => c.conn) } as unknown as Libp2p, { intervalMs: 5000, directEvery: 3, timeout: { minTimeout: 4000, maxTimeout: 8000 } })
    await vi.advanceTimersByTimeAsync(30_000)
    stop()
    expect(conns[0].pings).toBe(6)
    expect(conns[1].pings).toBe(2)
    expect(conns.map(c => c.aborted)).toEqual([undefined, undefined])
  })

  it('aborts a connection whose ping fails', async () => {
    vi.useFakeTimers()
    const dead = fakeConn(relay, new Error('stream reset'))
    const stop = monitorConnections({ getConnections: () => [dead.conn] } as unknown as Libp2p, { intervalMs: 5000, directEvery: 3, timeout: { minTimeout: 4000, maxTimeout: 8000 } })
    await vi.advanceTimersByTimeAsync(5000)
    stop()
    expect(dead.aborted?.message).toBe('stream reset')
  })
})
