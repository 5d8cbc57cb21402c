/**
 * Fuzzing what hostile peers can send that costs a replica memory, work or correctness, beyond
 * bytes that fail to decode (test/fuzz/decoders.test.ts): heads naming random CIDs, blocks naming
 * random parent lists, blocks requests naming random CIDs and heads, snapshot requests alternating
 * with writes, and snapshots whose states were tampered with at random. For every input: the
 * want list stays within its bounds, decoders are total, answers stay within the message budget
 * and name only stored blocks, snapshot builds stay rate-limited, and an audited joiner ends
 * equal to the fold of the history.
 *
 * Inputs: `KITEDB_FUZZ_RUNS` (default 700) divided per property by how heavy one input is;
 * `npm run fuzz` runs ten times as many.
 */
import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { InvalidBlockError } from '../../src/errors.js'
import {
  type CID, type DocState, type JsonValue, MAX_PARENTS, cidOf, decodeBlock, encode, generateSigner, readBlockHeader, sameDocState
} from '../../src/crdt/index.js'
import {
  BLOCKS_PROTOCOL, MAX_MESSAGE_BYTES, Replica, Replicator, SNAPSHOT_PROTOCOL, SnapshotServer, buildSnapshot, decodeBlocksResponse,
  decodeSnapshotRequest, decodeSnapshotResponse, encodeBlocksRequest, encodeHeadsMessage, encodeSnapshotRequest, encodeSnapshotResponse,
  fetchSnapshot, resolveLimits, signSnapshotRoot
} from '../../src/sync/index.js'
import { SnapshotAudit } from '../../src/sync/audit.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { setLogLevel } from '../../src/log.js'
import { MemoryHub } from '../helpers/memory-transport.js'

const RUNS = Number(process.env.KITEDB_FUZZ_RUNS ?? 700)
const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const signer = generateSigner()
const cidArb: fc.Arbitrary<CID> = fc.uint8Array({ minLength: 1, maxLength: 8 }).map(b => cidOf(b))

afterEach(() => { setLogLevel('warn') })

describe('hostile wire inputs', () => {
  it('heads naming random CIDs, from random peers, never take the want list over its bounds', async () => {
    setLogLevel('silent')
    const limits = resolveLimits({ maxWantsPerPeer: 30, maxWants: 80 })
    const peers = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5']
    // Often long enough to reach the bounds: a peer's quota is 30, so every run holds one message over it.
    const messageArb = fc.record({ from: fc.constantFrom(...peers), heads: fc.array(cidArb, { maxLength: 60 }) })
    const messagesArb = fc.tuple(fc.array(messageArb, { minLength: 0, maxLength: 11 }), fc.record({ from: fc.constantFrom(...peers), heads: fc.uniqueArray(cidArb, { minLength: 31, maxLength: 60, selector: c => c.toString() }) }))
      .map(([some, long]) => [...some, long])
    let full = 0
    await fc.assert(fc.asyncProperty(messagesArb, async messages => {
      const hub = new MemoryHub()
      const t = hub.join('victim')
      t.limits = limits
      const victim = new Replicator(await Replica.open(new MemoryStorage(), DB), t, { republishMs: 1_000_000, snapshotAudit: false })
      // The engine's handling of a delivered heads message, awaited (delivery itself is asynchronous);
      // no fetch rounds, which would drop the wants of peers that cannot be reached, at times of their own.
      const engine = victim as unknown as {
        touch: (from: string) => void
        handleMessage: (data: Uint8Array, from: string) => Promise<void>
        fetchMissing: () => Promise<void>
        wants: { announcedCount: number, wantsOf: (p: string) => number }
      }
      engine.fetchMissing = async () => {}
      victim.start()
      try {
        for (const m of messages) {
          engine.touch(m.from)
          await engine.handleMessage(encodeHeadsMessage({ heads: m.heads, blocks: [] }), m.from)
          expect(engine.wants.announcedCount).toBeLessThanOrEqual(80)
          for (const p of peers) expect(engine.wants.wantsOf(p)).toBeLessThanOrEqual(30)
          if (engine.wants.announcedCount === 80 || peers.some(p => engine.wants.wantsOf(p) === 30)) full++
        }
        expect((await victim.state()).missing).toBeLessThanOrEqual(80)
      } finally {
        victim.stop()
      }
    }), { numRuns: Math.max(10, Math.floor(RUNS / 10)) })
    expect(full).toBeGreaterThan(0) // the bounds were reached, not just never approached
  }, 120_000)

  it('a signed block naming any list of parents decodes with at most MAX_PARENTS, or is refused with InvalidBlockError', async () => {
    const parentsArb = fc.oneof(
      fc.array(cidArb, { maxLength: MAX_PARENTS + 40 }),
      fc.array(fc.oneof(cidArb.map(c => c as unknown), fc.string(), fc.integer(), fc.constant(null)), { maxLength: 80 }),
      fc.integer({ min: MAX_PARENTS + 1, max: 5000 }).map(n => Array.from({ length: n }, (_, i) => cidOf(encode(i)) as unknown))
    )
    await fc.assert(fc.asyncProperty(parentsArb, async parents => {
      const body = encode({ db: DB, parents, hlc: [1, 0, 'r'], ops: [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }] })
      const bytes = encode({ v: 1, body, w: signer.publicKey, s: await signer.sign(body) })
      const decoded = await decodeBlock(bytes).catch((err: unknown) => {
        if (!(err instanceof InvalidBlockError)) throw err
        return undefined
      })
      if (decoded !== undefined) expect(decoded.block.parents.length).toBeLessThanOrEqual(MAX_PARENTS)
      if (parents.length > MAX_PARENTS) {
        expect(decoded).toBeUndefined()
        expect(() => readBlockHeader(bytes)).toThrow(InvalidBlockError)
      }
    }), { numRuns: Math.max(20, Math.floor(RUNS / 5)) })
  })

  it('blocks requests naming random CIDs and heads are answered within the message budget, with stored blocks only', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const server = new Replicator(await Replica.open(new MemoryStorage(), DB), hub.join('server'), { republishMs: 1_000_000, snapshotAudit: false })
    server.start()
    const stored: CID[] = []
    for (let i = 0; i < 30; i++) stored.push((await server.replica.commit([{ op: 'put', coll: 'c', id: `d${i}`, set: { text: 'x'.repeat(i * 3000) } }]))?.cid as CID)
    const storedSet = new Set(stored.map(String))
    const client = hub.join('client')
    const anyCid = fc.oneof(cidArb, fc.constantFrom(...stored))
    try {
      await fc.assert(fc.asyncProperty(fc.array(anyCid, { maxLength: 100 }), fc.array(anyCid, { maxLength: 20 }), fc.constantFrom(DB, 'bafyreihiekde7ck57zwp4wcddjir6blyvwzm2qjaqpszd4nzwmwhikwrwi'), async (cids, have, db) => {
        const bytes = await client.request('server', BLOCKS_PROTOCOL, encodeBlocksRequest({ db, cids, have }))
        expect(bytes.byteLength).toBeLessThanOrEqual(MAX_MESSAGE_BYTES)
        for (const b of decodeBlocksResponse(bytes).blocks) expect(storedSet.has(cidOf(b).toString())).toBe(true)
      }), { numRuns: Math.max(20, Math.floor(RUNS / 5)) })
    } finally {
      server.stop()
    }
  }, 120_000)

  it('snapshot requests from random peers alternating with writes: every answer decodes, and builds stay within a tenth of the time and one per peer per window', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.record({ peer: fc.integer({ min: 0, max: 5 }), write: fc.boolean(), wait: fc.integer({ min: 0, max: 400 }), blocks: fc.nat() }), { minLength: 1, maxLength: 30 }), async steps => {
      const replica = await Replica.open(new MemoryStorage(), DB)
      for (let i = 0; i < 3; i++) await replica.commit([{ op: 'put', coll: 'c', id: `d${i}`, set: { i } }])
      const clock = { t: 1_000_000 }
      let builds = 0
      const read = replica.storage.readSnapshotSource.bind(replica.storage)
      replica.storage.readSnapshotSource = async () => { builds++; clock.t += 20; return await read() }
      const server = new SnapshotServer(replica, 1, { perPeerMs: 30_000, now: () => clock.t })
      const hub = new MemoryHub()
      const t = hub.join('server')
      t.handle(SNAPSHOT_PROTOCOL, async (data, from) => {
        const root = await server.offer(decodeSnapshotRequest(data).blocks, from)
        return encodeSnapshotResponse(root !== undefined ? { root, ...await signSnapshotRoot(root, replica.signer) } : {})
      })
      const clients = Array.from({ length: 6 }, (_, i) => hub.join(`c${i}`))
      const start = clock.t
      for (const s of steps) {
        if (s.write) await replica.commit([{ op: 'put', coll: 'c', id: 'w', set: { n: s.wait } }])
        clock.t += s.wait
        decodeSnapshotResponse(await clients[s.peer].request('server', SNAPSHOT_PROTOCOL, encodeSnapshotRequest({ db: DB, blocks: s.blocks % 3 })))
      }
      const distinct = new Set(steps.map(s => s.peer)).size
      expect(builds).toBeLessThanOrEqual(distinct)
      expect(builds * 20).toBeLessThanOrEqual((clock.t - start) / 10 + 20)
    }), { numRuns: Math.max(20, Math.floor(RUNS / 10)) })
  }, 120_000)

  it('a snapshot whose states were tampered with at random is repaired by the audit to the fold of the history', async () => {
    setLogLevel('silent')
    const stampArb = fc.tuple(fc.integer({ min: 0, max: 2e12 }), fc.nat(5), fc.constantFrom('r', 's', 'zz'), fc.constant('bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'), fc.nat(3))
    const valueArb: fc.Arbitrary<JsonValue> = fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.constant(null), fc.boolean())
    const stateArb: fc.Arbitrary<DocState> = fc.record({
      f: fc.dictionary(fc.constantFrom('a', 'b', 'n'), fc.record({ s: stampArb, v: valueArb }), { maxKeys: 3 }),
      tomb: fc.option(stampArb, { nil: undefined })
    }).map(s => s.tomb === undefined ? { f: s.f } : { f: s.f, tomb: s.tomb })
    const tamperArb = fc.array(fc.record({ doc: fc.nat(), state: stateArb, id: fc.constantFrom('d0', 'd1', 'd5', 'new') }), { minLength: 1, maxLength: 3 })
    // A history: three writers, some overwriting each other.
    const writers = await Promise.all([0, 1, 2].map(async () => await Replica.open(new MemoryStorage(), DB)))
    const written: Uint8Array[] = []
    for (let i = 0; i < 24; i++) {
      const w = writers[i % 3]
      const applied = await w.commit([{ op: 'put', coll: 'c', id: `d${i % 6}`, set: { a: i, b: `w${i % 3}` }, inc: { n: 1 } }])
      written.push(applied?.bytes as Uint8Array)
      for (const other of writers) if (other !== w) await other.receive(applied?.bytes as Uint8Array)
    }
    const source = writers[0]
    const built = await buildSnapshot(DB, await source.storage.readSnapshotSource())
    const content = await fetchSnapshot(DB, built.root, async cids => new Map(cids.map(c => [c.toString(), built.nodes.get(c.toString()) ?? (written.find(b => cidOf(b).equals(c)) as Uint8Array)])), () => {})
    const byCid = new Map(written.map(b => [cidOf(b).toString(), b]))
    const reference = await source.storage.readSnapshotSource()
    await fc.assert(fc.asyncProperty(tamperArb, async tampers => {
      const docs = content.docs.map(d => ({ ...d, state: structuredClone(d.state) }))
      for (const t of tampers) {
        const target = docs[t.doc % docs.length]
        if (t.id === 'new') docs.push({ coll: 'c', id: `new${t.doc % 5}`, state: { ...t.state, f: { ...t.state.f, _id: { s: t.state.f.a?.s ?? [1, 0, 'r', DB, 0], v: `new${t.doc % 5}` } } } })
        else target.state = { ...t.state, f: { ...t.state.f, _id: { s: t.state.f.a?.s ?? [1, 0, 'r', DB, 0], v: target.id } } }
      }
      const joiner = await Replica.open(new MemoryStorage(), DB)
      await joiner.installSnapshot({ ...content, docs })
      const audit = new SnapshotAudit(joiner)
      await audit.begin(content.root, 'p', 'q')
      await audit.run(async cids => new Map(cids.filter(c => byCid.has(c)).map(c => [c, byCid.get(c) as Uint8Array])))
      const mine = await joiner.storage.readSnapshotSource()
      const theirs = new Map(reference.docs.map(d => [`${d.coll}/${d.id}`, d.state]))
      for (const d of mine.docs) expect(sameDocState(d.state, theirs.get(`${d.coll}/${d.id}`))).toBe(true)
      for (const d of reference.docs) expect(mine.docs.some(m => m.coll === d.coll && m.id === d.id)).toBe(true)
      expect(await joiner.storage.getDocs('c')).toEqual(await source.storage.getDocs('c'))
    }), { numRuns: Math.max(20, Math.floor(RUNS / 7)) })
  }, 120_000)
})
