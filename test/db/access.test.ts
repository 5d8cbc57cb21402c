/**
 * Access modes (docs/api.md, "Who can read and write") at the API, over an in-memory transport:
 * write lists fixed in the manifest, encrypted databases opened by key, joiners learning the
 * manifest from a peer.
 */
import { describe, expect, it } from 'vitest'
import { AccessError, DatabaseClosedError, KiteDB, MemoryStorageProvider, ValidationError, setLogLevel, type Database } from '../../src/index.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

const replication = { republishMs: 50 }

/** A device: its own storage (so its own key) on the hub. */
function device (hub: MemoryHub, name: string): { storage: MemoryStorageProvider, transport: ReturnType<MemoryHub['join']>, replication: typeof replication } {
  return { storage: new MemoryStorageProvider(), transport: hub.join(name), replication }
}

const ids = async (db: Database): Promise<string[]> =>
  (await (await db.initCollection('c')).find({}, undefined, { sort: { _id: 1 } })).map(d => d._id)

describe('write lists', () => {
  it('by default only the creator writes; a reader replicates but its writes throw AccessError', async () => {
    const hub = new MemoryHub()
    const a = await KiteDB.init('mine', { ...device(hub, 'A'), encrypt: false })
    expect(a.writers).toEqual([a.publicKey])
    expect(a.canWrite).toBe(true)
    await (await a.initCollection('c')).insertOne({ _id: 'x' })
    const b = await KiteDB.open(a.address, device(hub, 'B'))
    expect(b.canWrite).toBe(false) // the manifest has not arrived yet
    await eventually(async () => JSON.stringify(await ids(b)) === '["x"]', 5000, 'B to read')
    expect(b.name).toBe('mine') // learned from the manifest
    expect(b.canWrite).toBe(false)
    await expect((await b.initCollection('c')).insertOne({ _id: 'y' })).rejects.toBeInstanceOf(AccessError)
    expect(await ids(b)).toEqual(['x'])
    await a.close()
    await b.close()
  })

  it('a listed second device writes; an unlisted one cannot', async () => {
    setLogLevel('silent')
    try {
      const hub = new MemoryHub()
      const devB = device(hub, 'B')
      const pkB = await KiteDB.publicKey({ storage: devB.storage })
      const devA = device(hub, 'A')
      const pkA = await KiteDB.publicKey({ storage: devA.storage })
      const db = await KiteDB.init('shared', { ...devA, encrypt: false, access: { write: [pkA, pkB] } })
      expect(db.writers).toEqual([pkA, pkB].sort())
      const b = await KiteDB.open(db.address, devB)
      const c = await KiteDB.open(db.address, device(hub, 'C'))
      await eventually(() => b.canWrite && c.writers !== undefined, 5000, 'manifests to arrive')
      expect(c.canWrite).toBe(false)
      await (await b.initCollection('c')).insertOne({ _id: 'from-b' })
      await eventually(async () => JSON.stringify(await ids(db)) === '["from-b"]', 5000, 'B\'s write to reach A')
      await expect((await c.initCollection('c')).insertOne({ _id: 'from-c' })).rejects.toBeInstanceOf(AccessError)
      expect(await ids(c)).toEqual(['from-b'])
      for (const x of [db, b, c]) await x.close()
    } finally {
      setLogLevel('warn')
    }
  })

  it('rejects malformed write lists and read-only links where anyone may write', async () => {
    const hub = new MemoryHub()
    await expect(KiteDB.init('bad', { ...device(hub, 'A'), access: { write: ['not-a-key'] } })).rejects.toBeInstanceOf(ValidationError)
    await expect(KiteDB.init('bad', { ...device(hub, 'A'), access: { write: ['*', 'zabc'] } })).rejects.toBeInstanceOf(ValidationError)
    const open = await KiteDB.init('open', { ...device(hub, 'B'), access: { write: ['*'] } })
    expect(() => open.shareLink('http://app/', { readOnly: true })).toThrow(ValidationError)
    const listed = await KiteDB.init('listed', device(hub, 'C'))
    expect(listed.shareLink('http://app/', { readOnly: true })).toContain('#db=')
  })
})

describe('waiting for the manifest', () => {
  it('a write waiting for the manifest rejects with DatabaseClosedError when the database closes', async () => {
    const hub = new MemoryHub()
    const a = await KiteDB.init('far', { ...device(hub, 'A'), encrypt: false })
    const address = a.address
    await a.close() // no peer will ever serve the manifest
    const b = await KiteDB.open(address, device(hub, 'B'))
    const coll = await b.initCollection('c')
    let settled = false
    const write = coll.insertOne({ _id: 'y' }).finally(() => { settled = true })
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(settled).toBe(false) // it waits for the manifest
    await b.close()
    await expect(write).rejects.toBeInstanceOf(DatabaseClosedError)
  })
})

describe('encrypted databases', () => {
  it('with access [\'*\'], anyone with the link reads and writes; the key is in the link and kept locally', async () => {
    const hub = new MemoryHub()
    const a = await KiteDB.init('secret', { ...device(hub, 'A'), encrypt: true, access: { write: ['*'] } })
    expect(a.encrypted).toBe(true)
    expect(a.writers).toEqual(['*'])
    // (no peer= here: the in-memory transport's peer ids are not libp2p ones)
    const key = new URLSearchParams(a.shareLink('http://app/').split('#')[1]).get('key')
    expect(key).toMatch(/^[\w-]{43}$/)
    await (await a.initCollection('c')).insertOne({ _id: 'a1' })
    const devB = device(hub, 'B')
    const b = await KiteDB.open(a.address, { ...devB, key: key as string })
    await eventually(async () => JSON.stringify(await ids(b)) === '["a1"]', 5000, 'B to read')
    expect(b.name).toBe('secret') // sealed in the manifest, opened with the key
    await (await b.initCollection('c')).insertOne({ _id: 'b1' })
    await eventually(async () => JSON.stringify(await ids(a)) === '["a1","b1"]', 5000, 'B\'s write to reach A')
    await b.close()
    const again = await KiteDB.open(a.address, devB) // no key this time: it was kept
    expect(again.encrypted).toBe(true)
    expect(await ids(again)).toEqual(['a1', 'b1'])
    await again.close()
    await a.close()
  })

  it('a wrong key is refused: at once when the manifest is known, with an error event when it arrives', async () => {
    setLogLevel('silent')
    try {
      const hub = new MemoryHub()
      const devA = device(hub, 'A')
      const a = await KiteDB.init('secret2', { ...devA, encrypt: true })
      await (await a.initCollection('c')).insertOne({ _id: 'hidden' })
      const wrong = 'A'.repeat(42) + 'A'
      const b = await KiteDB.open(a.address, { ...device(hub, 'B'), key: wrong })
      const error = await new Promise<Error>(resolve => { b.on('error', resolve) })
      expect(error).toBeInstanceOf(AccessError)
      expect(error.message).toMatch(/wrong key/)
      expect(await ids(b)).toEqual([])
      await b.close()
      const noKey = await KiteDB.open(a.address, device(hub, 'C'))
      const noKeyError = await new Promise<Error>(resolve => { noKey.on('error', resolve) })
      expect(noKeyError.message).toMatch(/encrypted/)
      expect(await ids(noKey)).toEqual([])
      // On the creator's device the manifest is known: a wrong key throws at once.
      await a.close()
      await expect(KiteDB.open(a.address, { storage: devA.storage, key: wrong })).rejects.toThrow(AccessError)
      const reopened = await KiteDB.open(a.address, { storage: devA.storage }) // the right key was kept
      expect(await ids(reopened)).toEqual(['hidden'])
      await reopened.close()
    } finally {
      setLogLevel('warn')
    }
  })
})

describe('snapshots and access', () => {
  it('an encrypted database is joined from a sealed snapshot; a reader of a write-list database offers none', async () => {
    const { buildSnapshot, decodeSnapshotNode } = await import('../../src/sync/index.js')
    const { generateKey } = await import('../../src/crdt/index.js')
    const hub = new MemoryHub()
    const replicationSmall = { republishMs: 50, snapshotMinBlocks: 20 }
    const a = await KiteDB.init('sealed-history', { ...device(hub, 'A'), replication: replicationSmall, encrypt: true })
    const c = await a.initCollection('c')
    for (let i = 0; i < 30; i++) await c.insertOne({ _id: `d${String(i).padStart(2, '0')}`, title: `secret ${i}` })
    const key = new URLSearchParams(a.shareLink('http://app/').split('#')[1]).get('key') as string
    const b = await KiteDB.open(a.address, { ...device(hub, 'B'), replication: replicationSmall, key })
    await eventually(async () => (await ids(b)).length === 30, 10_000, 'B to join')
    expect((await b.syncState()).snapshot).not.toBeNull() // it joined from A's snapshot, not 30 blocks

    // Sealed nodes: no plaintext, and no opening without the key or with another.
    const built = await buildSnapshot('bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4', {
      heads: [], blocks: [], colls: [], docs: [{ coll: 'c', id: 'x', state: { f: { _id: { s: [1, 0, 'r', 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4', 0], v: 'x' }, title: { s: [1, 0, 'r', 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4', 0], v: 'top secret' } } } }]
    }, generateKey())
    for (const [cid, bytes] of built.nodes) {
      expect(new TextDecoder('latin1').decode(bytes)).not.toContain('top secret')
      const parsed = (await import('../../src/crdt/index.js')).parseCid(cid) as never
      await expect(decodeSnapshotNode(bytes, parsed)).rejects.toThrow(/no key/)
      await expect(decodeSnapshotNode(bytes, parsed, { db: 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4', key: generateKey() })).rejects.toThrow(/wrong key/)
    }

    // A write-list database: a reader (C) offers no snapshot, so D joins from the writer only.
    const w = await KiteDB.init('listed-history', { ...device(hub, 'W'), replication: replicationSmall, encrypt: false })
    const wc = await w.initCollection('c')
    for (let i = 0; i < 30; i++) await wc.insertOne({ _id: `w${String(i).padStart(2, '0')}` })
    const reader = await KiteDB.open(w.address, { ...device(hub, 'C'), replication: replicationSmall })
    await eventually(async () => (await ids(reader)).length === 30, 10_000, 'C to join')
    const { SNAPSHOT_PROTOCOL, encodeSnapshotRequest, decodeSnapshotResponse } = await import('../../src/sync/index.js')
    const { parseAddress } = await import('../../src/crdt/index.js')
    const probe = hub.join('probe')
    const ask = async (peer: string): Promise<unknown> => decodeSnapshotResponse(await probe.request(peer, SNAPSHOT_PROTOCOL,
      encodeSnapshotRequest({ db: parseAddress(w.address).toString(), blocks: 0 }))).root
    expect(await ask('W')).toBeDefined()
    expect(await ask('C')).toBeUndefined()
    for (const db of [a, b, w, reader]) await db.close()
  })
})
