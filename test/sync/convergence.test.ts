/**
 * Convergence under an adversarial network, the merge rules' central property: 3–5 replicas write
 * random ops while the simulated transport drops, duplicates, delays (reorders) and corrupts
 * messages and partitions peers. After the network heals and the replicas go quiet, every replica's documents equal those
 * of the reference model of the merge rules (test/helpers/merge-model.ts, sharing no code with
 * src/crdt) over every block written.
 *
 * Runs: `KITEDB_CONVERGENCE_RUNS` (default 500 in `npm test`; `npm run soak` runs 10,000).
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { MemoryStorage } from '../../src/store/memory.js'
import { Replica, Replicator } from '../../src/sync/index.js'
import { type JsonValue, type Op, decodeBlock } from '../../src/crdt/index.js'
import { modelState } from '../helpers/merge-model.js'
import { setLogLevel } from '../../src/log.js'
import { COLLS, opArbitrary } from '../helpers/arbitraries.js'
import { MemoryHub } from '../helpers/memory-transport.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const RUNS = Number(process.env.KITEDB_CONVERGENCE_RUNS ?? 500)
const small: fc.Arbitrary<JsonValue> = fc.oneof(fc.integer({ min: -2, max: 5 }), fc.constantFrom('s', 't'), fc.constant(null))
const opArb = opArbitrary(small)

type Action =
  | { kind: 'write', replica: number, ops: Op[] }
  | { kind: 'partition', cut: number[] }
  | { kind: 'heal' }
  | { kind: 'wait', ms: number }

const actionArb = (n: number): fc.Arbitrary<Action> => fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), replica: fc.nat(n - 1), ops: fc.array(opArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('partition' as const), cut: fc.subarray([...Array(n).keys()], { minLength: 1, maxLength: n - 1 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'heal' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 15 }) }) }
)

const scheduleArb = fc.integer({ min: 3, max: 5 }).chain(n => fc.record({
  n: fc.constant(n),
  actions: fc.array(actionArb(n), { minLength: 1, maxLength: 14 }),
  drop: fc.double({ min: 0, max: 0.5, noNaN: true }),
  duplicate: fc.double({ min: 0, max: 0.3, noNaN: true }),
  corrupt: fc.double({ min: 0, max: 0.2, noNaN: true }),
  maxDelayMs: fc.integer({ min: 0, max: 8 }),
  seed: fc.nat()
}))

async function docsOf (storage: { getDocs: (c: string) => Promise<unknown[]>, getCollections: () => Promise<string[]> }): Promise<unknown> {
  return { collections: await storage.getCollections(), docs: await Promise.all(COLLS.map(async c => await storage.getDocs(c))) }
}

describe('convergence under loss, duplication, reordering, corruption and partitions', () => {
  it(`all replicas converge to the reference model (${RUNS} schedules)`, async () => {
    setLogLevel('silent')
    try {
      await fc.assert(fc.asyncProperty(scheduleArb, async (s) => {
        const hub = new MemoryHub()
        hub.seed(s.seed)
        Object.assign(hub, { drop: s.drop, duplicate: s.duplicate, corrupt: s.corrupt, maxDelayMs: s.maxDelayMs })
        const replicas: Replicator[] = []
        for (let i = 0; i < s.n; i++) {
          const r = new Replicator(await Replica.open(new MemoryStorage(), DB), hub.join(`r${i}`), { republishMs: 5, fetchTimeoutMs: 200, fetchBatch: 2 })
          r.start()
          replicas.push(r)
        }
        const written: Uint8Array[] = []
        try {
          for (const a of s.actions) {
            if (a.kind === 'write') {
              const r = replicas[a.replica]
              const applied = await r.replica.commit(a.ops)
              if (applied !== undefined) {
                written.push(applied.bytes)
                await r.publishLocal(applied)
              }
            } else if (a.kind === 'partition') {
              const cut = new Set(a.cut.map(i => `r${i}`))
              const all = [...Array(s.n).keys()].map(i => `r${i}`)
              hub.partition(all.filter(p => cut.has(p)), all.filter(p => !cut.has(p)))
            } else if (a.kind === 'heal') {
              hub.heal()
            } else {
              await new Promise(resolve => setTimeout(resolve, a.ms))
            }
          }
          // Heal: any path between any two peers is enough from here on.
          hub.heal()
          Object.assign(hub, { drop: 0, duplicate: 0, corrupt: 0, maxDelayMs: 0 })
          const deadline = Date.now() + 20_000 // generous: CI runs this beside Chromium-heavy tests
          for (;;) {
            const heads = await Promise.all(replicas.map(async r => JSON.stringify(await r.replica.heads())))
            const missing = await Promise.all(replicas.map(async r => (await r.replica.missing()).length))
            if (heads.every(h => h === heads[0]) && missing.every(m => m === 0)) break
            if (Date.now() > deadline) {
              throw new Error(`no quiescence: heads ${heads.join(' | ')}, missing ${missing.join(',')}`)
            }
            await new Promise(resolve => setTimeout(resolve, 5))
          }
          // Reference: the model of the merge rules (sharing no code with src/crdt) over every block written.
          const blocks = await Promise.all(written.map(async bytes => {
            const { cid, block } = await decodeBlock(bytes)
            return { hlc: block.hlc, cid: cid.toString(), ops: block.ops }
          }))
          const model = modelState(blocks)
          const expected = { collections: model.collections, docs: COLLS.map(c => model.docs.get(c) ?? []) }
          for (const r of replicas) {
            const got = await docsOf(r.replica.storage)
            if (process.env.KITEDB_CONVERGENCE_DEBUG === '1' && JSON.stringify(got) !== JSON.stringify(expected)) {
              console.log('replica', r.transport.peerId, JSON.stringify(got), '\nexpected', JSON.stringify(expected))
            }
            expect(got).toEqual(expected)
          }
        } finally {
          for (const r of replicas) r.stop()
        }
      }), {
        numRuns: RUNS,
        endOnFailure: process.env.KITEDB_CONVERGENCE_SHRINK !== '1',
        ...(process.env.KITEDB_CONVERGENCE_SEED !== undefined ? { seed: Number(process.env.KITEDB_CONVERGENCE_SEED), path: process.env.KITEDB_CONVERGENCE_PATH } : {})
      })
    } finally {
      setLogLevel('warn')
    }
  }, 600_000)
})
