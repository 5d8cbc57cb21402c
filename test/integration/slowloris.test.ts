/**
 * Slowloris and amplification over real libp2p (two directly connected nodes, so megabytes go
 * through without a relay's limits): a peer holding streams open without sending its request, a
 * peer that never reads its response, and a peer repeating a tiny `/kitedb/1/blocks` request
 * whose answer walks and sends megabytes. Each is bounded (`Limits`: `streamsPerPeer`,
 * `requestReadMs`, `responseDrainMs`, `answerBytesPerSecond`/`answerBurstBytes`), and another peer
 * is served meanwhile.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { lpStream } from '@libp2p/utils'
import { type Stream } from '@libp2p/interface'
import { createRelayNode, Libp2pTransport, type PeerNode } from '../../src/net/index.js'
import {
  BLOCKS_PROTOCOL, type LimitsOptions, Replica, SnapshotServer, encodeBlocksRequest, serveBlocks
} from '../../src/sync/index.js'
import { type CID, parseCid } from '../../src/crdt/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { eventually } from '../helpers/memory-transport.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const warnings = (): string[] => (console.warn as unknown as { mock: { calls: unknown[][] } }).mock.calls.map(c => c.slice(1).join(' '))
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

interface Pair { server: PeerNode, client: PeerNode, other: PeerNode, st: Libp2pTransport, ct: Libp2pTransport, ot: Libp2pTransport, stop: () => Promise<void> }

/** A server, a hostile client and an honest other client, both directly connected to the server. */
async function pair (limits?: LimitsOptions): Promise<Pair> {
  const [server, client, other] = await Promise.all([0, 1, 2].map(async () => await createRelayNode({ port: 0 })))
  const s = server
  await client.dial(s.getMultiaddrs()[0])
  await other.dial(s.getMultiaddrs()[0])
  const st = new Libp2pTransport(s, { relays: [], ...(limits !== undefined ? { limits } : {}) })
  const ct = new Libp2pTransport(client, { relays: [] })
  const ot = new Libp2pTransport(other, { relays: [] })
  return {
    server: s,
    client: client,
    other: other,
    st,
    ct,
    ot,
    stop: async () => {
      for (const t of [st, ct, ot]) t.close()
      await Promise.all([server, client, other].map(async n => { await n.stop() }))
    }
  }
}

const openStreams = (t: Libp2pTransport, peer: string): number => (t as unknown as { guard: { openStreams: (p: string) => number } }).guard.openStreams(peer)

afterEach(() => { vi.restoreAllMocks() })

describe('slowloris', () => {
  it('streams held open without a request (default limits): those over streamsPerPeer (16) are reset at once, the others once requestReadMs (5 s) has passed; another peer is served meanwhile', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {})
    const p = await pair()
    try {
      p.st.handle('/test/echo', async data => data)
      const streams: Stream[] = []
      for (let i = 0; i < 24; i++) streams.push(await p.client.dialProtocol(p.server.peerId, '/test/echo'))
      await eventually(() => streams.filter(s => s.status !== 'open').length >= 8, 1000, 'the streams over the bound to be reset')
      expect(streams.filter(s => s.status === 'open').length).toBe(16)
      expect(warnings().some(w => w.includes('over 16 streams open at once'))).toBe(true)
      // An honest peer is answered while the 16 are held.
      expect(await p.ot.request(p.server.peerId.toString(), '/test/echo', new Uint8Array([7]))).toEqual(new Uint8Array([7]))
      // The 16 are reset once requestReadMs has passed (each a refusal, logged once per window with the first).
      await eventually(() => streams.every(s => s.status !== 'open'), 9000, 'the held streams to be reset')
      expect(openStreams(p.st, p.client.peerId.toString())).toBe(0)
    } finally {
      await p.stop()
    }
  })

  it('a response the peer does not read is reset after responseDrainMs, freeing its stream', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {})
    const p = await pair({ responseDrainMs: 500 })
    try {
      p.st.handle('/test/big', async () => new Uint8Array(3 * 1024 * 1024))
      const client = p.client.peerId.toString()
      const stream = await p.client.dialProtocol(p.server.peerId, '/test/big')
      stream.pause() // reads nothing: yamux stops granting the server send window
      await lpStream(stream).write(new Uint8Array([1])) // the request
      await eventually(() => openStreams(p.st, client) === 1, 2000, 'the request to be taken')
      await eventually(() => openStreams(p.st, client) === 0, 3000, 'the undrained response to be reset')
      expect(warnings().some(w => w.includes('/test/big response not read within 500 ms'))).toBe(true)
      // A peer that reads gets the same answer.
      expect((await p.ot.request(p.server.peerId.toString(), '/test/big', new Uint8Array([1]))).byteLength).toBe(3 * 1024 * 1024)
    } finally {
      await p.stop()
    }
  })
})

describe('amplification', () => {
  it('a tiny /kitedb/1/blocks request repeated: the bytes answered per peer stay within its budget, and requests over it are refused before any work', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {})
    const rate = 512 * 1024
    const burst = 2 * 1024 * 1024
    const p = await pair({ answerBytesPerSecond: rate, answerBurstBytes: burst, requestsPerSecond: 1000, requestBurst: 1000, maxRefusals: 100_000 })
    try {
      // 40 blocks of about 100 KB in one chain: asking for the head with `have: []` walks and sends them all.
      const replica = await Replica.open(new MemoryStorage(), DB)
      for (let i = 0; i < 40; i++) await replica.commit([{ op: 'put', coll: 'c', id: `d${i}`, set: { text: String(i).repeat(100_000) } }])
      const head = parseCid((await replica.heads())[0]) as CID
      let walks = 0
      const getBlocks = replica.storage.getBlocks.bind(replica.storage)
      replica.storage.getBlocks = async cids => { if (cids[0] === head.toString()) walks++; return await getBlocks(cids) }
      const stop = serveBlocks(p.st, replica, new SnapshotServer(replica, 50))
      const request = encodeBlocksRequest({ db: DB, cids: [head], have: [] })
      const server = p.server.peerId.toString()
      let answered = 0
      let refused = 0
      let bytes = 0
      const started = Date.now()
      while (Date.now() - started < 3000) {
        try {
          bytes += (await p.ct.request(server, BLOCKS_PROTOCOL, request, { timeoutMs: 5000 })).byteLength
          answered++
        } catch {
          refused++
          await sleep(20)
        }
      }
      const elapsed = (Date.now() - started) / 1000
      const answer = bytes / answered
      expect(answer).toBeGreaterThan(3_000_000) // each answer is megabytes: the amplification
      expect(refused).toBeGreaterThan(0)
      expect(bytes).toBeLessThanOrEqual(burst + rate * elapsed + answer)
      expect(walks).toBe(answered) // a refused request costs no walk
      expect(warnings().some(w => w.includes(`over ${rate} bytes answered per second`))).toBe(true)
      // Another peer has its own budget.
      expect((await p.ot.request(server, BLOCKS_PROTOCOL, request)).byteLength).toBeGreaterThan(3_000_000)
      stop()
    } finally {
      await p.stop()
    }
  })
})
