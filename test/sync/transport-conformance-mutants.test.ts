/**
 * The transport conformance suite can fail: each broken `MemoryTransport` here (one contract
 * broken on purpose) must fail the cases named, while the unbroken one passes them all
 * (test/sync/transport-conformance.test.ts).
 */
import { describe, expect, it } from 'vitest'
import { type PeerConnection, type SubscribeOptions } from '../../src/sync/index.js'
import { transportConformance } from '../../src/sync/transport-conformance.js'
import { MemoryHub, MemoryTransport } from '../helpers/memory-transport.js'

type Handler = (data: Uint8Array, from: string) => void
/** What a mutant may reach of MemoryTransport's private state. */
interface Inside { handlers: Map<string, Set<Handler>> }
const inside = (t: MemoryTransport): Inside => t as unknown as Inside

/** `makePeers` for transports of class `Kind` on one hub. */
function peersOf (Kind: typeof MemoryTransport) {
  return async (n: number) => {
    const hub = new MemoryHub()
    const peers = Array.from({ length: n }, (_, i) => {
      const t = new Kind(hub, `peer-${i}`)
      hub.peers.set(t.peerId, t)
      return t
    })
    return { peers, cleanup: async () => { for (const p of peers) hub.leave(p.peerId) } }
  }
}

const mutants: Array<{ broken: string, Kind: typeof MemoryTransport, fails: string[] }> = [
  {
    broken: 'publish delivers to the publisher too',
    Kind: class extends MemoryTransport {
      override async publish (topic: string, data: Uint8Array): Promise<void> {
        await super.publish(topic, data)
        for (const h of inside(this).handlers.get(topic) ?? []) setTimeout(() => { h(Uint8Array.from(data), this.peerId) }, 0)
      }
    },
    fails: ['publish reaches every subscriber']
  },
  {
    broken: 'messages arrive with the id of a forwarder as `from`',
    Kind: class extends MemoryTransport {
      override subscribe (topic: string, handler: Handler, options?: SubscribeOptions): () => void {
        return super.subscribe(topic, data => { handler(data, 'a-relay') }, options)
      }
    },
    fails: ['publish reaches every subscriber']
  },
  {
    broken: 'validate is ignored',
    Kind: class extends MemoryTransport {
      override subscribe (topic: string, handler: Handler): () => void { return super.subscribe(topic, handler) }
    },
    fails: ['subscribe with validate']
  },
  {
    broken: 'unsubscribing does nothing',
    Kind: class extends MemoryTransport {
      override subscribe (topic: string, handler: Handler, options?: SubscribeOptions): () => void {
        super.subscribe(topic, handler, options)
        return () => {}
      }
    },
    fails: ['the function subscribe returns unsubscribes', 'subscribers lists the peers']
  },
  {
    broken: 'subscribers lists this node too',
    Kind: class extends MemoryTransport {
      override subscribers (topic: string): string[] { return [...super.subscribers(topic), this.peerId] }
    },
    fails: ['subscribers lists the peers']
  },
  {
    broken: 'removing an onSubscriber handler does nothing',
    Kind: class extends MemoryTransport {
      override onSubscriber (topic: string, handler: (peer: string) => void): () => void {
        super.onSubscriber(topic, handler)
        return () => {}
      }
    },
    fails: ['onSubscriber reports a peer']
  },
  {
    broken: 'a handler\'s rejection reaches the requester as it is, not as NetworkError',
    Kind: class extends MemoryTransport {
      override async request (peer: string, protocol: string, data: Uint8Array, options?: { timeoutMs?: number }): Promise<Uint8Array> {
        try {
          return await super.request(peer, protocol, data, options)
        } catch (err) {
          throw (err as Error).cause ?? err
        }
      }
    },
    fails: ['a request whose handler rejects']
  },
  {
    broken: 'timeoutMs is ignored',
    Kind: class extends MemoryTransport {
      override async request (peer: string, protocol: string, data: Uint8Array): Promise<Uint8Array> {
        return await super.request(peer, protocol, data, { timeoutMs: 3_600_000 })
      }
    },
    fails: ['a request not answered within timeoutMs']
  },
  {
    broken: 'removing a request handler does nothing',
    Kind: class extends MemoryTransport {
      override handle (protocol: string, handler: (data: Uint8Array, from: string) => Promise<Uint8Array>): () => void {
        super.handle(protocol, handler)
        return () => {}
      }
    },
    fails: ['the function handle returns removes the handler']
  },
  {
    broken: 'connection says every peer is connected directly',
    Kind: class extends MemoryTransport {
      override connection (): PeerConnection { return { kind: 'direct', transport: 'memory' } }
    },
    fails: ['connection describes how this node reaches a peer']
  }
]

describe('the transport conformance suite fails broken transports', () => {
  for (const { broken, Kind, fails } of mutants) {
    it(broken, async () => {
      const failed: string[] = []
      const named = transportConformance(peersOf(Kind), { timeoutMs: 1000, requestTimeoutMs: 100 }).filter(c => fails.some(f => c.name.startsWith(f)))
      expect(named.length).toBe(fails.length)
      for (const c of named) {
        try { await c.run() } catch { failed.push(c.name) }
      }
      for (const name of fails) expect(failed.filter(f => f.startsWith(name)), `cases failed: ${JSON.stringify(failed)}`).not.toEqual([])
    }, 60_000)
  }
})
