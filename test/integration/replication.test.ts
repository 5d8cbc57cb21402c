/**
 * Replication over real libp2p in Node (a real relay, real gossipsub and streams): three replicas
 * of an encrypted database converge, one of them offline while the others wrote; a replica that
 * only ever talks through the relay; a hostile peer.
 */
import { describe, expect, it } from 'vitest'
import { createPeerNode, Libp2pTransport, parseRelays } from '../../src/net/index.js'
import { BLOCKS_PROTOCOL, encodeBlocksResponse, encodeHeadsMessage, topicOf } from '../../src/sync/index.js'
import { encodeBlock, generateSigner, parseAddress, cidOf } from '../../src/crdt/index.js'

const evilSigner = generateSigner()
import { KiteDB, MemoryStorageProvider, parseShareLink, setLogLevel, type Database } from '../../src/index.js'
import { eventually } from '../helpers/memory-transport.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()

const options = (node: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ relays: relay.addr, node, storage: new MemoryStorageProvider(), replication: { republishMs: 300 }, ...extra })

async function track (db: Promise<Database>): Promise<Database> {
  return relay.track(await db)
}

const snapshot = async (db: Database): Promise<string> =>
  JSON.stringify(await (await db.initCollection('c')).find({}, undefined, { sort: { _id: 1 } }))
const docsIn = (snapshotText: string): Array<{ _id: string }> => JSON.parse(snapshotText) as Array<{ _id: string }>

describe('replication over real libp2p', () => {
  it('three replicas of an encrypted database converge; one that was offline while the others wrote catches up', async () => {
    const a = await track(KiteDB.init('three', options('t-a', { encrypt: true, access: { write: ['*'] } })))
    await a.whenOnline()
    const key = parseShareLink(a.shareLink('http://app/'))?.key
    expect(key).toMatch(/^[\w-]{43}$/)
    const b = await track(KiteDB.open(a.address, options('t-b', { key })))
    const cStorage = new MemoryStorageProvider()
    const c = await KiteDB.open(a.address, options('t-c', { storage: cStorage, key }))
    const ca = await a.initCollection('c')
    await ca.insert([{ _id: 'one', by: 'a' }])
    await eventually(async () => await snapshot(c) === await snapshot(a), 20_000, 'C to sync')
    await c.close() // C goes offline

    await ca.insertOne({ _id: 'two', by: 'a' })
    const cb = await b.initCollection('c')
    // Wait for all of A's history: a child block can arrive (and apply) before its parent.
    await eventually(async () => await snapshot(b) === await snapshot(a) && docsIn(await snapshot(b)).length === 2, 20_000, 'B to see A')
    await cb.updateOne({ _id: 'one' }, { $set: { by: 'b' }, $inc: { n: 1 } })
    await cb.insertOne({ _id: 'three', by: 'b' })

    const back = await track(KiteDB.open(a.address, options('t-c', { storage: cStorage }))) // the key was kept
    await (await back.initCollection('c')).updateOne({ _id: 'one' }, { $inc: { n: 10 } }) // written on return, before catching up
    await eventually(async () => {
      const [x, y, z] = await Promise.all([snapshot(a), snapshot(b), snapshot(back)])
      return x === y && y === z && docsIn(x).length === 3
    }, 30_000, 'three-way convergence')
    expect(JSON.parse(await snapshot(a))).toEqual([
      { _id: 'one', by: 'b', n: 11 }, { _id: 'three', by: 'b' }, { _id: 'two', by: 'a' }
    ])
  })

  it('a replica that only ever talks through the relay converges, with no direct connection', async () => {
    const a = await track(KiteDB.init('relayed', options('r-a', { encrypt: false, access: { write: ['*'] } })))
    await a.whenOnline()
    await (await a.initCollection('c')).insert(Array.from({ length: 50 }, (_, i) => ({ _id: `d${i}`, i })))
    const b = await track(KiteDB.open(a.address, options('r-b', { directConnections: false })))
    await eventually(async () => await snapshot(b) === await snapshot(a), 30_000, 'relay-only catch-up')
    await (await b.initCollection('c')).insertOne({ _id: 'from-b' })
    await eventually(async () => (await (await a.initCollection('c')).findById('from-b')) !== undefined, 30_000, 'relay-only write to arrive')
    expect(b.peers().every(p => p.kind !== 'direct')).toBe(true)
    expect(b.peers().map(p => p.id)).toContain(a.peerId)
  })

  it('a peer sending garbage, forged heads and foreign blocks does not disturb the others', async () => {
    setLogLevel('silent')
    const evil = await createPeerNode({ relays: [relay.addr] })
    try {
      const a = await track(KiteDB.init('hostile', options('h-a', { encrypt: false })))
      await a.whenOnline()
      const b = await track(KiteDB.open(a.address, options('h-b')))
      const transport = new Libp2pTransport(evil, { relays: parseRelays([relay.addr]) })
      const dbId = parseAddress(a.address).toString()
      const topic = topicOf(dbId)
      transport.subscribe(topic, () => {})
      const foreign = await encodeBlock({ v: 1, db: 'bafyreihiekde7ck57zwp4wcddjir6blyvwzm2qjaqpszd4nzwmwhikwrwi', parents: [], hlc: { t: 1, c: 0, r: 'evil' }, ops: [{ op: 'put', coll: 'c', id: 'foreign', set: { x: 1 } }] }, { signer: evilSigner })
      const orphan = await encodeBlock({ v: 1, db: dbId, parents: [], hlc: { t: 1, c: 0, r: 'evil' }, ops: [{ op: 'put', coll: 'c', id: 'smuggled', set: { x: 1 } }] }, { signer: evilSigner })
      const forgedHead = cidOf(new TextEncoder().encode('no such block'))
      // Answer every block request with junk and a block under the wrong CID.
      transport.handle(BLOCKS_PROTOCOL, async () => encodeBlocksResponse({ blocks: [new Uint8Array([1, 2, 3]), orphan.bytes, foreign.bytes] }))
      const spam = setInterval(() => {
        void transport.publish(topic, new Uint8Array([0xff, 0x00, 0x13])).catch(() => {})
        void transport.publish(topic, encodeHeadsMessage({ heads: [forgedHead], blocks: [orphan.bytes] })).catch(() => {}) // inline block not named: dropped
        void transport.publish(topic, encodeHeadsMessage({ heads: [foreign.cid], blocks: [foreign.bytes] })).catch(() => {}) // another database: dropped
      }, 100)
      try {
        const ca = await a.initCollection('c')
        for (let i = 0; i < 5; i++) await ca.insertOne({ _id: `good${i}` })
        await eventually(async () => await snapshot(b) === await snapshot(a) && docsIn(await snapshot(a)).length === 5, 30_000, 'convergence despite the hostile peer')
        await new Promise(resolve => setTimeout(resolve, 1500))
        for (const db of [a, b]) {
          const ids = docsIn(await snapshot(db)).map(d => d._id)
          expect(ids).toEqual(['good0', 'good1', 'good2', 'good3', 'good4'])
          expect(await db.listCollections()).toEqual(['c'])
        }
      } finally {
        clearInterval(spam)
      }
    } finally {
      await evil.stop()
      setLogLevel('warn')
    }
  })
})
