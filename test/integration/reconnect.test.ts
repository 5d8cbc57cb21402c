/**
 * Staying connected, over real libp2p in Node: relays killed and restarted on the same key and
 * port, a relay down when a database opens, two relays with one lost, and relays that cannot be
 * used (never answers, full, another peer id), and a replica's link cut and back before the relay
 * notices (the relay holds a half-open connection beside the new one). Browsers meet the same
 * faults in test/e2e/network.spec.ts and in `npm run bench`'s network-heal.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { type PrivateKey } from '@libp2p/interface'
import { Libp2pTransport, createPeerNode, createRelayNode, parseRelays, type PeerNode } from '../../src/net/index.js'
import { retryDelay, DEFAULT_BACKOFF } from '../../src/net/relays.js'
import { KiteDB, MemoryStorageProvider, type Database, type NetworkStatus } from '../../src/index.js'
import { eventually } from '../helpers/memory-transport.js'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) {
    const t = Date.now()
    await c().catch(() => {})
    if (Date.now() - t > 1000) console.log('slow cleanup', Date.now() - t, c.toString().slice(0, 80))
  }
}, 60_000)

/** A relay that can be killed and started again with the same key on the same port. */
class Relay {
  node?: PeerNode
  port = 0
  private constructor (readonly key: PrivateKey, private readonly options: Parameters<typeof createRelayNode>[0]) {}
  static async start (options: Parameters<typeof createRelayNode>[0] = {}): Promise<Relay> {
    const r = new Relay(await generateKeyPair('Ed25519'), options)
    await r.restart()
    cleanups.push(async () => { await r.kill() })
    return r
  }

  get addr (): string { return `/ip4/127.0.0.1/tcp/${this.port}/ws/p2p/${this.key.publicKey.toString()}` }
  get peerId (): string { return this.node?.peerId.toString() as string }
  async kill (): Promise<void> { await this.node?.stop(); this.node = undefined }
  async restart (): Promise<void> {
    this.node = await createRelayNode({ ...this.options, port: this.port, privateKey: this.key })
    this.port = Number(this.node.getMultiaddrs()[0]?.toString().split('/')[4])
  }
}

async function open (name: string, relays: string[], address?: string, extra: Record<string, unknown> = {}): Promise<Database> {
  const options = { relays, node: `${name}-${Math.random()}`, storage: new MemoryStorageProvider(), replication: { republishMs: 500 }, ...extra }
  const db = address === undefined ? await KiteDB.init(name, { ...options, encrypt: false, access: { write: ['*'] } }) : await KiteDB.open(address, options)
  cleanups.push(async () => { await db.close() })
  return db
}

const titles = async (db: Database): Promise<string[]> =>
  (await (await db.initCollection<{ title: string }>('todos')).find({}, undefined, { sort: { _id: 1 } })).map(d => d.title)

/** The statuses a database goes through from now on. */
function statuses (db: Database): NetworkStatus[] {
  const seen: NetworkStatus[] = []
  db.on('network', status => { if (seen.at(-1) !== status) seen.push(status) })
  return seen
}

describe('relay reconnection backoff', () => {
  it('the first retry comes within a second; delays grow to the cap, never past it, and jitter spreads them', () => {
    for (const r of [0, 0.5, 0.999]) {
      expect(retryDelay(0, false, DEFAULT_BACKOFF, () => r)).toBeLessThanOrEqual(1000)
      expect(retryDelay(0, false, DEFAULT_BACKOFF, () => r)).toBeGreaterThanOrEqual(250)
      for (let n = 0; n < 40; n++) {
        expect(retryDelay(n, false, DEFAULT_BACKOFF, () => r)).toBeLessThanOrEqual(DEFAULT_BACKOFF.maxMs)
        expect(retryDelay(n, true, DEFAULT_BACKOFF, () => r)).toBeLessThanOrEqual(DEFAULT_BACKOFF.maxFastMs)
      }
    }
    expect(retryDelay(10, false, DEFAULT_BACKOFF, () => 0)).toBe(DEFAULT_BACKOFF.maxMs / 2)
    expect(retryDelay(3, false, DEFAULT_BACKOFF, () => 0)).toBeLessThan(retryDelay(4, false, DEFAULT_BACKOFF, () => 0))
    expect(new Set(Array.from({ length: 20 }, () => retryDelay(6, false))).size).toBeGreaterThan(10)
  })
})

describe('staying connected through relay faults', () => {
  it('a relay killed and restarted on the same key and port: replicas reconnect, a fresh replica joins and sees everything', async () => {
    const relay = await Relay.start()
    const a = await open('restart', [relay.addr], undefined, { directConnections: false })
    await a.whenOnline()
    const seenA = statuses(a)
    await (await a.initCollection('todos')).insertOne({ _id: '1', title: 'before' })

    await relay.kill()
    await eventually(async () => a.networkStatus !== 'online', 15_000, 'A to notice the relay is gone')
    expect(a.networkState().relays[0]?.error).toBeTruthy()
    await (await a.initCollection('todos')).insertOne({ _id: '2', title: 'while the relay was down' })
    await new Promise(resolve => setTimeout(resolve, 3000))
    await relay.restart()

    await eventually(async () => a.networkStatus === 'online', 15_000, 'A back online')
    expect(seenA).toContain('online')
    expect(seenA.some(s => s === 'offline' || s === 'connecting')).toBe(true)
    const b = await open('restart', [relay.addr], a.address, { directConnections: false })
    await eventually(async () => (await titles(b)).length === 2, 20_000, 'a fresh replica to see everything')
    expect(await titles(b)).toEqual(['before', 'while the relay was down'])
    expect((await b.syncState()).holders).toBeGreaterThan(0)
  })

  it('a relay down when the database opens: it works locally, says so, and comes online when the relay starts', async () => {
    const relay = await Relay.start()
    const addr = relay.addr
    await relay.kill()
    const a = await open('late', [addr])
    await (await a.initCollection('todos')).insertOne({ _id: '1', title: 'local first' })
    await eventually(async () => a.networkStatus === 'offline', 10_000, 'offline with a next attempt')
    expect(a.networkState().nextAttemptAt).toBeGreaterThan(Date.now() - 1000)
    await relay.restart()
    await a.whenOnline()
    expect(a.networkState().reserved).toBe(1)
  })

  it('two relays, one killed: replication goes on through the other; the lost one is reserved again when it returns', async () => {
    const r1 = await Relay.start()
    const r2 = await Relay.start()
    const relays = [r1.addr, r2.addr]
    const a = await open('two', relays, undefined, { directConnections: false })
    const b = await open('two', relays, a.address, { directConnections: false })
    await Promise.all([a.whenOnline(), b.whenOnline()])
    await eventually(async () => a.networkState().reserved === 2 && b.networkState().reserved === 2, 15_000, 'both relays reserved')
    const ta = await a.initCollection('todos')
    await ta.insertOne({ _id: '1', title: 'one' })
    await eventually(async () => (await titles(b)).length === 1, 15_000, 'B to see the first')

    await r1.kill()
    await ta.insertOne({ _id: '2', title: 'two' })
    await eventually(async () => (await titles(b)).length === 2, 15_000, 'B to see the second through the other relay')
    expect(a.networkStatus).toBe('online')
    await eventually(async () => a.networkState().reserved === 1, 15_000, 'A to notice the lost relay')
    await r1.restart()
    await eventually(async () => a.networkState().reserved === 2, 15_000, 'A to reserve on the returned relay')
  })

  it('relays that cannot be used are reported with a reason, and the good one is used', async () => {
    const good = await Relay.start()
    // a port that accepts TCP connections and never answers
    const sockets = new Set<Socket>()
    const silent: Server = createServer(socket => { sockets.add(socket) })
    await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise(resolve => silent.close(resolve))
    })
    const silentPort = (silent.address() as { port: number }).port
    const stranger = (await generateKeyPair('Ed25519')).publicKey.toString()
    // a relay's address with another peer id than its own
    const other = await Relay.start()
    const impostor = other.addr.replace(other.peerId, stranger)
    const full = await Relay.start({ maxReservations: 1 })
    const squatter = await createPeerNode({ relays: [full.addr] })
    cleanups.push(async () => { await squatter.stop() })

    const nobody = (await generateKeyPair('Ed25519')).publicKey.toString()
    const relays = [`/ip4/127.0.0.1/tcp/${silentPort}/ws/p2p/${nobody}`, impostor, full.addr, good.addr]
    const a = await open('bad', relays)
    await a.whenOnline()
    await eventually(async () => {
      const s = a.networkState().relays
      return s[0]?.error !== null && s[1]?.error !== null && s[2]?.error !== null && s[3]?.state === 'reserved'
    }, 20_000, 'every bad relay to have a reason')
    const [neverAnswers, wrongId, refuses] = a.networkState().relays
    expect(neverAnswers?.state).not.toBe('reserved')
    expect(wrongId?.error).toMatch(/another peer id/)
    expect(refuses?.state).toBe('connected')
    expect(refuses?.error).toMatch(/refused a reservation/)
  })
})

/**
 * A TCP link to `port` that can be cut the way a device's network goes down: the device's end of
 * every open connection closes at once (its browser drops sockets on a network change) while the
 * far end hears nothing and keeps a half-open connection, and new connections are refused until
 * `heal`. `closeStale` then closes those half-open ends, as the far end's next packet meeting the
 * device's reset does.
 */
class Link {
  private readonly pairs = new Set<{ near: Socket, far: Socket }>()
  private readonly stale = new Set<Socket>()
  private down = false
  private constructor (private readonly server: Server) {}

  static async to (port: number): Promise<Link> {
    const link = new Link(createServer(near => { link.accept(near, port) }))
    await new Promise<void>(resolve => link.server.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => { await link.close() })
    return link
  }

  get port (): number { return (this.server.address() as { port: number }).port }

  cut (): void {
    this.down = true
    for (const pair of this.pairs) {
      pair.near.unpipe(pair.far)
      pair.far.unpipe(pair.near)
      pair.near.destroy()
      this.stale.add(pair.far)
    }
    this.pairs.clear()
  }

  heal (): void { this.down = false }

  /** Close the far ends the cut left half open; how many there were. */
  closeStale (): number {
    const n = this.stale.size
    for (const far of this.stale) far.destroy()
    this.stale.clear()
    return n
  }

  async close (): Promise<void> {
    this.cut()
    this.closeStale()
    await new Promise(resolve => this.server.close(resolve))
  }

  private accept (near: Socket, port: number): void {
    if (this.down) { near.destroy(); return }
    const far = connect(port, '127.0.0.1')
    const pair = { near, far }
    this.pairs.add(pair)
    near.pipe(far).on('error', () => {})
    far.pipe(near).on('error', () => {})
    near.on('error', () => {})
    far.on('error', () => {})
    near.on('close', () => { if (this.pairs.delete(pair)) far.destroy() })
  }
}

describe('a network cut the relay does not notice', () => {
  it('a replica whose link drops and returns before the relay notices: gossip flows both ways, before and after the relay drops its half-open connection', async () => {
    const relay = await Relay.start()
    const link = await Link.to(relay.port)
    const a = await open('half-open', [relay.addr], undefined, { directConnections: false })
    const b = await open('half-open', [relay.addr.replace(`/tcp/${relay.port}/`, `/tcp/${link.port}/`)], a.address, { directConnections: false })
    await Promise.all([a.whenOnline(), b.whenOnline()])
    const [ta, tb] = await Promise.all([a.initCollection('todos'), b.initCollection('todos')])
    await ta.insertOne({ _id: 'a0', title: 'a before' })
    await eventually(async () => (await titles(b)).length === 1, 15_000, 'B to see A\'s first write')

    link.cut()
    await eventually(async () => b.networkStatus !== 'online', 10_000, 'B to notice its link is down')
    await Promise.all([ta.insertOne({ _id: 'a1', title: 'a during' }), tb.insertOne({ _id: 'b1', title: 'b during' })])
    link.heal()
    // The relay still holds B's old connection beside the new one.
    const during = ['a before', 'a during', 'b during']
    await eventually(async () => (await titles(a)).length === 3 && (await titles(b)).length === 3, 20_000, 'both replicas to hold what each wrote during the cut')
    expect((await titles(a)).sort()).toEqual(during)
    expect((await titles(b)).sort()).toEqual(during)
    // Now it learns the old one is dead.
    expect(link.closeStale()).toBe(1)

    await ta.insertOne({ _id: 'a2', title: 'a after' })
    await tb.insertOne({ _id: 'b2', title: 'b after' })
    const all = ['a after', 'a before', 'a during', 'b after', 'b during']
    await eventually(async () => (await titles(a)).length === 5 && (await titles(b)).length === 5, 20_000, 'both replicas to hold all five')
    expect((await titles(a)).sort()).toEqual(all)
    expect((await titles(b)).sort()).toEqual(all)
  }, 60_000)
})

describe('when a direct connection cannot be made', () => {
  it('replicas sync several times what a relayed circuit may carry, opening new circuits, and keep trying to upgrade', async () => {
    const relay = await Relay.start({ relayedDataLimit: 64 * 1024 })
    // Every WebRTC upgrade fails, as between peers behind symmetric NATs without a TURN server.
    const nodes = await Promise.all([0, 1].map(async () => await createPeerNode({ relays: [relay.addr] })))
    const upgrades = [0, 0]
    nodes.forEach((node, i) => {
      const dial = node.dial.bind(node)
      node.dial = async (target, options) => {
        if (target.toString().includes('/webrtc')) {
          upgrades[i]++
          throw new Error('ICE failed: no candidate pair')
        }
        return await dial(target, options)
      }
      cleanups.push(async () => { await node.stop() })
    })
    const transports = nodes.map(node => new Libp2pTransport(node, { relays: parseRelays([relay.addr]), upgradeBackoffMs: 1000, upgradeFallbackMs: 1000 }))
    cleanups.push(async () => { for (const t of transports) t.close() })
    const a = await KiteDB.init('no-direct', { storage: new MemoryStorageProvider(), transport: transports[0], encrypt: false, access: { write: ['*'] }, replication: { republishMs: 500 } })
    cleanups.push(async () => { await a.close() })
    const ta = await a.initCollection('todos')
    const filler = 'x'.repeat(6000)
    for (let i = 0; i < 40; i++) await ta.insertOne({ _id: `d${String(i).padStart(2, '0')}`, title: `doc ${i}`, filler })
    const b = await KiteDB.open(a.address, { storage: new MemoryStorageProvider(), transport: transports[1], replication: { republishMs: 500 } })
    cleanups.push(async () => { await b.close() })
    await eventually(async () => (await titles(b)).length === 40, 60_000, 'B to receive everything over relayed circuits')
    expect(b.peers().map(p => p.kind)).toEqual(['relayed'])
    await eventually(() => upgrades[0] + upgrades[1] >= 3, 20_000, 'upgrades to be retried in the background')
  }, 120_000)
})
