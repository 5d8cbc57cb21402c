/**
 * The relay's debug record (`kitedb-relay --record FILE`): one JSON line per payload it forwards,
 * gossip messages and the bytes of relayed connections, written to a file.
 */
import { describe, expect, it } from 'vitest'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createPeerNode, createRelayNode, Libp2pTransport, parseRelays } from '../../src/net/index.js'
import { openRecorder } from '../../src/relay/cli.js'
import { eventually } from '../helpers/memory-transport.js'

interface Line { time: string, kind: string, topic?: string, from: string, via?: string, to?: string, size: number, data: string }

describe('relay record hook', () => {
  it('writes a line with the payload of every forwarded gossip message and relayed byte', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'kitedb-record-')), 'sub', 'record.jsonl')
    const recorder = await openRecorder(file)
    const relay = await createRelayNode({ port: 0, record: recorder.record })
    const relays = [relay.getMultiaddrs()[0]?.toString()]
    const [p1, p2] = await Promise.all([createPeerNode({ relays, webrtc: false }), createPeerNode({ relays, webrtc: false })])
    const t1 = new Libp2pTransport(p1, { relays: parseRelays(relays), directConnections: false })
    const t2 = new Libp2pTransport(p2, { relays: parseRelays(relays), directConnections: false })
    try {
      const topic = '/kitedb/1/record-test'
      const payload = 'buy milk, a secret todo title'
      const heard: string[] = []
      t1.subscribe(topic, () => {})
      t2.subscribe(topic, data => { heard.push(new TextDecoder().decode(data)) })
      // Publish until p2 hears it through the relay (the relay joins the topic when it sees the subscriptions).
      await eventually(async () => {
        await t1.publish(topic, new TextEncoder().encode(payload)).catch(() => {})
        return heard.includes(payload)
      }, 15_000, 'p2 to hear p1 through the relay')
      t2.handle('/test/echo', async data => data)
      const echoed = await t1.request(p2.peerId.toString(), '/test/echo', new TextEncoder().encode('over the circuit'))
      expect(new TextDecoder().decode(echoed)).toBe('over the circuit')
    } finally {
      t1.close()
      t2.close()
      await Promise.all([p1.stop(), p2.stop()])
      await relay.stop()
      await recorder.close()
    }

    const lines = (await readFile(file, 'utf8')).trim().split('\n').map(l => JSON.parse(l) as Line)
    const gossip = lines.filter(l => l.kind === 'gossip' && l.topic === '/kitedb/1/record-test')
    expect(gossip.length).toBeGreaterThan(0)
    const g = gossip[0]
    expect(g.from).toBe(p1.peerId.toString())
    expect(g.via).toBe(p1.peerId.toString())
    expect(Buffer.from(g.data, 'base64').toString()).toBe('buy milk, a secret todo title')
    expect(g.size).toBe(29)
    expect(Number.isNaN(Date.parse(g.time))).toBe(false)
    // The relayed connection's bytes are recorded both ways, and are end-to-end encrypted (noise).
    const circuit = lines.filter(l => l.kind === 'circuit')
    expect(circuit.some(l => l.from === p1.peerId.toString() && l.to === p2.peerId.toString())).toBe(true)
    expect(circuit.some(l => l.from === p2.peerId.toString() && l.to === p1.peerId.toString())).toBe(true)
    expect(circuit.every(l => !Buffer.from(l.data, 'base64').toString('latin1').includes('over the circuit'))).toBe(true)
    expect(circuit.reduce((n, l) => n + l.size, 0)).toBeGreaterThan(0)
  })
})
