/**
 * Hostile peers against the replication engine, over the in-memory transport: heads-only gossip
 * naming junk CIDs (one peer, and many), a writer's block naming parents nobody serves, and
 * snapshot requests alternating with writes to make a replica rebuild its snapshot again and
 * again. Each attack runs against real replicas that must keep replicating real work meanwhile.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { MemoryStorage } from '../../src/store/memory.js'
import {
  BLOCKS_PROTOCOL, DEFAULT_LIMITS, Replica, Replicator, type ReplicatorOptions, SNAPSHOT_PROTOCOL, SnapshotServer, decodeBlocksRequest,
  decodeSnapshotResponse, encodeBlocksResponse, encodeHeadsMessage, encodeSnapshotRequest, topicOf
} from '../../src/sync/index.js'
import { type CID, type EncodedBlock, cidOf, encodeBlock, generateSigner, MAX_PARENTS, parseAddress, parseCid } from '../../src/crdt/index.js'
import { setLogLevel } from '../../src/log.js'
import { KiteDB, MemoryStorageProvider } from '../../src/index.js'
import { MemoryHub, type MemoryTransport, eventually } from '../helpers/memory-transport.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const running: Replicator[] = []

async function replicaOn (hub: MemoryHub, name: string, options: ReplicatorOptions = {}, transport = hub.join(name)): Promise<Replicator> {
  const r = new Replicator(await Replica.open(new MemoryStorage(), DB), transport, { republishMs: 50, snapshotAudit: false, ...options })
  r.start()
  running.push(r)
  return r
}

async function write (r: Replicator, id: string, set: Record<string, unknown>): Promise<void> {
  const applied = await r.replica.commit([{ op: 'put', coll: 'c', id, set: set as Record<string, string> }])
  if (applied !== undefined) await r.publishLocal(applied)
}

const ids = async (r: Replicator): Promise<string[]> => (await r.replica.storage.getDocs('c')).map(d => d._id)
const junk = (): CID => cidOf(crypto.getRandomValues(new Uint8Array(16)))
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

/** Record the CIDs `transport` asks each peer for over `/kitedb/1/blocks`. */
function recordAsks (transport: MemoryTransport): Map<string, string[]> {
  const asked = new Map<string, string[]>()
  const request = transport.request.bind(transport)
  transport.request = async (peer, protocol, data) => {
    if (protocol === BLOCKS_PROTOCOL) asked.set(peer, [...asked.get(peer) ?? [], ...decodeBlocksRequest(data).cids.map(String)])
    return await request(peer, protocol, data)
  }
  return asked
}

afterEach(() => {
  for (const r of running.splice(0)) r.stop()
  setLogLevel('warn')
})

describe('junk heads', () => {
  it('a peer announcing 20,480 random heads gets at most its share of the want list, is asked only for its own, and delays neither a block over 64 KiB nor a catch-up', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    const tb = hub.join('B')
    const asked = recordAsks(tb)
    const b = await replicaOn(hub, 'B', {}, tb)
    await write(a, 'first', { v: 1 })
    await eventually(async () => (await ids(b)).includes('first'), 5000, 'B to replicate')
    // '0evil' sorts before every honest peer, and answers each request slowly, with nothing.
    const evil = hub.join('0evil')
    evil.subscribe(topicOf(DB), () => {})
    evil.handle(BLOCKS_PROTOCOL, async () => { await sleep(300); return encodeBlocksResponse({ blocks: [] }) })
    const announced = new Set<string>()
    for (let m = 0; m < 20; m++) {
      const heads = Array.from({ length: 1024 }, junk)
      for (const h of heads) announced.add(h.toString())
      await evil.publish(topicOf(DB), encodeHeadsMessage({ heads, blocks: [] }))
    }
    let most = 0
    const watch = setInterval(() => { void b.state().then(s => { most = Math.max(most, s.missing) }) }, 20)
    try {
      await sleep(300)
      // Real work meanwhile: a block over 64 KiB (announced by heads only, so fetched) and a fresh replica's catch-up.
      await write(a, 'big', { text: 'x'.repeat(70_000) })
      await eventually(async () => (await ids(b)).includes('big'), 10_000, 'the large block to reach B')
      const c = await replicaOn(hub, 'C', { snapshotJoin: false })
      await eventually(async () => (await ids(c)).length === 2, 10_000, 'C to catch up')
    } finally {
      clearInterval(watch)
    }
    expect(most).toBeGreaterThan(0)
    // the junk peer's share, plus the honest heads wanted meanwhile (not 20,480)
    expect(most).toBeLessThanOrEqual(DEFAULT_LIMITS.maxWantsPerPeer + 4)
    // No honest peer was ever asked for a CID only the junk peer announced.
    for (const [peer, cids] of asked) if (peer !== '0evil') expect(cids.filter(c => announced.has(c))).toEqual([])
    // The junk peer, asked for its own and answering without them, is left with none.
    await eventually(async () => (await b.state()).missing === 0, 10_000, 'the junk wants to be dropped')
  })

  it('20 peers announcing 1,024 junk heads each stay within the total bound (16,384), and real heads still get fetched: a peer\'s that served real blocks, and a new peer\'s', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    const b = await replicaOn(hub, 'B')
    await write(a, 'first', { v: 1 })
    await eventually(async () => (await ids(b)).includes('first'), 5000, 'B to replicate')
    const sybils = Array.from({ length: 20 }, (_, i) => hub.join(`0sybil${String(i).padStart(2, '0')}`))
    for (const s of sybils) {
      s.subscribe(topicOf(DB), () => {})
      s.handle(BLOCKS_PROTOCOL, async () => { await sleep(200); return encodeBlocksResponse({ blocks: [] }) })
      await s.publish(topicOf(DB), encodeHeadsMessage({ heads: Array.from({ length: 1024 }, junk), blocks: [] }))
    }
    let most = 0
    const watch = setInterval(() => { void b.state().then(s => { most = Math.max(most, s.missing) }) }, 20)
    try {
      await sleep(300)
      await write(a, 'big', { text: 'y'.repeat(70_000) })
      await eventually(async () => (await ids(b)).includes('big'), 10_000, 'the trusted peer\'s block to reach B')
      // A new honest peer, which never served B anything, gets its block over 64 KiB through too.
      const q = await replicaOn(hub, 'Q', { snapshotJoin: false })
      await eventually(async () => (await ids(q)).includes('big'), 10_000, 'Q to catch up')
      await write(q, 'fromQ', { text: 'q'.repeat(70_000) })
      await eventually(async () => (await ids(b)).includes('fromQ'), 10_000, 'the new peer\'s block to reach B')
    } finally {
      clearInterval(watch)
    }
    expect(most).toBeGreaterThan(DEFAULT_LIMITS.maxWantsPerPeer)
    expect(most).toBeLessThanOrEqual(DEFAULT_LIMITS.maxWants + 4) // not 20,480
  })
})

describe('phantom parents', () => {
  /** `n` real blocks of database `db` on top of `parent`, and one block naming them all as parents. */
  async function withheld (parent: string[], n: number, db = DB): Promise<{ hidden: EncodedBlock[], tip: EncodedBlock }> {
    const signer = generateSigner()
    const hidden = await Promise.all(Array.from({ length: n }, async (_, i) => await encodeBlock({
      v: 1, db, parents: parent.map(p => parseCid(p) as CID), hlc: { t: Date.now(), c: i, r: 'e' }, ops: [{ op: 'put', coll: 'c', id: `p${i}`, set: { i } }]
    }, { signer })))
    const tip = await encodeBlock({ v: 1, db, parents: hidden.map(h => h.cid), hlc: { t: Date.now(), c: n, r: 'e' }, ops: [{ op: 'put', coll: 'c', id: 'tip', set: { v: 1 } }] }, { signer })
    return { hidden, tip }
  }

  it('a block naming 64 parents nobody serves: they become unavailable (visible, not counted as missing), snapshots are offered again, and they are fetched once a peer serves them', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const options = { unavailableAfterMs: 200, unavailableRetryMs: 60_000, snapshotMinBlocks: 2 }
    const a = await replicaOn(hub, 'A', options)
    const b = await replicaOn(hub, 'B', options)
    await write(a, 'first', { v: 1 })
    await eventually(async () => (await ids(b)).includes('first'), 5000, 'B to replicate')
    const { hidden, tip } = await withheld(await a.replica.heads(), MAX_PARENTS)
    const evil = hub.join('evil')
    evil.subscribe(topicOf(DB), () => {})
    evil.handle(BLOCKS_PROTOCOL, async data => encodeBlocksResponse({ blocks: decodeBlocksRequest(data).cids.some(c => c.equals(tip.cid)) ? [tip.bytes] : [] }))
    await evil.publish(topicOf(DB), encodeHeadsMessage({ heads: [tip.cid], blocks: [tip.bytes] }))
    await eventually(async () => (await ids(b)).includes('tip'), 5000, 'the tip to be applied')
    expect((await b.replica.missing()).length).toBe(MAX_PARENTS)
    await eventually(async () => {
      const s = await b.state()
      return s.unavailable === MAX_PARENTS && s.missing === 0
    }, 10_000, 'the phantom parents to become unavailable')
    expect(await b.outstanding()).toEqual([])
    // B offers snapshots again: a fresh replica joins from one.
    await write(b, 'after', { v: 2 })
    const d = await replicaOn(hub, 'D', { ...options, snapshotAudit: true, snapshotAuditDelayMs: 50 })
    await eventually(async () => (await d.state()).snapshot !== null && (await ids(d)).includes('after'), 10_000, 'D to join from a snapshot')
    // D's audit verifies the snapshot, and waits for the blocks below it that B lacked too.
    await eventually(async () => (await d.state()).audit?.status === 'verified', 10_000, 'D\'s audit')
    expect((await d.state()).audit?.uncovered).toHaveLength(MAX_PARENTS)
    // A peer that has the withheld blocks appears: they are fetched.
    const late = await Replica.open(new MemoryStorage(), DB)
    for (const block of [...await a.replica.storage.getBlocks(await a.replica.heads()), ...hidden.map(h => h.bytes), tip.bytes]) await late.receive(block as Uint8Array)
    const l = new Replicator(late, hub.join('late'), { republishMs: 50, snapshotAudit: false })
    l.start()
    running.push(l)
    await eventually(async () => (await b.state()).unavailable === 0 && (await b.replica.missing()).length === 0, 10_000, 'the withheld blocks to arrive')
    expect((await ids(b)).filter(id => id.startsWith('p'))).toHaveLength(MAX_PARENTS)
    // …at D too, which joined from a snapshot that did not cover them: it ends where B ends.
    await eventually(async () => JSON.stringify(await ids(d)) === JSON.stringify(await ids(b)), 10_000, 'the withheld blocks to reach D')
    expect((await d.state()).audit?.uncovered).toEqual([])
    expect(await d.replica.heads()).toEqual(await b.replica.heads())
  })
})

describe('phantom parents at the API', () => {
  it('syncFromHeadHash resolves once the parents nobody serves are unavailable, and syncState says how many', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const replication = { republishMs: 50, unavailableAfterMs: 200, snapshotAudit: false }
    const a = await KiteDB.init('phantom', { encrypt: false, access: { write: ['*'] }, storage: new MemoryStorageProvider(), transport: hub.join('A'), replication })
    try {
      await (await a.initCollection('c')).insertOne({ _id: 'first' })
      const db = parseAddress(a.address).toString()
      const signer = generateSigner()
      const parents = (await a.syncState()).heads.map(h => parseCid(h) as CID)
      const phantoms = await Promise.all(Array.from({ length: MAX_PARENTS }, async (_, i) => (await encodeBlock({ v: 1, db, parents, hlc: { t: Date.now(), c: i, r: 'e' }, ops: [{ op: 'put', coll: 'c', id: `p${i}`, set: { i } }] }, { signer })).cid))
      const tip = await encodeBlock({ v: 1, db, parents: phantoms, hlc: { t: Date.now(), c: 99, r: 'e' }, ops: [{ op: 'put', coll: 'c', id: 'tip', set: { v: 1 } }] }, { signer })
      const evil = hub.join('evil')
      evil.subscribe(topicOf(db), () => {})
      evil.handle(BLOCKS_PROTOCOL, async () => encodeBlocksResponse({ blocks: [] }))
      await evil.publish(topicOf(db), encodeHeadsMessage({ heads: [tip.cid], blocks: [tip.bytes] }))
      await a.syncFromHeadHash(tip.cid.toString(), { timeoutMs: 15_000 })
      const state = await a.syncState()
      expect(state.unavailable).toBe(MAX_PARENTS)
      expect(state.missing).toBe(0)
      expect(await (await a.initCollection('c')).findById('tip')).toEqual({ _id: 'tip', v: 1 })
    } finally {
      await a.close()
    }
  })
})

describe('snapshot builds', () => {
  /** Count the snapshot sources `replica`'s storage reads (one per snapshot made). */
  function countBuilds (replica: Replica, onBuild: () => void = () => {}): { n: number } {
    const count = { n: 0 }
    const read = replica.storage.readSnapshotSource.bind(replica.storage)
    replica.storage.readSnapshotSource = async () => { count.n++; onBuild(); return await read() }
    return count
  }

  it('a peer alternating a tiny write and a snapshot request makes one snapshot, and is offered it (not a new one) meanwhile', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A', { snapshotMinBlocks: 20, snapshotWarmMs: Infinity })
    for (let i = 0; i < 30; i++) await write(a, `d${i}`, { text: 'x'.repeat(100), i })
    const builds = countBuilds(a.replica)
    const evil = hub.join('evil')
    const roots = new Set<string>()
    for (let i = 0; i < 10; i++) {
      await write(a, 'tiny', { i })
      const answer = decodeSnapshotResponse(await evil.request('A', SNAPSHOT_PROTOCOL, encodeSnapshotRequest({ db: DB, blocks: 0 })))
      expect(answer.root).toBeDefined() // offered, the latest one made
      roots.add(String(answer.root))
    }
    expect(builds.n).toBe(1)
    expect(roots.size).toBe(1)
    // Another peer still joins from a snapshot (the current heads', or the latest one made, then the blocks after it).
    const b = await replicaOn(hub, 'B', { snapshotMinBlocks: 20 })
    await eventually(async () => (await b.state()).snapshot !== null && (await ids(b)).length === 31, 10_000, 'B to join')
    expect(builds.n).toBeLessThanOrEqual(2)
  })

  it('many peers alternating writes and requests get at most a tenth of the replica\'s time in snapshot making', async () => {
    const replica = await Replica.open(new MemoryStorage(), DB)
    for (let i = 0; i < 50; i++) await replica.commit([{ op: 'put', coll: 'c', id: `d${i}`, set: { i } }])
    const clock = { t: 1_000_000 }
    const builds = countBuilds(replica, () => { clock.t += 50 }) // each snapshot takes 50 ms to make
    // minBlocks 50: the 40 writes below never make a snapshot stale (see the next test)
    const server = new SnapshotServer(replica, 50, { perPeerMs: 30_000, now: () => clock.t })
    const start = clock.t
    for (let i = 0; i < 40; i++) {
      await replica.commit([{ op: 'put', coll: 'c', id: 'tiny', set: { i } }])
      clock.t += 10
      expect(await server.offer(0, `sybil${i}`)).toBeDefined()
    }
    const elapsed = clock.t - start
    expect(builds.n).toBeGreaterThan(0)
    expect(builds.n * 50).toBeLessThanOrEqual(elapsed / 10 + 50) // a tenth of the time, give or take the last one
  })

  it('a snapshot the history outgrew (by 50 blocks and a quarter) is made again despite the total limit, not before', async () => {
    const replica = await Replica.open(new MemoryStorage(), DB)
    const commit = async (id: string): Promise<void> => { await replica.commit([{ op: 'put', coll: 'c', id, set: { id } }]) }
    const commits = async (prefix: string, n: number): Promise<void> => { for (let i = 0; i < n; i++) await commit(`${prefix}${i}`) }
    await commits('d', 200)
    const clock = { t: 1_000_000 }
    const builds = countBuilds(replica, () => { clock.t += 1000 }) // each takes 1 s: the next may come 9 s after it
    const server = new SnapshotServer(replica, 4, { perPeerMs: 30_000, now: () => clock.t })
    const first = await server.offer(0, 'p0')
    expect(first).toBeDefined()
    expect(builds.n).toBe(1)
    // 49 blocks past its 200: fewer than 50 → the same snapshot
    await commits('e', 49)
    expect(String(await server.offer(0, 'p1'))).toBe(String(first))
    expect(builds.n).toBe(1)
    // 50 past: 50, and a quarter of 200 → a new one, though the total limit has 9 s to run
    await commit('e49')
    const second = await server.offer(0, 'p2')
    expect(String(second)).not.toBe(String(first))
    expect(builds.n).toBe(2)
    // 62 past its 250: over 50 but under a quarter (62.5) → still the second; 63 past → a third
    await commits('f', 62)
    expect(String(await server.offer(0, 'p3'))).toBe(String(second))
    await commit('f62')
    expect(String(await server.offer(0, 'p4'))).not.toBe(String(second))
    expect(builds.n).toBe(3)
    // the per-peer limit still holds: p4 asks again after the history grew by half
    await commits('g', 160)
    await server.offer(0, 'p4')
    expect(builds.n).toBe(3)
  })
})
