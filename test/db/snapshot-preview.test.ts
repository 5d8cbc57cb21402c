/**
 * A replica that holds nothing and joins from a snapshot shows each page's documents to its live
 * queries before the install commits (docs/snapshots.md); a join that fails takes them back.
 */
import { describe, expect, it } from 'vitest'
import { InvalidBlockError } from '../../src/errors.js'
import { KiteDB, MemoryStorageProvider, type Database } from '../../src/index.js'
import { type MemoryStorage } from '../../src/store/memory.js'
import { setLogLevel } from '../../src/log.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

/** A memory provider whose storages run `installSnapshot` only after `hold` resolves (or throw what it rejects with). */
class HeldInstall extends MemoryStorageProvider {
  /** installs committed */
  installed = 0
  constructor (private readonly hold: () => Promise<void>) { super() }
  override async open (dbId: string): Promise<MemoryStorage> {
    const storage = await super.open(dbId)
    const install = storage.installSnapshot.bind(storage)
    storage.installSnapshot = async input => {
      await this.hold()
      const result = await install(input)
      this.installed++
      return result
    }
    return storage
  }
}

const replication = { republishMs: 50, snapshotMinBlocks: 5, snapshotWarmMs: 0, snapshotAudit: false, fetchBatch: 2 }

/**
 * A writes `n` documents and deletes one. It makes no snapshot ahead of time: one made partway
 * through the writes could be offered to B (the total build limit), and the preview would show
 * only what it holds. B's request makes one of A's current heads.
 */
async function writer (hub: MemoryHub, n: number): Promise<Database> {
  const a = await KiteDB.init('preview', { encrypt: false, access: { write: ['*'] }, storage: new MemoryStorageProvider(), transport: hub.join('A'), replication: { ...replication, snapshotWarmMs: Infinity } })
  const c = await a.initCollection('c')
  for (let i = 0; i < n; i++) await c.insertOne({ _id: `d${String(i).padStart(2, '0')}`, i })
  await c.deleteOne({ _id: 'd00' })
  return a
}

/** B opens A's database cut off from A, observes everything, and is let through once its live query has its first (empty) result. */
async function observedJoin (hub: MemoryHub, a: Database, provider: MemoryStorageProvider): Promise<{ b: Database, seen: string[][], stop: () => void }> {
  hub.partition(['A'], ['B'])
  const b = await KiteDB.open(a.address, { storage: provider, transport: hub.join('B'), replication })
  const seen: string[][] = []
  const stop = (await b.initCollection('c')).observe({}, docs => { seen.push(docs.map(d => d._id)) })
  await eventually(() => seen.length > 0, 5000, 'the first result')
  hub.heal()
  return { b, seen, stop }
}

describe('snapshot join preview', () => {
  it('observe shows the snapshot\'s documents before the install commits, then the installed ones', async () => {
    const hub = new MemoryHub()
    const a = await writer(hub, 30)
    let release = (): void => {}
    const held = new Promise<void>(resolve => { release = resolve })
    let installing = false
    const provider = new HeldInstall(async () => { installing = true; await held })
    const { b, seen, stop } = await observedJoin(hub, a, provider)
    await eventually(() => seen.at(-1)?.length === 29, 10_000, 'the preview').catch(err => { throw new Error(`${(err as Error).message}: ${JSON.stringify(seen.map(x => x.length))} installing ${String(installing)}`) })
    // The pages are shown as they arrive; the install (held) may start a moment after.
    await eventually(() => installing, 10_000, 'the install to start')
    expect(provider.installed).toBe(0) // shown before anything was committed (storage cannot be read meanwhile: it waits for the install)
    expect(seen.at(-1)).not.toContain('d00') // a deleted document is not shown
    release()
    const cb = await b.initCollection('c')
    await eventually(async () => provider.installed === 1 && await cb.countDocuments() === 29, 10_000, 'the install')
    expect(seen.at(-1)).toEqual((await cb.find({})).map(d => d._id))
    stop()
    await b.close()
    await a.close()
  })

  it('a join whose install fails takes the shown documents back', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const a = await writer(hub, 30)
    let release = (): void => {}
    const held = new Promise<void>(resolve => { release = resolve })
    let refused = false
    const provider = new HeldInstall(async () => {
      if (refused) return
      refused = true
      await held
      throw new InvalidBlockError('refused by the test')
    })
    const { b, seen, stop } = await observedJoin(hub, a, provider)
    await eventually(() => seen.at(-1)?.length === 29, 10_000, 'the preview')
    const shownAt = seen.length
    release()
    // Taken back (storage holds fewer, if any), then filled again by replaying the blocks.
    await eventually(() => seen.slice(shownAt).some(ids => ids.length < 29), 10_000, 'the preview taken back')
    const cb = await b.initCollection('c')
    await eventually(async () => await cb.countDocuments() === 29 && seen.at(-1)?.length === 29, 20_000, 'the blocks replayed')
    expect(provider.installed).toBe(0)
    stop()
    await b.close()
    await a.close()
    setLogLevel('warn')
  })
})
