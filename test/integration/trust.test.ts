/**
 * Signed blocks over real libp2p (a real relay, real gossipsub): forged signatures, unknown
 * writers, blocks replayed from another database, inline bytes under the wrong CID and blocks
 * sealed with the wrong key are refused by every replica, and — gossipsub message validation —
 * neither delivered nor forwarded by them.
 */
import { describe, expect, it } from 'vitest'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { createPeerNode, Libp2pTransport, loadDeviceKey, parseRelays } from '../../src/net/index.js'
import { encodeHeadsMessage, topicOf } from '../../src/sync/index.js'
import {
  type Op, decode, encode, encodeBlock, generateKey, generateSigner, parseAddress, parseCid, signerFromSeed, type CID
} from '../../src/crdt/index.js'
import { KiteDB, MemoryStorageProvider, setLogLevel, type Database } from '../../src/index.js'
import { eventually } from '../helpers/memory-transport.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()

const options = (node: string, storage = new MemoryStorageProvider(), extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ relays: relay.addr, node, storage, replication: { republishMs: 300 }, ...extra })

const ids = async (db: Database): Promise<string[]> =>
  (await (await db.initCollection('c')).find({}, undefined, { sort: { _id: 1 } })).map(d => d._id)

const put = (id: string): Op[] => [{ op: 'put', coll: 'c', id, set: { x: 1 } }]

/** What a replica's gossipsub validator says about `data` published by `from` on `topic`. */
async function verdict (db: Database, topic: string, data: Uint8Array, from: string): Promise<TopicValidatorResult> {
  const transport = (db as unknown as { lease: { transport: Libp2pTransport } }).lease.transport
  const validator = transport.node.services.pubsub.topicValidators.get(topic)
  if (validator === undefined) throw new Error('no validator on the topic')
  const peer = peerIdFromString(from)
  return await validator(peer, { type: 'signed', from: peer, topic, data, sequenceNumber: 1n, signature: new Uint8Array(64), key: peer.publicKey } as never)
}

describe('hostile writers over real libp2p', () => {
  it('refuses forged, unlisted, replayed, misnamed and wrongly sealed blocks at every replica, and forwards none', async () => {
    setLogLevel('silent')
    const evil = await createPeerNode({ relays: [relay.addr] })
    try {
      // A writes a write-list database (only A) and an encrypted one; B and C read them.
      const storageA = new MemoryStorageProvider()
      const w = relay.track(await KiteDB.init('listed', options('x-a', storageA, { encrypt: false })))
      const e = relay.track(await KiteDB.init('sealed', options('x-a', storageA, { encrypt: true, access: { write: ['*'] } })))
      await w.whenOnline()
      const key = new URLSearchParams(e.shareLink('http://app/').split('#')[1]).get('key') as string
      const readers = await Promise.all(['x-b', 'x-c'].map(async n => relay.track(await KiteDB.open(w.address, options(n)))))
      const sealedReader = relay.track(await KiteDB.open(e.address, options('x-d', new MemoryStorageProvider(), { key })))
      await (await w.initCollection('c')).insertOne({ _id: 'good' })
      await (await e.initCollection('c')).insertOne({ _id: 'good' })
      for (const r of readers) await eventually(async () => JSON.stringify(await ids(r)) === '["good"]', 20_000, 'readers to sync')
      await eventually(async () => JSON.stringify(await ids(sealedReader)) === '["good"]', 20_000, 'the encrypted reader to sync')

      const wId = parseAddress(w.address).toString()
      const eId = parseAddress(e.address).toString()
      const head = parseCid((await w.syncState()).heads[0]) as CID
      const hlc = { t: Date.now() + 1000, c: 0, r: 'evil' }
      const aSigner = signerFromSeed((await loadDeviceKey(storageA, 'x-a')).raw.subarray(0, 32)) // A's own key
      const block = async (db: string, signer = generateSigner(), sealKey?: Uint8Array, id = 'evil'): ReturnType<typeof encodeBlock> =>
        await encodeBlock({ v: 1, db, parents: [head], hlc, ops: put(id) }, { signer, ...(sealKey !== undefined ? { key: sealKey } : {}) })

      // 1. Forged signature: A's key named, the body changed after signing.
      const signed = await block(wId, aSigner, undefined, 'signed-by-a')
      const envelope = decode(signed.bytes) as Record<string, unknown>
      const body = decode(envelope.body as Uint8Array) as Record<string, unknown>
      const forgedBytes = encode({ ...envelope, body: encode({ ...body, ops: put('forged') }) })
      const forged = { bytes: forgedBytes, cid: (await import('../../src/crdt/index.js')).cidOf(forgedBytes) }
      // 2. Unknown writer: a valid block signed by a key not on the write list.
      const unlisted = await block(wId)
      // 3. Replay: a block A really signed, for another database.
      const replayed = await block(eId, aSigner, undefined, 'replayed')
      // 4. Wrong CID: a valid block by A, inline under a head naming other bytes.
      const misnamed = await block(wId, aSigner, undefined, 'misnamed')
      // 5. Wrong key: a block of the encrypted database sealed with another key.
      const wrongKey = await block(eId, generateSigner(), generateKey(), 'wrong-key')

      const attacks: Array<[string, string, Uint8Array]> = [
        ['forged signature', topicOf(wId), encodeHeadsMessage({ heads: [forged.cid], blocks: [forged.bytes] })],
        ['unknown writer', topicOf(wId), encodeHeadsMessage({ heads: [unlisted.cid], blocks: [unlisted.bytes] })],
        ['replayed from another database', topicOf(wId), encodeHeadsMessage({ heads: [replayed.cid], blocks: [replayed.bytes] })],
        ['wrong CID', topicOf(wId), encodeHeadsMessage({ heads: [unlisted.cid], blocks: [misnamed.bytes] })],
        ['wrong key', topicOf(eId), encodeHeadsMessage({ heads: [wrongKey.cid], blocks: [wrongKey.bytes] })]
      ]
      const evilId = evil.peerId.toString()
      for (const [name, topic, data] of attacks) {
        const replicas = topic === topicOf(wId) ? [w, ...readers] : [e, sealedReader]
        for (const r of replicas) expect([name, await verdict(r, topic, data, evilId)]).toEqual([name, TopicValidatorResult.Ignore])
      }
      // The same check accepts a genuine message (so the Ignores above mean something).
      const genuine = await block(wId, aSigner, undefined, 'genuine')
      expect(await verdict(readers[0], topicOf(wId), encodeHeadsMessage({ heads: [genuine.cid], blocks: [genuine.bytes] }), evilId)).toBe(TopicValidatorResult.Accept)

      // Published for real, through the relay, again and again: nothing changes anywhere.
      const transport = new Libp2pTransport(evil, { relays: parseRelays([relay.addr]) })
      transport.subscribe(topicOf(wId), () => {})
      transport.subscribe(topicOf(eId), () => {})
      for (let round = 0; round < 5; round++) {
        for (const [, topic, data] of attacks) await transport.publish(topic, data).catch(() => {})
        await new Promise(resolve => setTimeout(resolve, 200))
      }
      for (const r of [w, ...readers]) expect(await ids(r)).toEqual(['good'])
      for (const r of [e, sealedReader]) expect(await ids(r)).toEqual(['good'])
    } finally {
      await evil.stop()
      setLogLevel('warn')
    }
  })
})
