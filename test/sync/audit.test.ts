/**
 * The audit of a snapshot join (docs/snapshots.md, "Audit"), property-tested over random histories
 * and random forgeries, on both storages: a replica that joined from a forged snapshot — states a
 * listed writer invented under the real heads — ends equal to the fold of every block, and the
 * forgery is reported; an honest snapshot is verified without a change. End to end with a real
 * forging writer: test/sync/forged-snapshot.test.ts.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { type Storage } from '../../src/store/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { Replica, type SnapshotContent, buildSnapshot, fetchSnapshot } from '../../src/sync/index.js'
import { SnapshotAudit } from '../../src/sync/audit.js'
import { type DocState, type JsonValue, type Op, cidOf, sameDocState } from '../../src/crdt/index.js'
import { type SnapshotMismatchError } from '../../src/errors.js'
import { setLogLevel } from '../../src/log.js'
import { COLLS, opArbitrary } from '../helpers/arbitraries.js'
import { storageKinds } from '../helpers/storages.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const small: fc.Arbitrary<JsonValue> = fc.oneof(fc.integer({ min: -2, max: 5 }), fc.constantFrom('s', 't'), fc.constant(null))
const opArb = opArbitrary(small)

type Step = { kind: 'write', replica: number, ops: Op[] } | { kind: 'sync', from: number, to: number }
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), replica: fc.nat(2), ops: fc.array(opArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sync' as const), from: fc.nat(2), to: fc.nat(2) }) }
)
/** How the producer lies, if it does. */
const forgeries = ['none', 'value', 'drop', 'add', 'tomb', 'coll'] as const
type Forgery = typeof forgeries[number]

const scenarioArb = fc.record({
  steps: fc.array(stepArb, { minLength: 1, maxLength: 14 }),
  at: fc.nat(),
  source: fc.nat(2),
  local: fc.array(fc.array(opArb, { minLength: 1, maxLength: 2 }), { maxLength: 2 }),
  forge: fc.constantFrom(...forgeries),
  pick: fc.nat()
})
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never

async function view (storage: Storage): Promise<unknown> {
  return { collections: await storage.getCollections(), docs: await Promise.all(COLLS.map(async c => await storage.getDocs(c))) }
}

/** The snapshot of `replica`, encoded, fetched back and verified as a joiner gets it. */
async function snapshotOf (replica: Replica): Promise<SnapshotContent> {
  const built = await buildSnapshot(DB, await replica.storage.readSnapshotSource())
  return await fetchSnapshot(DB, built.root, async cids => {
    const out = new Map<string, Uint8Array>()
    for (const c of cids) {
      const bytes = built.nodes.get(c.toString()) ?? (await replica.storage.getBlocks([c.toString()]))[0]
      if (bytes !== undefined) out.set(c.toString(), bytes)
    }
    return out
  }, () => {})
}

const FORGED_STAMP = (cid: string): [number, number, string, string, number] => [9e12, 0, 'zz', cid, 0]

/** `content` with its states changed as `forge` says (the heads and covered lists stay the real ones). */
function forged (content: SnapshotContent, forge: Forgery, pick: number): SnapshotContent {
  const docs = content.docs.map(d => ({ ...d, state: structuredClone(d.state) }))
  const head = content.heads[0]?.cid.toString()
  const target = docs[pick % Math.max(1, docs.length)]
  if (forge === 'value' && target !== undefined) {
    const field = Object.keys(target.state.f).find(f => f !== '_id' && target.state.f[f]?.u !== true)
    if (field !== undefined) (target.state.f[field] as { v: JsonValue }).v = 'forged'
    else target.state.f.invented = { s: FORGED_STAMP(head), v: 'forged' }
  } else if (forge === 'drop' && target !== undefined) {
    docs.splice(docs.indexOf(target), 1)
  } else if (forge === 'add' || target === undefined) {
    if (forge !== 'none' && forge !== 'coll') docs.push({ coll: 'a', id: 'invented', state: { f: { _id: { s: FORGED_STAMP(head), v: 'invented' } } } })
  } else if (forge === 'tomb') {
    target.state.tomb = FORGED_STAMP(head)
  }
  const colls = forge === 'coll' ? [...content.colls.filter(c => c.coll !== 'b'), { coll: 'b', state: { dropped: FORGED_STAMP(head) } }] : content.colls
  return { ...content, docs, colls }
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

/** Audit outcomes over the runs of a property (so a property that never meets a forgery fails). */
const outcomes = { verified: 0, repaired: 0 }

/** One scenario: a joiner of a (maybe forged) snapshot, audited, equals the fold of every block. */
async function runScenario (s: Scenario, makeStorage: () => Promise<Storage>): Promise<void> {
  const replicas = await Promise.all([0, 1, 2].map(async () => await Replica.open(new MemoryStorage(), DB)))
  const written: Uint8Array[] = []
  let snapshot: SnapshotContent | undefined
  const take = async (): Promise<void> => {
    const source = replicas[s.source]
    if ((await source.heads()).length > 0) snapshot = await snapshotOf(source)
  }
  for (const [i, step] of s.steps.entries()) {
    if (step.kind === 'write') {
      const applied = await replicas[step.replica].commit(step.ops)
      if (applied !== undefined) written.push(applied.bytes)
    } else {
      const from = replicas[step.from]
      const to = replicas[step.to]
      for (const bytes of await from.storage.getBlocks((await from.storage.readSnapshotSource()).blocks)) await to.receive(bytes as Uint8Array)
    }
    if (i === s.at % s.steps.length) await take()
  }
  if (snapshot === undefined) await take()
  if (snapshot === undefined) return

  const joiner = await Replica.open(await makeStorage(), DB)
  for (const ops of s.local) {
    const applied = await joiner.commit(ops)
    if (applied !== undefined) written.push(applied.bytes)
  }
  await joiner.installSnapshot(forged(snapshot, s.forge, s.pick))
  const audit = new SnapshotAudit(joiner)
  await audit.begin(snapshot.root, 'producer', 'peer')
  const covered = new Set(snapshot.covered)
  for (const bytes of shuffle(written.filter(b => !covered.has(cidOf(b).toString())), s.pick)) await joiner.receive(bytes)

  const byCid = new Map(written.map(b => [cidOf(b).toString(), b]))
  const reports: SnapshotMismatchError[] = []
  const record = await audit.run(async cids => new Map(cids.filter(c => byCid.has(c)).map(c => [c, byCid.get(c) as Uint8Array])), err => { reports.push(err) })

  const reference = await Replica.open(new MemoryStorage(), DB)
  for (const bytes of written) await reference.receive(bytes)
  expect(await view(joiner.storage)).toEqual(await view(reference.storage))
  const [mine, theirs] = await Promise.all([joiner.storage.readSnapshotSource(), reference.storage.readSnapshotSource()])
  const states = new Map<string, [DocState | undefined, DocState | undefined]>()
  for (const d of mine.docs) states.set(`${d.coll}/${d.id}`, [d.state, undefined])
  for (const d of theirs.docs) states.set(`${d.coll}/${d.id}`, [states.get(`${d.coll}/${d.id}`)?.[0], d.state])
  for (const [, [a, b]] of states) expect(sameDocState(a, b)).toBe(true)
  expect(await joiner.heads()).toEqual(await reference.heads())
  expect(record?.status).toBe(reports.length > 0 ? 'repaired' : 'verified')
  if (s.forge === 'none') expect(record?.status).toBe('verified')
  outcomes[record?.status === 'repaired' ? 'repaired' : 'verified']++
}

describe('snapshot audit: property', () => {
  it('a joiner of an honest or forged snapshot, audited, equals the fold of every block; honest ones are verified unchanged (memory)', async () => {
    setLogLevel('silent')
    try {
      outcomes.verified = outcomes.repaired = 0
      await fc.assert(fc.asyncProperty(scenarioArb, async s => { await runScenario(s, async () => new MemoryStorage()) }), { numRuns: 250 })
      expect(outcomes.repaired).toBeGreaterThan(20)
      expect(outcomes.verified).toBeGreaterThan(20)
    } finally {
      setLogLevel('warn')
    }
  }, 120_000)

  it('the same on Dexie (fake-indexeddb): its packed states compare equal to the fold\'s when honest', async () => {
    setLogLevel('silent')
    const [, provider] = storageKinds.find(([kind]) => kind === 'indexeddb') as [string, () => { open: (id: string) => Promise<Storage> }]
    let n = 0
    try {
      await fc.assert(fc.asyncProperty(scenarioArb, async s => { await runScenario(s, async () => await provider().open(`${DB}-audit-${n++}`)) }), { numRuns: 25 })
    } finally {
      setLogLevel('warn')
    }
  }, 120_000)
})
