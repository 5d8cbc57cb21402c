/**
 * Sybil origins: a gossip message's origin is a key anyone can make afresh for every message, so
 * limits keyed on origins alone are dodged. The connection that delivers messages is limited too,
 * and fresh origins cost a replica no dial storm, no republish storm and no unbounded state.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { type PeerId } from '@libp2p/interface'
import { Libp2pTransport, PeerGuard, createPeerNode, messageValidator, parseRelays } from '../../src/net/index.js'
import { encodeHeadsMessage, isPresenceMessage, resolveLimits, topicOf } from '../../src/sync/index.js'
import { KiteDB, MemoryStorageProvider, setLogLevel } from '../../src/index.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()
afterEach(() => { vi.restoreAllMocks(); setLogLevel('warn') })

/** `n` distinct peer ids, as a flood of fresh origins would use. */
async function freshIds (n: number): Promise<PeerId[]> {
  return await Promise.all(Array.from({ length: n }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
}

describe('gossip limits keyed on the delivering connection', () => {
  it('a connection delivering messages of ever new origins is refused past its rate and banned, not the origins; other connections are not', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {})
    const limits = resolveLimits({ forwardedPerSecond: 50, maxRefusals: 20, refusalWindowMs: 1000, banMs: 5000 })
    const clock = { t: 1_000_000 }
    const banned: string[] = []
    const honest = peerIdFromString('12D3KooWQBwdJBtatW3z8dUh9vu6m7xsZTKbYKRUM3aKPg4DTRjM')
    const relayId = peerIdFromString('12D3KooWLG74PGwVyP4VwU2gtPxsvHTtURTeHkZRMKsX2JRKovKD')
    const guard = new PeerGuard(limits, { now: () => clock.t, onBan: p => banned.push(p), exempt: p => p === relayId.toString() })
    const validate = messageValidator('/kitedb/1/x', guard, limits.maxMessageBytes, 'self')
    const [attacker, ...origins] = await freshIds(401)
    const message = (from: PeerId): Message => ({ type: 'signed', from, topic: '/kitedb/1/x', data: new Uint8Array(1), sequenceNumber: 1n, signature: new Uint8Array(), key: from.publicKey as never })
    const verdicts = origins.map(o => validate(attacker, message(o)))
    const accepted = verdicts.filter(v => v === TopicValidatorResult.Accept).length
    expect(accepted).toBe(100) // the burst: two seconds' worth, whatever the origins
    expect(banned).toEqual([attacker?.toString()])
    expect(validate(honest, message(origins[0]))).toBe(TopicValidatorResult.Accept)
    // a relay delivering the same flood is refused past the rate but never banned (cutting this node off)
    const fromRelay = origins.map(o => validate(relayId, message(o)))
    expect(fromRelay.filter(v => v === TopicValidatorResult.Accept).length).toBe(100)
    expect(banned).toEqual([attacker?.toString()])
  })
})

describe('fresh origins at a replica', () => {
  it('cost no dial storm and no unbounded state in the libp2p transport', async () => {
    setLogLevel('silent')
    const node = await createPeerNode({ relays: [relay.addr] })
    const transport = new Libp2pTransport(node, { relays: parseRelays([relay.addr]) })
    try {
      const topic = topicOf('bafyreihiekde7ck57zwp4wcddjir6blyvwzm2qjaqpszd4nzwmwhikwrwi')
      let delivered = 0
      transport.subscribe(topic, () => { delivered++ })
      let dials = 0
      node.dial = async () => { dials++; throw new Error('not dialling in this test') }
      const origins = await freshIds(2000)
      const data = encodeHeadsMessage({ heads: [], blocks: [] })
      const started = Date.now()
      // as gossipsub hands over messages that passed validation
      for (const from of origins) node.services.pubsub.dispatchEvent(new CustomEvent('message', { detail: { type: 'signed', topic, data, from } }))
      const seconds = (Date.now() - started) / 1000
      expect(delivered).toBe(2000)
      expect(dials).toBeLessThanOrEqual(8 + Math.ceil(seconds) + 1)
      const remembered = transport as unknown as { firstHeard: Map<string, number>, lastUpgradeAttempt: Map<string, number> }
      expect(remembered.firstHeard.size).toBeLessThanOrEqual(1024)
      expect(remembered.lastUpgradeAttempt.size).toBeLessThanOrEqual(1024)
    } finally {
      transport.close()
      await node.stop()
    }
  })

  it('make a replica publish its heads once per second for all of them, not once each', async () => {
    const hub = new MemoryHub()
    const a = await KiteDB.init('sybil', { storage: new MemoryStorageProvider(), transport: hub.join('A'), encrypt: false, replication: { republishMs: 60_000 } })
    try {
      await (await a.initCollection('c')).insertOne({ _id: 'x' })
      const topic = topicOf(a.address.slice('/kite/'.length))
      const watcher = hub.join('watcher')
      let heads = 0
      watcher.subscribe(topic, (_data, from) => { if (from === 'A') heads++ })
      await new Promise(resolve => setTimeout(resolve, 100))
      heads = 0
      const data = encodeHeadsMessage({ heads: [], blocks: [] })
      const started = Date.now()
      for (let i = 0; i < 300; i++) {
        const sybil = hub.join(`sybil-${i}`)
        await sybil.publish(topic, data)
        hub.leave(`sybil-${i}`)
        if (i % 50 === 0) await new Promise(resolve => setTimeout(resolve, 100))
      }
      await eventually(() => heads > 0, 5000, 'A to answer the new peers')
      await new Promise(resolve => setTimeout(resolve, 1200))
      const seconds = (Date.now() - started) / 1000
      expect(heads).toBeLessThanOrEqual(Math.ceil(seconds) + 2)
      expect((await a.syncState()).peers.length).toBeLessThanOrEqual(1024)
    } finally {
      await a.close()
    }
  })
})

describe('a subscription announced again and again', () => {
  // Gossipsub reports a peer's subscriptions whenever they arrive: each time a gossip stream to it
  // is set up again (a connection flapping between two pages did that ten times a second in a
  // room of ten), or as often as a hostile peer sends SUBSCRIBE. Each report reaching a replica
  // must not become a message to the whole room.
  it('makes a replica publish its heads once per second, and its presence only when it has one, at most once per second', async () => {
    const hub = new MemoryHub()
    const transport = hub.join('A')
    const a = await KiteDB.init('flap', { storage: new MemoryStorageProvider(), transport, encrypt: false, replication: { republishMs: 60_000 } })
    try {
      await (await a.initCollection('c')).insertOne({ _id: 'x' })
      const topic = topicOf(a.address.slice('/kite/'.length))
      const watcher = hub.join('watcher')
      let heads = 0
      let presence = 0
      watcher.subscribe(topic, (data, from) => {
        if (from !== 'A') return
        if (isPresenceMessage(data)) presence++
        else heads++
      })
      await new Promise(resolve => setTimeout(resolve, 100))
      const flap = async (): Promise<number> => {
        heads = 0
        presence = 0
        const started = Date.now()
        for (let i = 0; i < 200; i++) {
          transport.notifySubscriber(topic, 'watcher')
          if (i % 20 === 0) await new Promise(resolve => setTimeout(resolve, 50))
        }
        await eventually(() => heads > 0, 5000, 'A to answer the subscription')
        await new Promise(resolve => setTimeout(resolve, 1200))
        return (Date.now() - started) / 1000
      }
      let seconds = await flap()
      expect(heads).toBeGreaterThan(0)
      expect(heads).toBeLessThanOrEqual(Math.ceil(seconds) + 1)
      expect(presence).toBe(0) // no state: nothing to tell
      a.presence.set({ name: 'Ada' })
      seconds = await flap()
      expect(presence).toBeGreaterThan(0)
      // the set itself, the answers to the subscriptions, and the heartbeat every 2 s
      expect(presence).toBeLessThanOrEqual(1 + Math.ceil(seconds) + 1 + Math.ceil(seconds / 2))
      expect(heads).toBeLessThanOrEqual(Math.ceil(seconds) + 1)
    } finally {
      await a.close()
    }
  })
})
