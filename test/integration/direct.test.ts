/**
 * Direct WebRTC connections over real libp2p in Node: a direct connection on which this side
 * cannot open streams (left so when the other side's dial hung: the init channel race of
 * webrtc-init.test.ts, still met with an unpatched @libp2p/webrtc) is closed, and a new one is
 * dialled at once rather than after the 5–10 s of upgrade backoff and fallback; and once two peers
 * are directly connected, the relayed circuits between them are closed, but not while they carry
 * a request.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { type Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Libp2pTransport, type Libp2pTransportOptions, type PeerNode, createPeerNode, parseRelays } from '../../src/net/index.js'
import { eventually } from '../helpers/memory-transport.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()
const nodes: PeerNode[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

const ECHO = '/kitedb-test/echo/1'
const TOPIC = '/kitedb/1/test-direct' // the relay joins /kitedb/1/… topics

const directTo = (node: PeerNode, peer: string): Connection[] =>
  node.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open' && c.limits == null)
/** relayed circuits: limited by the relay (a direct WebRTC connection's address names the relay too) */
const circuitsTo = (node: PeerNode, peer: string): Connection[] =>
  node.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open' && c.limits != null)

/** Two peer nodes on the relay, each with a transport (`options`) answering ECHO and subscribed to TOPIC. */
async function twoPeers (options: Partial<Libp2pTransportOptions>): Promise<{ na: PeerNode, nb: PeerNode, ta: Libp2pTransport, tb: Libp2pTransport, a: string, b: string }> {
  const [na, nb] = await Promise.all([createPeerNode({ relays: [relay.addr] }), createPeerNode({ relays: [relay.addr] })])
  nodes.push(na, nb)
  const all = { relays: parseRelays([relay.addr]), ...options }
  const [ta, tb] = [new Libp2pTransport(na, all), new Libp2pTransport(nb, all)]
  for (const t of [ta, tb]) {
    t.handle(ECHO, async data => data)
    t.subscribe(TOPIC, () => {})
  }
  return { na, nb, ta, tb, a: na.peerId.toString(), b: nb.peerId.toString() }
}

/** Publish from both until each hears the other through the relay and the peer with the smaller id has dialled WebRTC. */
async function untilDirect ({ na, nb, ta, tb, a, b }: Awaited<ReturnType<typeof twoPeers>>): Promise<void> {
  await eventually(async () => {
    await ta.publish(TOPIC, new Uint8Array([1]))
    await tb.publish(TOPIC, new Uint8Array([2]))
    return directTo(nb, a).length > 0 && directTo(na, b).length > 0
  }, 30_000, 'a direct connection')
}

describe('direct connections', () => {
  it('a direct connection that cannot open a stream is closed and a new one dialled at once', async () => {
    // Backoff and fallback far longer than the test: only the immediate redial can bring a new connection.
    const peers = await twoPeers({ upgradeFallbackMs: 120_000, upgradeBackoffMs: 120_000 })
    const { nb, tb, a } = peers
    await untilDirect(peers)
    const dead = directTo(nb, a)[0]
    // This side's streams on it never negotiate (until their signal gives up).
    dead.newStream = async (_protocol: string | string[], opts?: { signal?: AbortSignal }) => await new Promise((_resolve, reject) => {
      opts?.signal?.addEventListener('abort', () => { reject(new Error('stream negotiation hung')) })
    })
    const echoed = await tb.request(a, ECHO, new Uint8Array([7, 7]), { timeoutMs: 15_000 })
    expect([...echoed]).toEqual([7, 7]) // over the relayed connection meanwhile
    await eventually(() => dead.status !== 'open', 5000, 'the dead connection to close')
    await eventually(() => directTo(nb, a).some(c => c !== dead), 10_000, 'a new direct connection')
    expect([...await tb.request(a, ECHO, new Uint8Array([8]), { timeoutMs: 10_000 })]).toEqual([8])
    expect(tb.connection(a).kind).toBe('direct')
  }, 60_000)

  it('once two peers are directly connected, the relayed circuits between them are closed, but not while they carry a request', async () => {
    const lingerMs = 300
    const peers = await twoPeers({ circuitLingerMs: lingerMs })
    const { na, nb, ta, a, b } = peers
    const circuitsOpened: Connection[] = []
    for (const n of [na, nb]) {
      n.addEventListener('connection:open', evt => { if (evt.detail.limits != null) circuitsOpened.push(evt.detail) })
    }
    await untilDirect(peers)
    // The WebRTC upgrade was signalled over a circuit; it goes once the direct connection is open.
    expect(circuitsOpened.length).toBeGreaterThan(0)
    await eventually(() => circuitsTo(na, b).length === 0 && circuitsTo(nb, a).length === 0, 10_000, 'the circuits to close')
    expect([...await ta.request(b, ECHO, new Uint8Array([3]), { timeoutMs: 10_000 })]).toEqual([3])
    expect(ta.connection(b).kind).toBe('direct')

    // A circuit opened while directly connected, carrying a stream (a request not answered yet), stays.
    const circuit = await na.dial(multiaddr(`${relay.addr}/p2p-circuit/p2p/${b}`), { force: true })
    const stream = await circuit.newStream(ECHO, { runOnLimitedConnection: true })
    await new Promise(resolve => setTimeout(resolve, 4 * lingerMs))
    expect(circuit.status).toBe('open')
    await stream.close()
    await eventually(() => circuit.status !== 'open', 10_000, 'the circuit to close once its stream did')
  }, 60_000)
})
