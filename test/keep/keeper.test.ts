/**
 * Keepers over real libp2p in Node: devices that are never online together sync through a relay
 * that keeps (encrypted, everyone-with-the-link databases: the keeper never has the key).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { KiteDB, type Database } from '../../src/index.js'
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
