/**
 * Hostile input over real libp2p: a peer flooding block requests is refused, then disconnected
 * and refused, while an honest replica keeps replicating; oversized gossip messages and stream
 * requests are dropped without disturbing what follows them.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { RPC } from '@libp2p/gossipsub/message'
import { type PrivateKey } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { createPeerNode, createRelayNode, Libp2pTransport, parseRelays, type PeerNode } from '../../src/net/index.js'
import { BLOCKS_PROTOCOL, encodeBlocksRequest, MAX_MESSAGE_BYTES } from '../../src/sync/index.js'
import { parseAddress } from '../../src/crdt/index.js'
import { KiteDB, MemoryStorageProvider, NetworkError, type Database } from '../../src/index.js'
import { eventually } from '../helpers/memory-transport.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()

const warnings = (): string[] => (console.warn as unknown as { mock: { calls: unknown[][] } }).mock.calls.map(c => c.slice(1).join(' '))

afterEach(() => { vi.restoreAllMocks() })

/** A gossipsub RPC carrying one message on `topic`, signed by `key` as gossipsub's StrictSign wants. */
async function signedRpc (key: PrivateKey, topic: string, data: Uint8Array): Promise<Uint8Array> {
  const unsigned = { from: peerIdFromPrivateKey(key).toMultihash().bytes, data, seqno: crypto.getRandomValues(new Uint8Array(8)), topic }
  const signed = RPC.Message.encode(unsigned)
  const toSign = new Uint8Array(14 + signed.byteLength)
  toSign.set(new TextEncoder().encode('libp2p-pubsub:'))
  toSign.set(signed, 14)
  const message = { ...unsigned, signature: await key.sign(toSign), key: publicKeyToProtobuf(key.publicKey) }
  return RPC.encode({ subscriptions: [], messages: [message] })
}

const ids = async (db: Database): Promise<string[]> =>
  (await (await db.initCollection('c')).find({}, undefined, { sort: { _id: 1 } })).map(d => d._id)

describe('limits over real libp2p', () => {
  it('a peer flooding block requests is refused, then disconnected and refused, while another replica keeps replicating', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {})
    const limits = { requestsPerSecond: 5, requestBurst: 10, maxRefusals: 20, banMs: 60_000 }
    const a = relay.track(await KiteDB.init('flooded', { encrypt: false, relays: relay.addr, node: 'l-a', storage: new MemoryStorageProvider(), replication: { republishMs: 300 }, limits }))
    await a.whenOnline()
    const ca = await a.initCollection('c')
    await ca.insertOne({ _id: 'first' })
    const b = relay.track(await KiteDB.open(a.address, { relays: relay.addr, node: 'l-b', storage: new MemoryStorageProvider(), replication: { republishMs: 300 } }))
    await eventually(async () => (await ids(b)).length === 1, 20_000, 'B to replicate before the flood')

    const evil = await createPeerNode({ relays: [relay.addr], webrtc: false })
    try {
      const transport = new Libp2pTransport(evil, { relays: parseRelays([relay.addr]), directConnections: false })
      const aPeer = a.peerId as string
      const request = encodeBlocksRequest({ db: parseAddress(a.address).toString(), cids: [parseAddress(a.address)], have: [] })
      let answered = 0
      let refused = 0
      const evilId = evil.peerId.toString()
      // Flood until A hangs up: the burst is answered, the excess refused, then the connection dropped.
      for (let i = 0; i < 200 && !warnings().some(w => w.startsWith(`disconnecting ${evilId}`)); i++) {
        try {
          await transport.request(aPeer, BLOCKS_PROTOCOL, request, { timeoutMs: 2000 })
          answered++
        } catch (err) {
          expect(err).toBeInstanceOf(NetworkError)
          refused++
        }
      }
      expect(answered).toBeGreaterThanOrEqual(10)
      expect(answered).toBeLessThan(20) // the burst and what trickled in at 5/s, not the flood
      expect(refused).toBeGreaterThanOrEqual(20)
      expect(warnings().filter(w => w.startsWith(`refusing input from ${evilId}`))).toHaveLength(1) // once per window, not per request
      await eventually(() => evil.getConnections(peerIdFromString(aPeer)).length === 0, 5000, 'A to hang up on the flooder')
      // Still refused: a new relayed connection is closed, so the request fails.
      await expect(transport.request(aPeer, BLOCKS_PROTOCOL, request, { timeoutMs: 3000 })).rejects.toThrow()

      // The honest replica is undisturbed.
      await ca.insert([{ _id: 'second' }, { _id: 'third' }])
      await eventually(async () => (await ids(b)).length === 3, 20_000, 'B to keep replicating')
      expect(await ids(b)).toEqual(['first', 'second', 'third'])
      transport.close()
    } finally {
      await evil.stop()
    }
  })

  describe('between two directly connected nodes', () => {
    // Two plain WebSocket-listening nodes (the relay factory, used here only as a dialable peer)
    // with a direct, unlimited connection, so megabytes go through without a relay's limits.
    let server: PeerNode
    let client: PeerNode
    let st: Libp2pTransport
    let ct: Libp2pTransport
    const setup = async (): Promise<void> => {
      server = await createRelayNode({ port: 0 })
      client = await createRelayNode({ port: 0 })
      await client.dial(server.getMultiaddrs()[0])
      st = new Libp2pTransport(server, { relays: [] })
      ct = new Libp2pTransport(client, { relays: [] })
    }
    const teardown = async (): Promise<void> => {
      st.close()
      ct.close()
      await Promise.all([server.stop(), client.stop()])
    }

    it('drops a gossip message over 4 MiB and delivers one at the limit', async () => {
      // js gossipsub cannot send an RPC over 4 MiB, so a hostile peer crafts and signs its own.
      vi.spyOn(console, 'warn').mockImplementation(() => {})
      const key = await generateKeyPair('Ed25519')
      const hostile = await createRelayNode({ port: 0, privateKey: key })
      await setup()
      try {
        const topic = '/test/big'
        const got: number[] = []
        st.subscribe(topic, data => { got.push(data.byteLength) })
        await hostile.dial(server.getMultiaddrs()[0])
        const send = async (size: number): Promise<void> => {
          const stream = await hostile.dialProtocol(server.peerId, '/meshsub/1.1.0')
          await lpStream(stream).write(await signedRpc(key, topic, new Uint8Array(size)))
        }
        await send(MAX_MESSAGE_BYTES + 1)
        await send(MAX_MESSAGE_BYTES)
        await send(10)
        await eventually(() => got.includes(10), 15_000, 'the small message')
        await eventually(() => warnings().some(w => w.includes(`a message of ${MAX_MESSAGE_BYTES + 1} bytes on ${topic}`)), 15_000, 'the refusal')
        await new Promise(resolve => setTimeout(resolve, 500))
        expect(got.sort((x, y) => x - y)).toEqual([10, MAX_MESSAGE_BYTES])
      } finally {
        await teardown()
        await hostile.stop()
      }
    })

    it('refuses a stream request over 4 MiB and still answers the next one', async () => {
      vi.spyOn(console, 'warn').mockImplementation(() => {})
      await setup()
      try {
        st.handle('/test/echo', async data => data.subarray(0, 4))
        const peer = server.peerId.toString()
        await expect(ct.request(peer, '/test/echo', new Uint8Array(MAX_MESSAGE_BYTES + 1))).rejects.toBeInstanceOf(NetworkError)
        expect(warnings().some(w => w.includes(`request over ${MAX_MESSAGE_BYTES} bytes`))).toBe(true)
        expect(await ct.request(peer, '/test/echo', new Uint8Array([1, 2, 3, 4, 5]))).toEqual(new Uint8Array([1, 2, 3, 4]))
      } finally {
        await teardown()
      }
    })
  })
})
