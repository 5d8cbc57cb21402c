/**
 * Conformance cases of snapshots: `installSnapshot` (joined states, head blocks, covered CIDs,
 * atomicity, a states-only install) and `readSnapshotSource`.
 */
import { type ConformanceCase, check, checkEqual, rejection } from '../../check.js'
import { type DocChange } from '../storage.js'
import { ALL, type SuiteContext, StorageEnv, apply, everything, expectedEntries, fold, installInput, sorted, testBlock, testNode } from './fixtures.js'

const byId = (changes: DocChange[]): DocChange[] => [...changes].sort((a, b) => a.coll < b.coll ? -1 : a.coll > b.coll ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

export function snapshotCases (ctx: SuiteContext): ConformanceCase[] {
  const c = (name: string, fn: (env: StorageEnv) => Promise<void>): ConformanceCase => ({ name, run: async () => { await StorageEnv.run(ctx, fn) } })
  return [
    c('installSnapshot joins states into the local ones and writes documents, index entries, head blocks and covered CIDs', async ({ storage }) => {
      // The snapshot: s1 <- s2 (heads [s2]), made elsewhere.
      const s1 = testBlock('s1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1, a: 'k' }, inc: { n: 1 } }])
      const s2 = testBlock('s2', [s1], [{ op: 'put', coll: 'c', id: 'y', set: { v: 2, a: 'm' } }, { op: 'put', coll: 'c', id: 'x', inc: { n: 2 } }])
      const snapshot = fold([s1, s2])
      await storage.createIndex('c', ['a'])
      // A local write before the join keeps its effect: states are joined, not overwritten.
      const local = testBlock('local', [], [{ op: 'put', coll: 'c', id: 'z', set: { v: 9, a: 'z' } }, { op: 'put', coll: 'c', id: 'x', inc: { n: 10 } }])
      await apply(storage, local, { local: true })
      const result = await storage.installSnapshot(installInput({ ...snapshot, covered: sorted([s1, s2]), heads: [s2] }))
      checkEqual(byId(result.changes), [
        { coll: 'c', id: 'x', before: { _id: 'x', n: 10 }, after: { _id: 'x', a: 'k', n: 13, v: 1 } },
        { coll: 'c', id: 'y', before: null, after: { _id: 'y', a: 'm', v: 2 } }
      ], 'installSnapshot changes (sorted by id)')
      checkEqual(result.collections, [], 'installSnapshot collections: c existed before (it held a document)')
      checkEqual(result.heads, sorted([local, s2]), 'installSnapshot heads: the local head and the snapshot\'s')
      checkEqual(await storage.getDocs('c'), [{ _id: 'x', a: 'k', n: 13, v: 1 }, { _id: 'y', a: 'm', v: 2 }, { _id: 'z', a: 'z', v: 9 }], 'documents after the install')
      checkEqual(await storage.scanIndex('c', 'a', ALL), await expectedEntries(storage, 'c', ['a']), 'index entries after the install')
      checkEqual(await storage.scanIndex('c', 'a', { lower: [[30, 'm']], upper: [[30, 'm']] }), [{ key: [[30, 'm']], id: 'y' }], 'the index entry of a document the snapshot brought')
      checkEqual(await storage.getHeads(), sorted([local, s2]), 'getHeads after the install')
      checkEqual(await storage.getMissing(), [], 'getMissing after the install')
      check(await storage.hasBlock(s1.cid), 'hasBlock of a covered CID is true')
      checkEqual(await storage.getBlocks([s1.cid, s2.cid]), [undefined, s2.bytes], 'getBlocks: a covered CID has no bytes; a snapshot head is stored')
      checkEqual(await storage.countBlocks(), 3, 'countBlocks counts stored blocks and covered CIDs')
      checkEqual(await storage.getCollections(), ['c'], 'getCollections after the install')

      // Covered blocks delivered again change nothing; a concurrent block whose parent is covered applies.
      checkEqual((await apply(storage, s1)).applied, false, 'applyBlock of a covered block')
      checkEqual((await apply(storage, s2)).applied, false, 'applyBlock of a snapshot head')
      const s3 = testBlock('s3', [s1], [{ op: 'put', coll: 'c', id: 'x', inc: { n: 4 } }])
      checkEqual((await apply(storage, s3)).applied, true, 'applyBlock of a block on a covered parent')
      checkEqual(await storage.getDoc('c', 'x'), { _id: 'x', a: 'k', n: 17, v: 1 }, 'the document after a block on a covered parent')
      checkEqual(await storage.getHeads(), sorted([local, s2, s3]), 'getHeads after a block on a covered parent')
      checkEqual(await storage.getMissing(), [], 'a covered parent is not missing')
      const b4 = testBlock('b4', [s1, s3], [{ op: 'put', coll: 'c', id: 'y', set: { v: 4 } }])
      await apply(storage, b4)
      checkEqual(await storage.getMissing(), [], 'a block naming a covered CID does not make it missing')
      checkEqual(await storage.getHeads(), sorted([local, s2, b4]), 'getHeads after a block on a covered CID and a head')
      const source = await storage.readSnapshotSource()
      checkEqual(source.blocks, sorted([local, s1, s2, s3, b4]), 'readSnapshotSource blocks: stored blocks and covered CIDs')
      const all = fold([s1, s2, local, s3, b4])
      checkEqual(source.docs, all.docs, 'readSnapshotSource docs: the joined states equal the states of every block applied')
      checkEqual(source.colls, all.colls, 'readSnapshotSource colls after the install')
    }),

    c('installSnapshot takes a missing snapshot head and covered CIDs out of missing and covered heads out of the heads; covered CIDs survive a reopen', async env => {
      const s0 = testBlock('s0', [], [{ op: 'put', coll: 'c', id: 'w', set: { v: 0 } }])
      const s1 = testBlock('s1', [s0], [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      const s2 = testBlock('s2', [s1], [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }])
      const b3 = testBlock('b3', [s2], [{ op: 'put', coll: 'c', id: 'x', set: { v: 3 } }])
      const e = testBlock('e', [s0], [{ op: 'put', coll: 'c', id: 'e', set: { v: 1 } }])
      let storage = env.storage
      for (const b of [s1, b3, e]) await apply(storage, b)
      checkEqual(await storage.getHeads(), sorted([s1, b3, e]), 'getHeads before the install')
      checkEqual(await storage.getMissing(), sorted([s0, s2]), 'getMissing before the install')
      const result = await storage.installSnapshot(installInput({ ...fold([s0, s1, s2]), covered: sorted([s0, s1, s2]), heads: [s2] }))
      checkEqual(result.heads, sorted([b3, e]), 'installSnapshot heads: a missing snapshot head is named, so no head; a stored covered head is below the snapshot, so no longer a head')
      checkEqual(await storage.getHeads(), sorted([b3, e]), 'getHeads after the install')
      checkEqual(await storage.getMissing(), [], 'getMissing after the install: the snapshot head and a covered CID left it')
      checkEqual(await storage.getBlocks(sorted([s0, s1, s2])), sorted([s0, s1, s2]).map(cid => cid === s0.cid ? undefined : cid === s1.cid ? s1.bytes : s2.bytes), 'getBlocks: covered (no bytes), stored, the snapshot head')
      checkEqual(await storage.countBlocks(), 5, 'countBlocks: four stored blocks and one covered CID')
      checkEqual(await storage.getDocs('c'), [{ _id: 'e', v: 1 }, { _id: 'w', v: 0 }, { _id: 'x', v: 3 }], 'documents after the install')
      storage = await env.reopen()
      check(await storage.hasBlock(s0.cid), 'hasBlock of a covered CID after a reopen')
      checkEqual(await storage.countBlocks(), 5, 'countBlocks after a reopen')
      checkEqual((await apply(storage, s0)).applied, false, 'applyBlock of a covered block after a reopen')
      const f = testBlock('f', [s0], [{ op: 'put', coll: 'c', id: 'f', set: { v: 1 } }])
      await apply(storage, f)
      checkEqual(await storage.getMissing(), [], 'a block naming a covered CID after a reopen makes nothing missing')
      checkEqual(await storage.getHeads(), sorted([b3, e, f]), 'getHeads after a reopen and a new block')
      checkEqual((await storage.readSnapshotSource()).blocks, sorted([s0, s1, s2, b3, e, f]), 'readSnapshotSource blocks after a reopen')
    }),

    c('installSnapshot is atomic: a merge that throws installs nothing', async ({ storage }) => {
      const b1 = testBlock('b1', [testNode('p')], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      await apply(storage, b1)
      await storage.createIndex('c', ['v'])
      const s1 = testBlock('s1', [], [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }, { op: 'put', coll: 'd', id: 'y', set: { v: 3 } }])
      const head = testBlock('s2', [s1], [{ op: 'put', coll: 'c', id: 'z', set: { v: 4 } }])
      const chunk = testNode('chunk of s2')
      const input = { ...fold([s1, head]), covered: sorted([s1, head, testNode('p')]), heads: [head], nodes: [chunk] }
      const before = await everything(storage, ['c', 'd'])
      const boom = new Error('the merge refused the snapshot')
      const err = await rejection(storage.installSnapshot(installInput({ ...input, fail: boom })), 'installSnapshot with a throwing merge')
      checkEqual((err as Error | undefined)?.message, boom.message, 'installSnapshot rejects with the error its merge threw')
      for (const n of [s1, head, chunk]) check(!await storage.hasBlock(n.cid), 'a snapshot whose merge threw stores and covers nothing')
      checkEqual(await everything(storage, ['c', 'd']), before, 'heads, missing, counts, collections, documents, states and index entries after a merge threw')
      await storage.installSnapshot(installInput(input))
      checkEqual(await storage.getDocs('c'), [{ _id: 'x', v: 2 }, { _id: 'z', v: 4 }], 'the same snapshot installs once its merge succeeds')
      checkEqual(await storage.getMissing(), [], 'getMissing once the snapshot covering the missing CID is installed')
    }),

    ...[false, true].map(holding => c(`installSnapshot given in parts, ${holding ? 'into a storage holding documents' : 'into an empty storage'}: each part joins as it comes (with waits between), an index turns multikey, and the whole equals the install in one`, async ({ storage }) => {
      const s1 = testBlock('s1', [], [
        { op: 'coll', coll: 'c' },
        { op: 'put', coll: 'c', id: 'a', set: { v: 1 } }, { op: 'put', coll: 'c', id: 'b', set: { v: [1, 2] } },
        { op: 'put', coll: 'd', id: 'e', set: { v: 3 } }
      ])
      const s2 = testBlock('s2', [s1], [{ op: 'put', coll: 'c', id: 'a', inc: { n: 2 } }, { op: 'put', coll: 'd', id: 'f', set: { v: 4 } }, { op: 'del', coll: 'c', id: 'b' }])
      const chunk = testNode('chunk of s2')
      const whole = fold([s1, s2])
      await storage.createIndex('d', ['v'])
      const local = testBlock('local', [], [{ op: 'put', coll: 'c', id: 'a', inc: { n: 10 } }, { op: 'put', coll: 'c', id: 'z', set: { v: 9 } }])
      if (holding) await apply(storage, local, { local: true })
      // Three parts: c's collection state and documents, d's documents, then the DAG input alone.
      const parts = [
        installInput({ docs: whole.docs.filter(d => d.coll === 'c'), colls: whole.colls }),
        installInput({ docs: whole.docs.filter(d => d.coll === 'd') }),
        installInput({ docs: [], covered: sorted([s1, s2]), heads: [s2], nodes: [chunk] })
      ]
      let given = 0
      const result = await storage.installSnapshot({
        next: async () => {
          // A part that takes a while to come: the install stays open for it.
          await new Promise(resolve => setTimeout(resolve, 30))
          return parts[given++]
        }
      })
      checkEqual(given, 4, 'installSnapshot asks for parts until the source says there are none')
      const expected = holding
        ? { c: [{ _id: 'a', n: 12, v: 1 }, { _id: 'z', v: 9 }], changes: [{ coll: 'c', id: 'a', before: { _id: 'a', n: 10 }, after: { _id: 'a', n: 12, v: 1 } }], heads: sorted([local, s2]) }
        : { c: [{ _id: 'a', n: 2, v: 1 }], changes: [{ coll: 'c', id: 'a', before: null, after: { _id: 'a', n: 2, v: 1 } }], heads: [s2.cid] }
      checkEqual(byId(result.changes), byId([...expected.changes, { coll: 'd', id: 'e', before: null, after: { _id: 'e', v: 3 } }, { coll: 'd', id: 'f', before: null, after: { _id: 'f', v: 4 } }]), 'installSnapshot changes of every part')
      checkEqual([...result.collections].sort(), holding ? ['d'] : ['c', 'd'], 'installSnapshot collections of every part: the ones that came to exist')
      checkEqual(result.heads, expected.heads, 'installSnapshot heads after the parts')
      checkEqual(await storage.getDocs('c'), expected.c, 'documents of the first part')
      checkEqual(await storage.getDocs('d'), [{ _id: 'e', v: 3 }, { _id: 'f', v: 4 }], 'documents of the second part')
      checkEqual(await storage.scanIndex('d', 'v', ALL), await expectedEntries(storage, 'd', ['v']), 'index entries of the parts')
      check(await storage.hasBlock(s1.cid) && await storage.hasBlock(s2.cid) && await storage.hasBlock(chunk.cid), 'the last part covers, stores the head and its chunk')
      checkEqual(await storage.getMissing(), [], 'getMissing after the parts')
      // The same snapshot in one part gives the same states.
      const source = await storage.readSnapshotSource()
      checkEqual(source.docs, fold(holding ? [s1, s2, local] : [s1, s2]).docs, 'readSnapshotSource docs: the parts joined as the blocks would have')
    })),

    ...[false, true].map(holding => c(`installSnapshot given in parts is atomic, ${holding ? 'into a storage holding documents' : 'into an empty storage'}: a source that rejects after parts were given installs nothing`, async ({ storage }) => {
      await storage.createIndex('c', ['v'])
      if (holding) await apply(storage, testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }]))
      const s1 = testBlock('s1', [], [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }, { op: 'put', coll: 'c', id: 'y', set: { v: [3, 4] } }, { op: 'put', coll: 'd', id: 'z', set: { v: 5 } }])
      const whole = fold([s1])
      const before = await everything(storage, ['c', 'd'])
      const parts = [installInput({ docs: whole.docs.filter(d => d.coll === 'c') }), installInput({ docs: whole.docs.filter(d => d.coll === 'd') })]
      const boom = new Error('the snapshot failed its checks')
      let given = 0
      const err = await rejection(storage.installSnapshot({
        next: async () => {
          await new Promise(resolve => setTimeout(resolve, 20))
          if (given === parts.length) throw boom
          return parts[given++]
        }
      }), 'installSnapshot of a source that rejects')
      checkEqual((err as Error | undefined)?.message, boom.message, 'installSnapshot rejects with the error its source rejected with')
      checkEqual(await everything(storage, ['c', 'd']), before, 'heads, missing, counts, collections, documents, states and index entries after a source rejected')
      const again = [...parts, installInput({ docs: [], covered: [s1.cid], heads: [s1] })]
      given = 0
      await storage.installSnapshot({ next: async () => again[given++] })
      checkEqual(await storage.getDocs('d'), [{ _id: 'z', v: 5 }], 'the same parts install once the source gives them all')
    })),

    c('installSnapshot without heads or covered CIDs writes states only; a state showing no document removes it; a dropped collection gives the merge every state', async ({ storage }) => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }, { op: 'put', coll: 'c', id: 'y', set: { v: 1 } }])
      const b2 = testBlock('b2', [b1], [{ op: 'del', coll: 'c', id: 'y' }])
      const b3 = testBlock('b3', [b2], [{ op: 'put', coll: 'd', id: 'z', set: { v: 1 } }])
      for (const b of [b1, b2, b3]) await apply(storage, b)
      const states = fold([b1, b2, b3])
      const seen: Array<{ keys: string[], y: unknown, colls: unknown }> = []
      const empty = { f: {} }
      const result = await storage.installSnapshot(installInput({
        mode: 'replace',
        docs: [{ coll: 'c', id: 'x', state: empty }, { coll: 'd', id: 'z', state: empty }],
        colls: states.colls,
        seen: input => { seen.push({ keys: [...input.docs.keys()].sort(), y: input.docs.get('c\u0000y'), colls: Object.fromEntries(input.colls) }) }
      }))
      check(seen.length > 0, 'installSnapshot runs the merge')
      checkEqual(seen.at(-1), {
        keys: ['c\u0000x', 'c\u0000y', 'd\u0000z'],
        y: states.docs.find(d => d.id === 'y')?.state,
        colls: { c: states.colls[0]?.state }
      }, 'the merge input: the documents named and every document of a dropped collection (a deleted one too), the collections named')
      checkEqual(byId(result.changes), [
        { coll: 'c', id: 'x', before: { _id: 'x', v: 1 }, after: null },
        { coll: 'd', id: 'z', before: { _id: 'z', v: 1 }, after: null }
      ], 'installSnapshot changes of states that show no document')
      checkEqual(result.collections, ['d'], 'installSnapshot collections: d held only the removed document')
      checkEqual(result.heads, [b3.cid], 'installSnapshot without heads leaves the heads')
      checkEqual(await storage.getHeads(), [b3.cid], 'getHeads after a states-only install')
      checkEqual(await storage.countBlocks(), 3, 'countBlocks after a states-only install')
      checkEqual(await storage.getDoc('c', 'x'), undefined, 'getDoc of a document whose state was replaced by an empty one')
      checkEqual(await storage.getCollections(), ['c'], 'getCollections after a states-only install')
      checkEqual((await storage.readSnapshotSource()).docs, [
        { coll: 'c', id: 'x', state: empty },
        { coll: 'c', id: 'y', state: states.docs.find(d => d.id === 'y')?.state },
        { coll: 'd', id: 'z', state: empty }
      ], 'readSnapshotSource docs keeps the states of absent documents')
    }),

    c('readSnapshotSource: sorted heads, the number missing, every state in (collection, id) order, collection states by name, blocks and covered CIDs without chunks', async ({ storage }) => {
      const b1 = testBlock('b1', [], [
        { op: 'coll', coll: 'b' }, { op: 'put', coll: 'b', id: 'z', set: { v: 1 } },
        { op: 'put', coll: 'a', id: 'a', set: { v: 1 } }, { op: 'put', coll: 'a', id: 'B', set: { v: 1 } }, { op: 'put', coll: 'a', id: '10', set: { v: 1 } }
      ])
      const b2 = testBlock('b2', [b1], [{ op: 'del', coll: 'a', id: 'a' }, { op: 'coll', coll: 'B' }, { op: 'drop', coll: 'B' }])
      const b3 = testBlock('b3', [b1], [{ op: 'put', coll: 'b', id: 'z', inc: { n: 2 } }])
      const b4 = testBlock('b4', [testNode('gone 1'), testNode('gone 2')], [{ op: 'put', coll: 'B', id: 'q', set: { v: 1 } }])
      for (const b of [b1, b2, b3, b4]) await apply(storage, b)
      await storage.putNodes([testNode('a chunk')])
      const covered = [testNode('covered 1'), testNode('covered 2')]
      await storage.installSnapshot(installInput({ docs: [], covered: sorted(covered) }))
      const states = fold([b1, b2, b3, b4])
      const source = await storage.readSnapshotSource()
      checkEqual(source.heads, sorted([b2, b3, b4]), 'readSnapshotSource heads')
      checkEqual(source.missing, 2, 'readSnapshotSource missing: how many CIDs are missing')
      checkEqual(source.docs.map(d => `${d.coll}/${d.id}`), ['B/q', 'a/10', 'a/B', 'a/a', 'b/z'], 'readSnapshotSource docs in (collection, id) order, by UTF-16 code units')
      checkEqual(source.docs, states.docs, 'readSnapshotSource docs: the states the merges wrote, deleted documents too')
      checkEqual(source.colls, states.colls, 'readSnapshotSource colls: the state of every collection that has one, by name')
      checkEqual(source.blocks, sorted([b1, b2, b3, b4, ...covered]), 'readSnapshotSource blocks: stored blocks and covered CIDs, sorted, no chunks')
    })
  ]
}
