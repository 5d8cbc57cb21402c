/**
 * Replication over real libp2p in Node: a real relay (circuit-relay-v2 + gossipsub over
 * WebSockets) and replicas that reach each other through it and upgrade to direct WebRTC.
 */
import { describe, expect, it } from 'vitest'
import { createPeerNode } from '../../src/net/index.js'
import { KiteDB, MemoryStorageProvider, TimeoutError, parseShareLink, type Database } from '../../src/index.js'
import { eventually } from '../helpers/memory-transport.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()

/** A replica on its own libp2p node (as on its own device). */
async function device (name: string, address?: string): Promise<Database> {
  const options = { relays: relay.addr, node: name, storage: new MemoryStorageProvider(), replication: { republishMs: 500 } }
  const db = address === undefined ? await KiteDB.init('todos', { ...options, encrypt: false, access: { write: ['*'] } }) : await KiteDB.open(address, options)
  return relay.track(db)
}

const titles = async (db: Database): Promise<string[]> =>
  (await (await db.initCollection<{ title: string, done?: boolean }>('todos')).find({}, undefined, { sort: { title: 1 } })).map(d => `${d.title}${d.done === true ? '✓' : ''}`)

describe('replication over real libp2p through a relay', () => {
  it('two replicas converge on a collection and connect by direct WebRTC', async () => {
    const a = await device('a1')
    await a.whenOnline()
    const todosA = await a.initCollection('todos')
    await todosA.insert([{ title: 'one' }, { title: 'two' }, { title: 'three' }])

    const b = await device('b1', a.address)
    await b.whenOnline()
    await eventually(async () => (await titles(b)).length === 3, 20_000, 'B to receive A\'s todos')
    const todosB = await b.initCollection('todos')
    await todosB.updateOne({ title: 'two' }, { $set: { done: true } })
    await todosA.insertOne({ title: 'four' })
    await eventually(async () => JSON.stringify(await titles(a)) === JSON.stringify(await titles(b)) && (await titles(a)).length === 4, 20_000, 'convergence')
    expect(await titles(a)).toEqual(['four', 'one', 'three', 'two✓'])

    await eventually(() => a.peers().some(p => p.id === b.peerId && p.kind === 'direct' && p.transport === 'webrtc'), 20_000, 'a direct WebRTC connection')
    expect(b.peers().map(p => p.id)).toEqual([a.peerId])
    const state = await b.syncState()
    expect(state.heads).toEqual((await a.syncState()).heads)
    expect(state.missing).toBe(0)
  })

  it('a replica that was offline catches up when it comes back', async () => {
    const a = await device('a2')
    await a.whenOnline()
    const todosA = await a.initCollection('todos')
    await todosA.insertOne({ title: 'before' })
    const storageB = new MemoryStorageProvider()
    const options = { relays: relay.addr, node: 'b2', storage: storageB, replication: { republishMs: 500 } }
    const b = await KiteDB.open(a.address, options)
    await eventually(async () => (await titles(b)).length === 1, 20_000, 'first sync')
    await b.close() // B goes offline; its data stays in its storage

    await todosA.insert([{ title: 'while away 1' }, { title: 'while away 2' }])
    await todosA.updateOne({ title: 'before' }, { $set: { done: true } })

    const back = await KiteDB.open(a.address, options)
    relay.track(back)
    expect(await titles(back)).toEqual(['before']) // opens at once from local data
    await eventually(async () => (await titles(back)).length === 3, 20_000, 'catch-up')
    await eventually(async () => (await titles(back)).includes('before✓'), 20_000, 'catch-up of the update')
  })

  it('the relay keeps forwarding after many peers from one IP address came and went', async () => {
    // Regression: with gossipsub's default IP-colocation scoring, the relay refused the GRAFTs of
    // every peer beyond the tenth from one IP (all browsers behind one NAT), so peers without a
    // direct connection never heard each other.
    for (let i = 0; i < 12; i++) {
      const node = await createPeerNode({ relays: [relay.addr] })
      node.services.pubsub.subscribe('/kitedb/1/warmup')
      await new Promise(resolve => setTimeout(resolve, 50))
      await node.stop()
    }
    const a = await device('a4')
    await a.whenOnline()
    await (await a.initCollection('todos')).insertOne({ title: 'still forwarded' })
    const b = await device('b4', a.address)
    await eventually(async () => (await titles(b)).length === 1, 20_000, 'B to hear A through the relay')
  })

  it('discover learns the address a peer announces (sealed: for holders of the key only) from its peer id', async () => {
    const a = relay.track(await KiteDB.init('todos', { relays: relay.addr, node: 'a3', storage: new MemoryStorageProvider(), announce: true }))
    await a.whenOnline()
    await (await a.initCollection('notes')).insertOne({ title: 'x' })
    const key = parseShareLink(a.shareLink('http://app/'))?.key as string
    const found = await KiteDB.discover(a.peerId as string, { relays: relay.addr, node: 'seeker', timeoutMs: 20_000, key })
    expect(found.address).toBe(a.address)
    expect(found.collections).toContain('notes')
    expect(found.relays).toEqual([relay.addr])
    // Without the key the sealed announcement is unreadable: nothing is found.
    await expect(KiteDB.discover(a.peerId as string, { relays: relay.addr, node: 'stranger', timeoutMs: 3000 })).rejects.toBeInstanceOf(TimeoutError)
  })
})
