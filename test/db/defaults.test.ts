/**
 * What a database shares by default: it is encrypted (its address alone reads nothing), only this
 * device writes, and nothing is announced; `encrypt: false` makes a public database, and
 * `announce: true` publishes the address — sealed with the key, for an encrypted database.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { AccessError, InvalidMessageError } from '../../src/errors.js'
import { KiteDB, type Database, parseShareLink } from '../../src/index.js'
import { formatAddress, parseAddress, parseKey } from '../../src/crdt/index.js'
import { MemoryStorageProvider } from '../../src/store/index.js'
import { announceTopic, decodeAnnouncement, encodeAnnouncement, isSealedAnnouncement } from '../../src/db/announce.js'
import { setLogLevel } from '../../src/log.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

const open: Database[] = []
const replication = { republishMs: 50 }
afterEach(async () => {
  for (const db of open.splice(0)) await db.close()
  setLogLevel('warn')
})
const track = (db: Database): Database => { open.push(db); return db }
/** The key in a database's share link (the memory transport's peer ids are not libp2p ones, so the link is not parsed whole). */
const keyOf = (db: Database): Uint8Array => parseKey(/[#&]key=([\w-]{43})/.exec(db.shareLink('http://x/'))?.[1])

describe('encrypted by default', () => {
  it('init encrypts, puts the key in the share link and lets only this device write', async () => {
    const db = track(await KiteDB.init('private', { storage: new MemoryStorageProvider() }))
    expect(db.encrypted).toBe(true)
    expect(parseShareLink(db.shareLink('http://x/'))?.key).toMatch(/^[\w-]{43}$/)
    expect(keyOf(db)).toHaveLength(32)
    expect(db.writers).toEqual([db.publicKey])
    expect(db.shareLink('http://x/', { readOnly: true })).toContain('key=') // a link that only reads
  })

  it('a stranger with the address (but no link) reads nothing; a link holder reads, and writes only if listed', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const owner = track(await KiteDB.init('private', { storage: new MemoryStorageProvider(), transport: hub.join('owner'), replication }))
    await (await owner.initCollection('secrets')).insertOne({ _id: 's', text: 'only for the link' })
    const stranger = track(await KiteDB.open(owner.address, { storage: new MemoryStorageProvider(), transport: hub.join('stranger'), replication }))
    const errors: Error[] = []
    stranger.on('error', err => { errors.push(err) })
    await eventually(() => errors.length > 0, 5000, 'the stranger to be refused')
    expect(errors[0]).toBeInstanceOf(AccessError)
    expect(await stranger.listCollections()).toEqual([])
    const friend = track(await KiteDB.open(owner.address, { key: keyOf(owner), storage: new MemoryStorageProvider(), transport: hub.join('friend'), replication }))
    const secrets = await friend.initCollection('secrets')
    await eventually(async () => (await secrets.find()).length === 1, 5000, 'the link holder to read')
    expect(friend.canWrite).toBe(false)
    await expect(secrets.insertOne({ text: 'vandal' })).rejects.toBeInstanceOf(AccessError)
  })

  it('explicit options keep working: encrypt: false makes a public database, access lists writers', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const pub = track(await KiteDB.init('public', { encrypt: false, storage: new MemoryStorageProvider(), transport: hub.join('A'), replication }))
    expect(pub.encrypted).toBe(false)
    expect(pub.shareLink('http://x/')).not.toContain('key=')
    await (await pub.initCollection('c')).insertOne({ _id: 'p', v: 1 })
    const reader = track(await KiteDB.open(pub.address, { storage: new MemoryStorageProvider(), transport: hub.join('B'), replication }))
    const c = await reader.initCollection('c')
    await eventually(async () => (await c.find()).length === 1, 5000, 'anyone to read a public database')
    const shared = track(await KiteDB.init('shared', { access: { write: ['*'] }, storage: new MemoryStorageProvider() }))
    expect(shared.encrypted).toBe(true)
    expect(shared.writers).toEqual(['*'])
    const plainOpen = track(await KiteDB.init('wiki', { encrypt: false, access: { write: ['*'] }, storage: new MemoryStorageProvider() }))
    expect([plainOpen.encrypted, plainOpen.writers]).toEqual([false, ['*']])
  })
})

describe('announcements', () => {
  it('nothing is announced unless asked; an announced encrypted database reveals nothing without its key', async () => {
    const hub = new MemoryHub()
    const transport = hub.join('A')
    const quiet = track(await KiteDB.init('quiet', { storage: new MemoryStorageProvider(), transport, replication }))
    const quietPlain = track(await KiteDB.init('quiet-plain', { encrypt: false, storage: new MemoryStorageProvider(), transport, replication }))
    const shown = track(await KiteDB.init('shown', { announce: true, storage: new MemoryStorageProvider(), transport, replication }))
    await (await shown.initCollection('todos')).insertOne({ title: 'x' })
    const heard: Uint8Array[] = []
    hub.join('listener').subscribe(announceTopic('A'), data => { heard.push(data) })
    const key = keyOf(shown)
    // Every announcement goes out to a new subscriber at once: the announced one is the control.
    await eventually(() => heard.some(d => { try { return decodeAnnouncement(d, { key, peerId: 'A' }).address === shown.address } catch { return false } }), 5000, 'the announcement')
    await new Promise(resolve => setTimeout(resolve, 100))
    const text = (d: Uint8Array): string => Buffer.from(d).toString('latin1')
    for (const d of heard) {
      for (const db of [quiet, quietPlain, shown]) {
        expect(text(d)).not.toContain(db.address.slice('/kite/'.length))
        expect(Buffer.from(d).includes(Buffer.from(parseAddress(db.address).bytes))).toBe(false)
      }
      expect(text(d)).not.toContain('todos')
      expect(isSealedAnnouncement(d)).toBe(true)
      expect(() => decodeAnnouncement(d)).toThrow(InvalidMessageError)
      expect(() => decodeAnnouncement(d, { key: keyOf(quiet), peerId: 'A' })).toThrow(InvalidMessageError)
      expect(() => decodeAnnouncement(d, { key, peerId: 'someone-else' })).toThrow(InvalidMessageError)
    }
    expect(decodeAnnouncement(heard[0], { key, peerId: 'A' })).toEqual({ address: shown.address, collections: ['todos'], relays: [] })
  })

  it('a plain database asked to announce does so in the clear (it is public)', async () => {
    const bytes = encodeAnnouncement({ address: formatAddress(parseAddress('bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4')), collections: ['c'], relays: [] })
    expect(isSealedAnnouncement(bytes)).toBe(false)
    expect(decodeAnnouncement(bytes).collections).toEqual(['c'])
  })
})
