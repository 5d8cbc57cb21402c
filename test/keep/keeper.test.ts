/**
 * Keepers over real libp2p in Node: devices that are never online together sync through a relay
 * that keeps (encrypted, everyone-with-the-link databases: the keeper never has the key).
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { KeeperFullError, KiteDB, MemoryStorageProvider, type Database } from '../../src/index.js'
import { RelayProcess } from '../e2e/helpers/cluster.js'
import { CarReader } from '@ipld/car'
import { type CID, cidOf, parseCid } from '../../src/crdt/index.js'
import { KeepStore, exportCar, resolveKeepLimits } from '../../src/keep/index.js'
import { eventually } from '../helpers/memory-transport.js'
import { InProcessKeeper, device, titles } from './helpers.js'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c().catch(() => {}) }, 60_000)

async function keeper (...args: Parameters<typeof InProcessKeeper.start>): Promise<InProcessKeeper> {
  const k = await InProcessKeeper.start(...args)
  cleanups.push(async () => { await k.destroy() })
  return k
}

function track (db: Database): Database {
  cleanups.push(async () => { await db.close() })
  return db
}

describe('keepers', () => {
  it('devices never online together sync through a keeper, which has no key', async () => {
    const k = await keeper()
    const a = track(await KiteDB.init('todos', device([k.addr], { access: { write: ['*'] } })))
    const todos = await a.initCollection('todos')
    for (const t of ['milk', 'eggs', 'bread']) await todos.insertOne({ _id: t, title: t })
    await a.whenKept({ timeoutMs: 20_000 })
    expect((await a.syncState()).kept).toBe(true)
    expect(a.keepers()).toEqual([expect.objectContaining({ peer: k.node?.peerId.toString(), state: 'kept' })])
    const link = a.shareLink('http://x/')
    const key = new URL(link).hash.match(/key=([\w-]+)/)?.[1] as string
    await a.close()

    const b = track(await KiteDB.open(a.address, device([k.addr], { key })))
    await eventually(async () => (await titles(b)).length === 3, 20_000, 'B to get the list from the keeper')
    expect(await titles(b)).toEqual(['bread', 'eggs', 'milk'])
  })
})

describe('keepers: durability and snapshots', () => {
  it('A writes and closes; B, alone, sees it and edits; the keeper is killed (SIGKILL) and restarted on its directory; A reopens and sees B\'s edits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kitedb-keep-proc-'))
    const relay = await RelayProcess.start('127.0.0.1', dir, ['--keep', join(dir, 'keep')])
    cleanups.push(async () => { await relay.kill(); await rm(dir, { recursive: true, force: true }) })
    const storageA = new MemoryStorageProvider()
    const a = await KiteDB.init('todos', device([relay.addr], { storage: storageA, node: 'a', access: { write: ['*'] } }))
    const todos = await a.initCollection('todos')
    for (const t of ['milk', 'eggs']) await todos.insertOne({ _id: t, title: t })
    await a.whenKept({ timeoutMs: 20_000 })
    const key = new URL(a.shareLink('http://x/')).hash.match(/key=([\w-]+)/)?.[1] as string
    await a.close()

    const b = track(await KiteDB.open(a.address, device([relay.addr], { key })))
    await eventually(async () => (await titles(b)).length === 2, 20_000, 'B to get the list from the keeper')
    await (await b.initCollection('todos')).updateOne({ _id: 'milk' }, { $set: { title: 'oat milk' } })
    await (await b.initCollection('todos')).insertOne({ _id: 'tea', title: 'tea' })
    await b.whenKept({ timeoutMs: 20_000 })
    await b.close()

    await relay.kill('SIGKILL')
    await relay.restart()
    const again = track(await KiteDB.open(a.address, device([relay.addr], { storage: storageA, node: 'a' })))
    // Blocks apply as they arrive (a child before its parent, say): wait for the whole of B's edits.
    await eventually(async () => JSON.stringify(await titles(again)) === JSON.stringify(['eggs', 'oat milk', 'tea']), 20_000, 'A to see B\'s edits after the keeper\'s restart')
    expect(await titles(again)).toEqual(['eggs', 'oat milk', 'tea'])
  })

  it('a writer\'s snapshot is kept: a device opening the link while every writer is offline joins from it, and nothing in the keeper\'s directory is plaintext', async () => {
    const k = await keeper()
    const canary = 'kite-canary-3f9d1c'
    const a = track(await KiteDB.init('secret list', device([k.addr], { access: { write: ['*'] } })))
    const todos = await a.initCollection('todos')
    for (let i = 0; i < 60; i++) await todos.insertOne({ _id: `t${String(i).padStart(2, '0')}`, title: `${canary} ${i}` })
    await a.whenKept({ timeoutMs: 30_000, snapshot: true })
    const kept = a.keepers()[0]
    expect(kept?.snapshot).toBeTruthy()
    const key = new URL(a.shareLink('http://x/')).hash.match(/key=([\w-]+)/)?.[1] as string
    await a.close()

    const b = track(await KiteDB.open(a.address, device([k.addr], { key })))
    await eventually(async () => (await titles(b)).length === 60, 20_000, 'B to join from the kept snapshot')
    expect((await b.syncState()).snapshot).toBe(kept?.snapshot)
    await b.close()

    await k.stop()
    const files = await readdir(k.dir)
    let scanned = 0
    for (const f of files) {
      const bytes = await readFile(join(k.dir, f))
      scanned += bytes.byteLength
      for (const needle of [canary, 'secret list', 'todos']) expect(bytes.includes(Buffer.from(needle)), `${needle} in ${f}`).toBe(false)
    }
    expect(scanned).toBeGreaterThan(60 * 100) // the blocks are there, sealed
  })
})

describe('keepers: bounds and refusals', () => {
  it('a database over the keeper\'s quota is refused with KeeperFullError, surfaced by whenKept, the error event and keepers()', async () => {
    const k = await keeper({ limits: { quotaBytes: 8 * 1024 } })
    const a = track(await KiteDB.init('big', device([k.addr], { access: { write: ['*'] } })))
    const errors: Error[] = []
    a.on('error', err => { errors.push(err) })
    const todos = await a.initCollection('todos')
    await todos.insertOne({ _id: 'big', title: 'x'.repeat(20_000) })
    const err = await a.whenKept({ timeoutMs: 20_000 }).then(() => undefined, e => e as Error)
    expect(err).toBeInstanceOf(KeeperFullError)
    expect(errors.some(e => e instanceof KeeperFullError)).toBe(true)
    expect(a.keepers()[0]).toMatchObject({ state: 'refused' })
    expect((await a.syncState()).kept).toBe(false)
    // What it had acknowledged before the big write stays: the collection's create.
    expect(k.keeping?.store.total.bytes).toBeLessThanOrEqual(8 * 1024)
  })

  it('a peer asking to keep more databases than its quota is refused for the excess; the keeper\'s total stays bounded', async () => {
    const k = await keeper({ limits: { maxPerPeer: 3 } })
    const storage = new MemoryStorageProvider()
    const dbs: Database[] = []
    for (let i = 0; i < 5; i++) dbs.push(track(await KiteDB.init(`list ${i}`, device([k.addr], { storage, node: 'one-device', access: { write: ['*'] } }))))
    for (const db of dbs) await (await db.initCollection('todos')).insertOne({ title: 'x' })
    const outcomes = await Promise.all(dbs.map(async db => await db.whenKept({ timeoutMs: 20_000 }).then(() => 'kept', e => (e as Error).constructor.name)))
    expect(outcomes.filter(o => o === 'kept')).toHaveLength(3)
    expect(outcomes.filter(o => o === 'KeeperFullError')).toHaveLength(2)
    expect(k.keeping?.store.total.databases).toBe(3)
  })

  it('idle databases expire; a replica still holding one hands it over again', async () => {
    let now = Date.now()
    const k = await keeper({ limits: { idleMs: 60_000 }, store: { now: () => now } })
    const a = track(await KiteDB.init('idle', device([k.addr], { access: { write: ['*'] } })))
    await (await a.initCollection('todos')).insertOne({ _id: '1', title: 'one' })
    await a.whenKept({ timeoutMs: 20_000 })
    now += 120_000
    const expired = await k.keeping?.keeper.sweep()
    expect(expired).toEqual([a.address.slice('/kite/'.length)])
    expect(k.keeping?.store.total).toEqual({ databases: 0, bytes: 0 })
    expect(await k.keeping?.store.record(a.address.slice('/kite/'.length))).toBeUndefined()
    // The next write finds it gone, asks again and hands everything over.
    await (await a.initCollection('todos')).insertOne({ _id: '2', title: 'two' })
    await eventually(async () => (await k.keeping?.store.record(a.address.slice('/kite/'.length)))?.blocks === 3, 20_000, 'the database kept again')
    await a.whenKept({ timeoutMs: 20_000 })
  })
})

describe('keepers: export', () => {
  it('exports a kept database as a CAR file any IPFS node can import: manifest, blocks (sealed) and snapshot nodes, each under its CID', async () => {
    const k = await keeper()
    const a = track(await KiteDB.init('car', device([k.addr], { access: { write: ['*'] } })))
    const todos = await a.initCollection('todos')
    for (let i = 0; i < 55; i++) await todos.insertOne({ _id: `t${i}`, title: `todo ${i}` })
    await a.whenKept({ timeoutMs: 30_000, snapshot: true })
    const heads = (await a.syncState()).heads
    await a.close()
    await k.stop()
    const store = await KeepStore.open(k.dir, resolveKeepLimits())
    const file = join(k.dir, 'out.car')
    const db = a.address.slice('/kite/'.length)
    try {
      const result = await exportCar(store, db, file)
      const record = await store.record(db)
      const reader = await CarReader.fromBytes(await readFile(file))
      expect((await reader.getRoots()).map(String)).toEqual(heads)
      let count = 0
      for await (const { cid, bytes } of reader.blocks()) {
        expect(cidOf(bytes).toString()).toBe(cid.toString())
        count++
      }
      expect(count).toBe(result.blocks)
      expect(count).toBeGreaterThan((record?.blocks as number)) // plus the manifest and the snapshot's nodes
      expect(await reader.has(parseCid(db) as CID)).toBe(true)
    } finally {
      await store.close()
    }
  })
})

describe('keepers: several', () => {
  it('keepers of one database converge through a replica that reaches both: a device reaching only the second sees what was written through the first', async () => {
    const k1 = await keeper()
    const k2 = await keeper()
    const a = track(await KiteDB.init('two keepers', device([k1.addr], { access: { write: ['*'] } })))
    await (await a.initCollection('todos')).insertOne({ _id: '1', title: 'through the first' })
    await a.whenKept({ timeoutMs: 20_000 })
    const key = new URL(a.shareLink('http://x/')).hash.match(/key=([\w-]+)/)?.[1] as string
    await a.close()

    const b = track(await KiteDB.open(a.address, device([k1.addr, k2.addr], { key })))
    await eventually(async () => (await titles(b)).length === 1, 20_000, 'B to get the list from the first keeper')
    await eventually(() => b.keepers().filter(k => k.state === 'kept').length === 2, 20_000, 'both keepers to keep it')
    await b.close()

    const c = track(await KiteDB.open(a.address, device([k2.addr], { key })))
    await eventually(async () => (await titles(c)).length === 1, 20_000, 'C to get the list from the second keeper alone')
    expect(await titles(c)).toEqual(['through the first'])
  })
})
