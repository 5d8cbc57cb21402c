/**
 * `db.inspect()`: heads, missing blocks, peers with why they are not directly connected, the
 * network, keepers, and the last refused input with its reason.
 */
import { describe, expect, it } from 'vitest'
import { KiteDB, MemoryStorageProvider, setLogLevel } from '../../src/index.js'
import { encodeHeadsMessage, topicOf } from '../../src/sync/index.js'
import { cidOf } from '../../src/crdt/index.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()

describe('db.inspect()', () => {
  it('shows heads, what is missing, and refused input with its reason', async () => {
    setLogLevel('silent')
    try {
      const hub = new MemoryHub()
      const a = await KiteDB.init('inspect', { storage: new MemoryStorageProvider(), transport: hub.join('A'), encrypt: false, access: { write: ['*'] } })
      await (await a.initCollection('c')).insertOne({ _id: 'x' })
      const evil = hub.join('evil')
      const topic = topicOf(a.address.slice('/kite/'.length))
      // an inline "block" the message does not name: refused by A's validator, with a reason
      await evil.publish(topic, encodeHeadsMessage({ heads: [cidOf(new Uint8Array([1]))], blocks: [new Uint8Array([9, 9, 9])] }))
      await eventually(async () => (await a.inspect()).refused.some(w => w.message.includes('evil')), 5000, 'the refusal to be listed')
      const report = await a.inspect()
      expect(report.address).toBe(a.address)
      expect(report.heads).toEqual((await a.syncState()).heads)
      expect(report.network.status).toBe('online')
      expect(report.refused.find(w => w.message.includes('evil'))?.message).toMatch(/refused message from evil/)
      expect(report.keepers).toEqual([])
      await a.close()
    } finally {
      setLogLevel('warn')
    }
  })

  it('says why a peer is not connected directly', async () => {
    const options = { relays: [relay.addr], storage: new MemoryStorageProvider(), directConnections: false, replication: { republishMs: 300 } }
    const a = relay.track(await KiteDB.init('inspect-relayed', { ...options, node: 'inspect-a', encrypt: false, access: { write: ['*'] } }))
    const b = relay.track(await KiteDB.open(a.address, { ...options, node: 'inspect-b', storage: new MemoryStorageProvider() }))
    await Promise.all([a.whenOnline(), b.whenOnline()])
    await eventually(async () => (await a.inspect()).peers.length > 0, 15_000, 'A to hear B')
    const [peer] = (await a.inspect()).peers
    expect(peer?.kind).not.toBe('direct')
    expect(peer?.whyNotDirect).toBe('direct connections are turned off here')
    expect((await a.inspect()).network.relays[0]?.state).toBe('reserved')
  })
})
