/**
 * A keeper takes a snapshot only over head blocks it holds (src/keep/server.ts). A writer's
 * snapshot can be newer than the heads a hand-over pass read (writes went on while it ran): the
 * keep client (src/sync/keep-client.ts) hands over the snapshot's head blocks before offering it,
 * rather than being refused. Over real libp2p, against a keeper in this process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createManifest, encodeManifest, generateSigner } from '../../src/crdt/index.js'
import { type Libp2pTransport } from '../../src/net/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { KeepClient, MANIFEST_KEY, Replica, buildSnapshot } from '../../src/sync/index.js'
import { keeperAndPeer } from './helpers.js'

let transport: Libp2pTransport
let close: () => Promise<void>

beforeAll(async () => { ({ transport, close } = await keeperAndPeer()) })
afterAll(async () => { await close() })

describe('a snapshot newer than the blocks a keeper holds', () => {
  it('is preceded by its head blocks, and kept', async () => {
    const manifest = createManifest('newer snapshot', ['*'])
    const { bytes, cid } = encodeManifest(manifest)
    const dbId = cid.toString()
    // A writes one block and hands it over.
    const storage = new MemoryStorage()
    await storage.setMeta(MANIFEST_KEY, bytes)
    const a = await Replica.open(storage, dbId, { signer: generateSigner(), manifest })
    await a.commit([{ op: 'put', coll: 'todos', id: 'one', set: { title: 'one' } }])
    // B, another writer of the same database, writes a second block over it and snapshots both.
    const bStorage = new MemoryStorage()
    const b = await Replica.open(bStorage, dbId, { signer: generateSigner(), manifest })
    for (const cidText of await a.storage.getHeads()) {
      const [block] = await a.storage.getBlocks([cidText])
      await b.receive(block as Uint8Array)
    }
    await b.commit([{ op: 'put', coll: 'todos', id: 'two', set: { title: 'two' } }])
    const built = await buildSnapshot(dbId, await bStorage.readSnapshotSource())
    // A holds the second block's bytes, not applied: its heads (what a pass hands over) do not name
    // it, while the snapshot A offers is over it, as when writes went on during a pass.
    const [second] = await bStorage.getBlocks(built.heads)
    await storage.putNodes([{ cid: built.heads[0], bytes: second as Uint8Array }])
    expect(await a.heads()).not.toEqual(built.heads)

    const errors: Error[] = []
    const client = new KeepClient(a, transport, { heard: () => {}, snapshot: () => built, onSnapshot: () => () => {} })
    client.onError(err => { errors.push(err) })
    client.start()
    try {
      const until = Date.now() + 20_000
      while (client.keepers()[0]?.snapshot !== built.root.toString() && errors.length === 0 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
      expect(errors.map(e => e.message)).toEqual([])
      expect(client.keepers()[0]?.snapshot).toBe(built.root.toString())
    } finally {
      client.stop()
    }
  }, 30_000)
})
