/**
 * Snapshot join (docs/snapshots.md): the property that a replica joining from a snapshot taken at
 * any heads H, then given the remaining blocks in any order (covered ones again too), ends exactly
 * where a replica that applied every block ends; the node format's verification; and the engine
 * joining from a snapshot over the in-memory transport, then syncing later and concurrent writes.
 */
import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { type Storage } from '../../src/store/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import {
  BLOCKS_PROTOCOL, Replica, Replicator, SNAPSHOT_PROTOCOL, SnapshotServer, type SnapshotContent, type SyncProgress, buildSnapshot, decodeBlocksRequest,
  type SnapshotPage, decodeSnapshotNode, encodeBlocksResponse, encodeSnapshotNode, encodeSnapshotResponse, fetchSnapshot, signSnapshotRoot, topicOf
} from '../../src/sync/index.js'
import { type CID, type DocState, type JsonValue, type Op, cidOf, createManifest, decode, decodeBlock, encode, formatPublicKey, generateSigner, parseCid } from '../../src/crdt/index.js'
import { InvalidBlockError, NetworkError } from '../../src/errors.js'
import { setLogLevel } from '../../src/log.js'
import { COLLS, opArbitrary } from '../helpers/arbitraries.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'
import { storageKinds } from '../helpers/storages.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const small: fc.Arbitrary<JsonValue> = fc.oneof(fc.integer({ min: -2, max: 5 }), fc.constantFrom('s', 't'), fc.constant(null), fc.constant<JsonValue>({ deep: [1, 'two'] }))
const opArb = opArbitrary(small)

type Step = { kind: 'write', replica: number, ops: Op[] } | { kind: 'sync', from: number, to: number }
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), replica: fc.nat(2), ops: fc.array(opArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sync' as const), from: fc.nat(2), to: fc.nat(2) }) }
)

const scenarioArb = fc.record({
  steps: fc.array(stepArb, { minLength: 1, maxLength: 16 }),
  /** after which step, and of which replica, the snapshot is taken */
  at: fc.nat(),
  source: fc.nat(2),
  /** writes the joiner makes before it joins */
  local: fc.array(fc.array(opArb, { minLength: 1, maxLength: 2 }), { maxLength: 2 }),
  /** order of delivery of the remaining blocks, and which covered blocks come again */
  seed: fc.nat(),
  again: fc.double({ min: 0, max: 1, noNaN: true })
})

type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never

/** What documents and collections look like, for comparison. */
async function view (storage: Storage): Promise<unknown> {
  return { collections: await storage.getCollections(), docs: await Promise.all(COLLS.map(async c => await storage.getDocs(c))) }
}

/** Every block a replica stores, by CID string (from its snapshot source's list). */
async function blocksOf (replica: Replica): Promise<string[]> {
  return (await replica.storage.readSnapshotSource()).blocks
}

/** Serve built snapshot nodes and stored blocks and chunks, as a peer answering blocks requests would. */
function server (nodes: Map<string, Uint8Array>, storage: Storage): (cids: CID[]) => Promise<Map<string, Uint8Array>> {
  return async cids => {
    const out = new Map<string, Uint8Array>()
    for (const c of cids) {
      const bytes = nodes.get(c.toString()) ?? (await storage.getBlocks([c.toString()]))[0]
      if (bytes !== undefined) out.set(c.toString(), bytes)
    }
    return out
  }
}

/** Make, encode, fetch back, verify and assemble the snapshot of `replica`, as a joiner would get it. */
async function snapshotThroughNodes (replica: Replica): Promise<SnapshotContent> {
  const source = await replica.storage.readSnapshotSource()
  const built = await buildSnapshot(DB, source)
  return await fetchSnapshot(DB, built.root, server(built.nodes, replica.storage), () => {})
}

function shuffle<T> (items: T[], seed: number): T[] {
  let s = (seed % 2147483646) + 1
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 16807) % 2147483647
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/** One scenario: returns nothing, asserts the joiner equals the reference fold. */
async function runScenario (s: Scenario, makeStorage: () => Promise<Storage>): Promise<void> {
  const replicas = await Promise.all([0, 1, 2].map(async () => await Replica.open(new MemoryStorage(), DB)))
  const written: Uint8Array[] = []
  let snapshot: SnapshotContent | undefined
  const take = async (): Promise<void> => {
    const source = replicas[s.source]
    if ((await source.heads()).length > 0) snapshot = await snapshotThroughNodes(source)
  }
  for (const [i, step] of s.steps.entries()) {
    if (step.kind === 'write') {
      const applied = await replicas[step.replica].commit(step.ops)
      if (applied !== undefined) written.push(applied.bytes)
    } else {
      const from = replicas[step.from]
      const to = replicas[step.to]
      for (const bytes of await from.storage.getBlocks(await blocksOf(from))) await to.receive(bytes as Uint8Array)
    }
    if (i === s.at % s.steps.length) await take()
  }
  if (snapshot === undefined) await take()
  if (snapshot === undefined) return // nothing was written by the source: no snapshot to take

  const joiner = await Replica.open(await makeStorage(), DB)
  for (const ops of s.local) {
    const applied = await joiner.commit(ops)
    if (applied !== undefined) written.push(applied.bytes)
  }
  await joiner.installSnapshot(snapshot)
  const covered = new Set(snapshot.covered)
  let k = 0
  const rest = written.filter(b => !covered.has(cidOf(b).toString()) || ((k++ * 7919 + s.seed) % 100) / 100 < s.again)
  for (const bytes of shuffle(rest, s.seed)) await joiner.receive(bytes)

  const reference = await Replica.open(new MemoryStorage(), DB)
  for (const bytes of written) await reference.receive(bytes)
  expect(await view(joiner.storage)).toEqual(await view(reference.storage))
  expect(await joiner.heads()).toEqual(await reference.heads())
  expect(await joiner.missing()).toEqual([])
}

describe('snapshot join: property', () => {
  it('snapshot at random heads + remaining blocks in random order (covered ones again) = reference fold (memory)', async () => {
    await fc.assert(fc.asyncProperty(scenarioArb, async s => { await runScenario(s, async () => new MemoryStorage()) }), { numRuns: 300 })
  }, 120_000)

  it('the same on Dexie (fake-indexeddb)', async () => {
    const [, provider] = storageKinds.find(([kind]) => kind === 'indexeddb') as [string, () => { open: (id: string) => Promise<Storage> }]
    let n = 0
    await fc.assert(fc.asyncProperty(scenarioArb, async s => { await runScenario(s, async () => await provider().open(`${DB}-${n++}`)) }), { numRuns: 15 })
  }, 120_000)
})

describe('snapshot nodes', () => {
  const fakeCid = (i: number): string => cidOf(encode(i)).toString()
  const state = (id: string, text: string): DocState => ({ f: { _id: { s: [5, 0, 'r', fakeCid(0), 0], v: id }, text: { s: [6, 1, 'q', fakeCid(1), 3], v: text }, n: { s: [0, 0, '', '', 0], u: true, inc: { [`${fakeCid(2)}:0`]: { n: 2, s: [7, 0, 'r', fakeCid(2), 0] } } } } })

  it('round-trip through pages of at most 1 MiB and several covered lists', async () => {
    const docs = Array.from({ length: 3000 }, (_, i) => ({ coll: 'c', id: `d${String(i).padStart(5, '0')}`, state: state(`d${String(i).padStart(5, '0')}`, 'x'.repeat(400)) }))
    const head = await Replica.open(new MemoryStorage(), DB)
    const applied = await head.commit([{ op: 'put', coll: 'c', id: 'h', set: { v: 1 } }])
    const blocks = [...Array.from({ length: 25_000 }, (_, i) => fakeCid(i + 10)), applied?.cid.toString() as string].sort()
    const built = await buildSnapshot(DB, { heads: [applied?.cid.toString() as string], docs, colls: [{ coll: 'c', state: { created: [1, 0, 'r', fakeCid(3), 0] } }], blocks })
    const root = await decodeSnapshotNode(built.nodes.get(built.root.toString()) as Uint8Array, built.root)
    expect(root.kind === 'root' && root.pages.length).toBeGreaterThan(1)
    expect(root.kind === 'root' && root.covered.length).toBe(2)
    for (const bytes of built.nodes.values()) expect(bytes.byteLength).toBeLessThanOrEqual(1024 * 1024)
    const progress: number[] = []
    const serve = server(built.nodes, head.storage)
    const batches: string[][] = []
    const content = await fetchSnapshot(DB, built.root, async cids => { batches.push(cids.map(String)); return await serve(cids) }, p => { progress.push(p.fetched) })
    // the first page is asked for alone (the first screenful waits for no other page), the rest two at a time
    const firstPage = root.kind === 'root' ? root.pages[0].toString() : ''
    expect(batches.find(b => b.includes(firstPage))).toEqual([firstPage])
    expect(batches.some(b => b.length === 2)).toBe(true)
    expect(content.docs).toEqual(docs)
    expect(content.covered).toEqual(blocks)
    expect(content.colls).toEqual([{ coll: 'c', state: { created: [1, 0, 'r', fakeCid(3), 0] } }])
    expect(content.heads.map(h => h.cid.toString())).toEqual([applied?.cid.toString()])
    expect(progress[progress.length - 1]).toBe(built.nodes.size + 1)
  })

  it('a page\'s content is JSON text, and decodes to the same states exactly (-0 written 0, as in dag-cbor blocks)', async () => {
    const content = async (bytes: Uint8Array): Promise<string> => {
      const { z } = decode(bytes) as { z: Uint8Array }
      return await new Response(new Blob([z as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'))).text()
    }
    const values: JsonValue[] = ['é ✓ \u2028 "q" \\', { a: [1.5, -2, null, true, { '': 1e300, __proto__x: [] }] }, 0.1 + 0.2, -1e-300, 2 ** 53 - 1, '\ud800']
    const docs = values.map((v, i) => ({ coll: 'c', id: `d${i}`, state: state(`d${i}`, 'x') }))
    docs.forEach((d, i) => { (d.state.f.text as { v: JsonValue }).v = values[i] })
    // every kind of register: a second and third stamp, a counter with a base value, a tombstone
    const s0 = docs[0]?.state
    s0.tomb = [4, 0, 'r', fakeCid(0), 9]
    s0.f.late = { s: [8, 2, 'q', fakeCid(4), 1], v: [1, 2] }
    s0.f.count = { s: [3, 0, 'q', fakeCid(4), 0], v: 10, inc: { [`${fakeCid(5)}:2`]: { n: -1.5, s: [9, 0, 'r', fakeCid(5), 2] } } }
    const page = await encodeSnapshotNode({ kind: 'page', docs, colls: [] })
    expect(JSON.parse(await content(page.bytes))).toHaveProperty('docs')
    expect(await decodeSnapshotNode(page.bytes, page.cid)).toEqual({ kind: 'page', docs, colls: [] })

    const zero = docs.map(d => ({ ...d, state: state(d.id, 'x') }))
    ;(zero[0]?.state.f.text as { v: JsonValue }).v = { a: [0, -0] }
    const decoded = await decodeSnapshotNode((await encodeSnapshotNode({ kind: 'page', docs: zero, colls: [] })).bytes, (await encodeSnapshotNode({ kind: 'page', docs: zero, colls: [] })).cid)
    const a = ((decoded as SnapshotPage).docs[0]?.state.f.text?.v as { a: number[] }).a
    expect(a.map(x => Object.is(x, -0))).toEqual([false, false])
    expect(decode(encode({ a: -0 }))).toEqual({ a: 0 }) // what dag-cbor blocks do with -0 too
    expect(Object.is((decode(encode({ a: -0 })) as { a: number }).a, -0)).toBe(false)
  })

  it('a snapshot that does not add up, or names another database, is refused', async () => {
    const source = await Replica.open(new MemoryStorage(), DB)
    const applied = await source.commit([{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
    const cid = applied?.cid as CID
    const page = await encodeSnapshotNode({ kind: 'page', docs: [{ coll: 'c', id: 'x', state: state('x', 't') }], colls: [] })
    const list = await encodeSnapshotNode({ kind: 'covered', cids: [cid] })
    const empty = await encodeSnapshotNode({ kind: 'covered', cids: [] })
    const nodes = new Map([[page.cid.toString(), page.bytes], [list.cid.toString(), list.bytes], [empty.cid.toString(), empty.bytes]])
    const attempt = async (root: Parameters<typeof encodeSnapshotNode>[0], db = DB): Promise<unknown> => {
      const r = await encodeSnapshotNode(root)
      return await fetchSnapshot(db, r.cid, server(new Map([...nodes, [r.cid.toString(), r.bytes]]), source.storage), () => {})
    }
    const good = { kind: 'root' as const, db: DB, heads: [cid], pages: [page.cid], covered: [list.cid], docs: 1, blocks: 1 }
    await expect(attempt(good)).resolves.toBeDefined()
    await expect(attempt(good, 'bafyreihiekde7ck57zwp4wcddjir6blyvwzm2qjaqpszd4nzwmwhikwrwi')).rejects.toThrow(InvalidBlockError)
    await expect(attempt({ ...good, docs: 2 })).rejects.toThrow(/documents/)
    await expect(attempt({ ...good, blocks: 0 })).rejects.toThrow(/distinct blocks/)
    await expect(attempt({ ...good, pages: [page.cid, page.cid], docs: 2 })).rejects.toThrow(/twice/)
    await expect(attempt({ ...good, covered: [], blocks: 0 })).rejects.toThrow(/does not cover/)
    await expect(attempt({ ...good, pages: [empty.cid] })).rejects.toThrow(/is a covered/)
    // A page whose documents are out of order, or whose _id register names another document.
    const unordered = await encodeSnapshotNode({ kind: 'page', docs: [{ coll: 'c', id: 'y', state: state('y', 't') }, { coll: 'c', id: 'x', state: state('x', 't') }], colls: [] })
    await expect(decodeSnapshotNode(unordered.bytes, unordered.cid)).rejects.toThrow(/order/)
    const wrongId = await encodeSnapshotNode({ kind: 'page', docs: [{ coll: 'c', id: 'x', state: state('y', 't') }], colls: [] })
    await expect(decodeSnapshotNode(wrongId.bytes, wrongId.cid)).rejects.toThrow(/id/)
    await expect(decodeSnapshotNode(page.bytes, list.cid)).rejects.toThrow(/hash/)
    expect(parseCid(fakeCid(1))).toBeDefined()
    expect((await decodeBlock(applied?.bytes as Uint8Array)).cid.equals(cid)).toBe(true)
  })
})

describe('snapshot join: the engine over an in-memory transport', () => {
  const running: Replicator[] = []
  afterEach(() => { for (const r of running.splice(0)) r.stop() })

  async function replicaOn (hub: MemoryHub, name: string, options = {}): Promise<Replicator> {
    const r = new Replicator(await Replica.open(new MemoryStorage(), DB), hub.join(name), { republishMs: 50, snapshotMinBlocks: 50, ...options })
    r.start()
    running.push(r)
    return r
  }

  async function write (r: Replicator, ops: Op[]): Promise<void> {
    const applied = await r.replica.commit(ops)
    if (applied !== undefined) await r.publishLocal(applied)
  }

  const docs = async (r: Replicator): Promise<unknown> => await view(r.replica.storage)

  /** Replica A on `hub` holding 60 documents, one block each: over `snapshotMinBlocks` (50), so it offers snapshots. */
  async function writerOf60 (hub: MemoryHub, options = {}): Promise<Replicator> {
    const a = await replicaOn(hub, 'A', options)
    for (let i = 0; i < 60; i++) await write(a, [{ op: 'put', coll: 'a', id: `d${i}`, set: { f: i } }])
    return a
  }

  /** Peer `name` on `hub`, each of its requests going through `before(protocol)` first (which may note it, delay it or throw). */
  function joinThrough (hub: MemoryHub, name: string, before: (protocol: string) => void | Promise<void>): ReturnType<MemoryHub['join']> {
    const transport = hub.join(name)
    const request = transport.request.bind(transport)
    transport.request = async (peer: string, protocol: string, data: Uint8Array) => {
      await before(protocol)
      return await request(peer, protocol, data)
    }
    return transport
  }

  it('a fresh replica joins from a snapshot without replaying history, then gets later and concurrent writes', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A')
    // C replays A's history (no snapshot), then is cut off and writes concurrently to what comes next.
    const c = await replicaOn(hub, 'C', { snapshotJoin: false })
    await write(a, [{ op: 'coll', coll: 'a' }])
    for (let i = 0; i < 80; i++) await write(a, [{ op: 'put', coll: 'a', id: `d${i % 30}`, set: { f: i }, inc: { n: 1 } }])
    await eventually(async () => JSON.stringify(await docs(c)) === JSON.stringify(await docs(a)), 10_000, 'C to replay')
    hub.partition(['A', 'B'], ['C'])
    await write(c, [{ op: 'put', coll: 'a', id: 'd1', inc: { n: 100 } }, { op: 'put', coll: 'a', id: 'c', set: { g: 'from C' } }])
    await write(a, [{ op: 'put', coll: 'a', id: 'd2', set: { f: 'last before B joins' } }])

    const b = await replicaOn(hub, 'B')
    const events: SyncProgress[] = []
    b.onProgress(p => { events.push(p) })
    await eventually(async () => JSON.stringify(await docs(b)) === JSON.stringify(await docs(a)), 10_000, 'B to join')
    const state = await b.state()
    expect(state.snapshot).not.toBeNull()
    expect(events.some(e => e.snapshot?.installed === true)).toBe(true)
    // B fetched the snapshot's nodes, and no block of A's 82: the snapshot covered them all.
    expect(events.reduce((n, e) => Math.max(n, e.fetched), 0)).toBe(0)

    // Later writes, and C's concurrent block (its parent is covered at B), reach B.
    await write(a, [{ op: 'put', coll: 'a', id: 'd3', set: { f: 'after' } }])
    hub.heal()
    await eventually(async () => {
      const [da, db, dc] = await Promise.all([docs(a), docs(b), docs(c)])
      return JSON.stringify(da) === JSON.stringify(db) && JSON.stringify(db) === JSON.stringify(dc) && JSON.stringify(db).includes('from C') && JSON.stringify(db).includes('after')
    }, 10_000, 'A, B and C to converge')
    expect(await b.replica.missing()).toEqual([])
    expect(await b.replica.heads()).toEqual(await a.replica.heads())
    expect((await b.replica.storage.getDoc('a', 'd1'))?.n).toBe((await a.replica.storage.getDoc('a', 'd1'))?.n)
  })

  it('a writer makes its snapshot ahead of time once writes go quiet, and a joiner is offered that one', async () => {
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A', { snapshotWarmMs: 30 })
    const server = (a as unknown as { snapshots: SnapshotServer }).snapshots
    for (let i = 0; i < 60; i++) await write(a, [{ op: 'put', coll: 'a', id: `d${i % 20}`, set: { f: i } }])
    await eventually(() => server.latestRoot !== undefined, 5000, 'the snapshot to be made')
    const warmRoot = server.latestRoot
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(server.latestRoot).toBe(warmRoot) // heads unchanged: not made again
    const b = await replicaOn(hub, 'B')
    await eventually(async () => JSON.stringify(await docs(b)) === JSON.stringify(await docs(a)), 10_000, 'B to join')
    expect((await b.state()).snapshot).toBe(warmRoot)
  })

  it('a replica that may not write makes no snapshot ahead of time (a writer with the same blocks does)', async () => {
    const signer = generateSigner()
    const manifest = createManifest('w', [formatPublicKey(signer.publicKey)])
    const writer = await Replica.open(new MemoryStorage(), DB, { signer, manifest })
    const reader = await Replica.open(new MemoryStorage(), DB, { manifest })
    const servers = [new SnapshotServer(writer, 5), new SnapshotServer(reader, 5)]
    const stops = servers.map(s => s.warm(10))
    for (let i = 0; i < 10; i++) {
      const applied = await writer.commit([{ op: 'put', coll: 'c', id: `d${i}`, set: { v: i } }])
      await reader.receive(applied?.bytes as Uint8Array)
    }
    await eventually(() => servers[0]?.latestRoot !== undefined, 5000, 'the writer\'s snapshot')
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(servers[1]?.latestRoot).toBeUndefined()
    for (const stop of stops) stop()
  })

  it('an offer over a relayed connection waits for a direct one, with no blocks pushed through the relay meanwhile', async () => {
    const hub = new MemoryHub()
    const a = await writerOf60(hub)
    const requests: string[] = []
    const transport = joinThrough(hub, 'B', protocol => { requests.push(protocol) })
    let direct = false
    const connection = transport.connection.bind(transport)
    transport.connection = peer => direct ? connection(peer) : { kind: 'relayed', transport: 'circuit-relay' }
    const b = new Replicator(await Replica.open(new MemoryStorage(), DB), transport, { republishMs: 50, snapshotMinBlocks: 50 })
    b.start()
    running.push(b)
    await new Promise(resolve => setTimeout(resolve, 400))
    expect(requests).toContain(SNAPSHOT_PROTOCOL)
    expect(requests).not.toContain(BLOCKS_PROTOCOL)
    expect(await b.replica.storage.getDocs('a')).toEqual([])
    direct = true
    await eventually(async () => JSON.stringify(await docs(b)) === JSON.stringify(await docs(a)), 10_000, 'B to join')
    expect((await b.state()).snapshot).not.toBeNull()
  })

  it('a snapshot fetch that fails on the network is tried again, without replaying blocks meanwhile', async () => {
    const hub = new MemoryHub()
    const a = await writerOf60(hub)
    let failNext = 1
    // The first block request (the snapshot's root node) dies, as on a connection that went dead.
    const transport = joinThrough(hub, 'B', protocol => {
      if (protocol === BLOCKS_PROTOCOL && failNext-- > 0) throw new NetworkError('the direct connection died')
    })
    const b = new Replicator(await Replica.open(new MemoryStorage(), DB), transport, { republishMs: 50, snapshotMinBlocks: 50 })
    const events: SyncProgress[] = []
    b.onProgress(p => { events.push(p) })
    b.start()
    running.push(b)
    await eventually(async () => JSON.stringify(await docs(b)) === JSON.stringify(await docs(a)), 10_000, 'B to join')
    expect(failNext).toBeLessThan(0) // the failure happened
    expect((await b.state()).snapshot).not.toBeNull()
    expect(events.reduce((n, e) => Math.max(n, e.fetched), 0)).toBe(0) // no block replayed
  })

  /** Run `fn` with the lines `console.warn` gets meanwhile. */
  async function withWarnings (fn: (warnings: string[]) => Promise<void>): Promise<void> {
    const warnings: string[] = []
    const warn = console.warn
    console.warn = (...args: unknown[]) => { warnings.push(args.join(' ')) }
    try {
      await fn(warnings)
    } finally {
      console.warn = warn
    }
  }

  /**
   * A writer A with 60 blocks, and a hostile peer '0evil' (sorting before 'A': asked first) that
   * offers a snapshot at A's head, signed (the engine here checks no write list), of one page
   * holding the document `page(head)` gives, its root counting `docs` documents. Returns A and the
   * root's CID string.
   */
  async function hostileOffer (hub: MemoryHub, page: (head: string) => { coll: string, id: string, state: DocState }, docs: number): Promise<{ a: Replicator, root: string }> {
    const a = await writerOf60(hub)
    const evil = hub.join('0evil')
    evil.subscribe(topicOf(DB), () => {})
    const head = (await a.replica.heads())[0]
    const pageNode = await encodeSnapshotNode({ kind: 'page', docs: [page(head)], colls: [] })
    const list = await encodeSnapshotNode({ kind: 'covered', cids: [parseCid(head) as CID] })
    const root = await encodeSnapshotNode({ kind: 'root', db: DB, heads: [parseCid(head) as CID], pages: [pageNode.cid], covered: [list.cid], docs, blocks: 1 })
    const nodes = new Map([[root.cid.toString(), root.bytes], [pageNode.cid.toString(), pageNode.bytes], [list.cid.toString(), list.bytes]])
    nodes.set(head, (await a.replica.storage.getBlocks([head]))[0] as Uint8Array)
    const signed = await signSnapshotRoot(root.cid, generateSigner())
    evil.handle(SNAPSHOT_PROTOCOL, async () => encodeSnapshotResponse({ root: root.cid, ...signed }))
    evil.handle(BLOCKS_PROTOCOL, async data => encodeBlocksResponse({ blocks: decodeBlocksRequest(data).cids.map(c => nodes.get(c.toString()) ?? new Uint8Array([1])) }))
    return { a, root: root.cid.toString() }
  }

  it('a hostile peer\'s invalid snapshot is refused with a logged reason and installs nothing; the join goes on from another peer', async () => {
    await withWarnings(async warnings => {
      const hub = new MemoryHub()
      // Its root is consistent, its page is not (an _id naming another document).
      const { a, root } = await hostileOffer(hub, head => ({ coll: 'a', id: 'd0', state: { f: { _id: { s: [9e12, 0, 'e', head, 0], v: 'other' } } } }), 1)
      const b = await replicaOn(hub, 'B')
      await eventually(async () => JSON.stringify(await docs(b)) === JSON.stringify(await docs(a)), 10_000, 'B to join from A')
      expect((await b.state()).snapshot).not.toBe(root)
      expect(warnings.some(w => w.includes(root) && w.includes('does not hold the document\'s id'))).toBe(true)
    })
  })

  const dexie = (): { open: (id: string) => Promise<Storage> } => (storageKinds.find(([kind]) => kind === 'indexeddb') as [string, () => { open: (id: string) => Promise<Storage> }])[1]()
  /** A replica on Dexie (fake-indexeddb), whose snapshot install writes each page as it comes. */
  async function dexieReplicaOn (transport: ReturnType<MemoryHub['join']>, name = `${DB}-${Math.random()}`): Promise<Replicator> {
    const r = new Replicator(await Replica.open(await dexie().open(name), DB), transport, { republishMs: 50, snapshotMinBlocks: 50 })
    r.start()
    running.push(r)
    return r
  }

  it('a snapshot whose pages verify but whose whole does not add up installs none of its pages, though they went to the install as they came (Dexie)', async () => {
    await withWarnings(async warnings => {
      const hub = new MemoryHub()
      // Its page is valid (a document A never had); its root counts one document more.
      const { a, root } = await hostileOffer(hub, head => ({ coll: 'a', id: 'zz', state: { f: { _id: { s: [1e12, 0, 'e', head, 0], v: 'zz' } } } }), 2)
      const b = await dexieReplicaOn(hub.join('B'))
      await eventually(async () => JSON.stringify(await docs(b)) === JSON.stringify(await docs(a)), 10_000, 'B to join from A')
      expect(warnings.some(w => w.includes(root) && w.includes('its root says 2'))).toBe(true)
      expect(await b.replica.storage.getDoc('a', 'zz')).toBeUndefined()
      expect((await b.state()).snapshot).not.toBe(root)
    })
  })

  it('a write made while a snapshot\'s pages arrive waits for the install and is kept, and reaches the writer (Dexie)', async () => {
    const hub = new MemoryHub()
    const a = await writerOf60(hub)
    // Every node request answers 100 ms late: the join lasts a few hundred ms.
    const b = await dexieReplicaOn(joinThrough(hub, 'B', async protocol => {
      if (protocol === BLOCKS_PROTOCOL) await new Promise(resolve => setTimeout(resolve, 100))
    }))
    const fetching = new Promise<void>(resolve => { b.onProgress(p => { if (p.snapshot !== undefined && p.snapshot.fetched > 0 && p.snapshot.installed !== true) resolve() }) })
    await fetching
    const wrote = write(b, [{ op: 'put', coll: 'a', id: 'mine', set: { f: -1 } }])
    await wrote
    expect((await b.state()).snapshot).not.toBeNull() // the install committed before the write
    expect(await b.replica.storage.getDoc('a', 'mine')).toEqual({ _id: 'mine', f: -1 })
    await eventually(async () => JSON.stringify(await docs(b)) === JSON.stringify(await docs(a)), 10_000, 'A and B to converge')
    expect(await a.replica.storage.getDoc('a', 'mine')).toEqual({ _id: 'mine', f: -1 })
    expect(await b.replica.storage.countDocs('a')).toBe(61)
  })

  it('a replica closed while a snapshot\'s pages arrive ends the install at once, installing nothing (Dexie)', async () => {
    const hub = new MemoryHub()
    await writerOf60(hub)
    let nodeRequests = 0
    // The root comes at once; every later node request is left unanswered (a peer gone quiet).
    const transport = joinThrough(hub, 'B', async protocol => {
      if (protocol === BLOCKS_PROTOCOL && nodeRequests++ > 0) await new Promise(() => {})
    })
    const name = `${DB}-closed-${Math.random()}`
    const b = await dexieReplicaOn(transport, name)
    await new Promise<void>(resolve => { b.onProgress(p => { if (p.snapshot !== undefined && p.snapshot.fetched > 0) resolve() }) })
    b.stop()
    b.replica.close(new Error('closed mid-join'))
    // The install let go of the storage: a write transaction on it completes.
    const storage = b.replica.storage
    await storage.setMeta('after', 1)
    expect(await storage.getMeta('after')).toBe(1)
    expect(await storage.countDocs('a')).toBe(0)
    await storage.close()
    const again = await dexie().open(name)
    expect(await again.getHeads()).toEqual([])
    expect(await again.countDocs('a')).toBe(0)
    await again.close()
  })

  it('a peer with fewer blocks than its snapshotMinBlocks offers no snapshot: the joiner replays blocks', async () => {
    setLogLevel('silent')
    try {
      const hub = new MemoryHub()
      await writerOf60(hub, { snapshotMinBlocks: 1000 })
      const b = await replicaOn(hub, 'B')
      await eventually(async () => ((await b.replica.storage.getDocs('a')).length === 60), 10_000, 'B to replay')
      expect((await b.state()).snapshot).toBeNull()
    } finally {
      setLogLevel('warn')
    }
  })
})
