/**
 * Presence: peers see each other's ephemeral state, sealed for an encrypted database, never
 * stored, gone at once on goodbye and a few seconds after a peer vanishes; bad input is refused.
 */
import { describe, expect, it } from 'vitest'
import { KiteDB, MemoryStorageProvider, ValidationError, setLogLevel, type Database } from '../../src/index.js'
import { encodePresenceMessage, topicOf } from '../../src/sync/index.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

async function pair (hub: MemoryHub, encrypt: boolean): Promise<[Database, Database]> {
  const a = await KiteDB.init(`presence-${String(encrypt)}`, { storage: new MemoryStorageProvider(), transport: hub.join('A'), encrypt, access: { write: ['*'] } })
  const key = /key=([\w-]{43})/.exec(a.shareLink('http://app/'))?.[1]
  const b = await KiteDB.open(a.address, { storage: new MemoryStorageProvider(), transport: hub.join('B'), ...(key !== undefined ? { key } : {}) })
  return [a, b]
}

const states = (db: Database): unknown[] => db.presence.get().map(e => e.state)

describe('presence', () => {
  it('peers see each other\'s state and its changes; a goodbye removes it at once; nothing is stored', async () => {
    const hub = new MemoryHub()
    const [a, b] = await pair(hub, false)
    const heads = (await a.syncState()).heads
    const changes: number[] = []
    b.presence.on('change', peers => { changes.push(peers.length) })
    a.presence.set({ name: 'Ada', editing: null })
    await eventually(() => JSON.stringify(states(b)) === JSON.stringify([{ name: 'Ada', editing: null }]), 5000, 'B to see A')
    expect(b.presence.get()[0]?.peer).toBe('A')
    a.presence.set({ name: 'Ada', editing: 'todo-7' })
    await eventually(() => (states(b)[0] as { editing: string } | undefined)?.editing === 'todo-7', 5000, 'B to see the change')
    a.presence.set(null)
    await eventually(() => b.presence.get().length === 0, 5000, 'the goodbye')
    expect(changes.at(-1)).toBe(0)
    expect((await a.syncState()).heads).toEqual(heads)
    expect((await b.syncState()).heads).toEqual(heads)
    await a.close()
    await b.close()
  })

  it('an encrypted database\'s presence is sealed: the wire never shows the state, and B with the key reads it', async () => {
    const hub = new MemoryHub()
    const [a, b] = await pair(hub, true)
    const tap = hub.join('tap')
    const wire: string[] = []
    tap.subscribe(topicOf(a.address.slice('/kite/'.length)), data => { wire.push(Buffer.from(data).toString('latin1')) })
    a.presence.set({ name: 'Ada Lovelace' })
    await eventually(() => (states(b)[0] as { name: string } | undefined)?.name === 'Ada Lovelace', 5000, 'B to read the sealed state')
    expect(wire.length).toBeGreaterThan(0)
    expect(wire.some(w => w.includes('Lovelace'))).toBe(false)
    await a.close()
    await b.close()
  })

  it('a peer that vanishes without a goodbye is forgotten within seconds', async () => {
    const hub = new MemoryHub()
    const [a, b] = await pair(hub, false)
    a.presence.set({ name: 'Ada' })
    await eventually(() => b.presence.get().length === 1, 5000, 'B to see A')
    hub.leave('A') // A's tab is killed: no goodbye
    await eventually(() => b.presence.get().length === 0, 10_000, 'A to be forgotten')
    await a.close()
    await b.close()
  }, 20_000)

  it('refuses states that are not JSON or too big, and peers\' states that do not open', async () => {
    setLogLevel('silent')
    try {
      const hub = new MemoryHub()
      const [a, b] = await pair(hub, true)
      expect(() => { a.presence.set({ big: 'x'.repeat(5000) }) }).toThrow(ValidationError)
      expect(() => { a.presence.set({ f: () => 1 } as never) }).toThrow(ValidationError)
      const evil = hub.join('evil')
      const topic = topicOf(a.address.slice('/kite/'.length))
      for (const bytes of [new Uint8Array(100).fill(7), encodePresenceMessage({ state: new TextEncoder().encode('{"name":"plain in a sealed db"}') }), encodePresenceMessage({ state: new Uint8Array(5000) })]) {
        await evil.publish(topic, bytes)
      }
      a.presence.set({ name: 'Ada' })
      await eventually(() => b.presence.get().length === 1, 5000, 'B to see A')
      expect(b.presence.get().map(e => e.peer)).toEqual(['A'])
      await a.close()
      await b.close()
    } finally {
      setLogLevel('warn')
    }
  })
})
