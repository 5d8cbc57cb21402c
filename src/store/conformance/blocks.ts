/**
 * Conformance cases of the block store and the DAG bookkeeping: `applyBlock` (its result,
 * idempotence, atomicity, its hints), `hasBlock`, `getBlocks`, `countBlocks`, `putNodes`,
 * `getHeads`, `getMissing`.
 */
import { type Op } from '../../crdt/index.js'
import { type ConformanceCase, check, checkEqual, rejection } from '../../check.js'
import { type MergeInput } from '../storage.js'
import { type ApplyOptions, type SuiteContext, StorageEnv, type TestBlock, apply, everything, sorted, testBlock, testNode } from './fixtures.js'

export function blockCases (ctx: SuiteContext): ConformanceCase[] {
  const c = (name: string, fn: (env: StorageEnv) => Promise<void>): ConformanceCase => ({ name, run: async () => { await StorageEnv.run(ctx, fn) } })

  /**
   * A case where a block's merge throws after `setup`: the block (with a chunk) must leave
   * nothing written, and apply once its merge succeeds.
   */
  const atomic = (name: string, setup: (env: StorageEnv) => Promise<{ block: TestBlock, options: ApplyOptions }>): ConformanceCase =>
    c(`applyBlock is atomic: a merge that throws leaves nothing written (${name})`, async env => {
      const { block, options } = await setup(env)
      const { storage } = env
      const colls = ['c', 'd']
      const before = await everything(storage, colls)
      const chunk = testNode(`chunk of ${block.cid}`)
      const boom = new Error('the merge refused the block')
      const err = await rejection(apply(storage, block, { ...options, nodes: [chunk], fail: boom }), 'applyBlock with a throwing merge')
      checkEqual((err as Error | undefined)?.message, boom.message, 'applyBlock rejects with the error its merge threw')
      check(!await storage.hasBlock(block.cid), 'a block whose merge threw is not stored (hasBlock is false)')
      check(!await storage.hasBlock(chunk.cid), 'the chunks of a block whose merge threw are not stored')
      checkEqual(await storage.getBlocks([block.cid, chunk.cid]), [undefined, undefined], 'getBlocks of a block whose merge threw, and of its chunk')
      checkEqual(await everything(storage, colls), before, 'heads, missing, counts, collections, documents, states and index entries after a merge threw')
      const result = await apply(storage, block, { ...options, nodes: [chunk] })
      check(result.applied, 'the same block applies once its merge succeeds')
      check(await storage.hasBlock(chunk.cid), 'its chunk is stored then')
    })

  return [
    c('applyBlock stores a block and reports what changed; hasBlock, getBlocks, countBlocks and getHeads see it', async ({ storage }) => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      const absent = testNode('never stored')
      checkEqual(await storage.getHeads(), [], 'getHeads of an empty storage')
      checkEqual(await storage.getMissing(), [], 'getMissing of an empty storage')
      checkEqual(await storage.countBlocks(), 0, 'countBlocks of an empty storage')
      check(!await storage.hasBlock(b1.cid), 'hasBlock of a block not applied yet is false')
      checkEqual(await storage.getBlocks([b1.cid]), [undefined], 'getBlocks of a block not applied yet')
      checkEqual(await apply(storage, b1), {
        applied: true,
        changes: [{ coll: 'c', id: 'x', before: null, after: { _id: 'x', v: 1 } }],
        collections: ['c'],
        heads: [b1.cid]
      }, 'applyBlock result of a new block that creates a collection and a document')
      check(await storage.hasBlock(b1.cid), 'hasBlock of an applied block is true')
      check(!await storage.hasBlock(absent.cid), 'hasBlock of a CID never stored is false')
      checkEqual(await storage.getBlocks([b1.cid, absent.cid, b1.cid]), [b1.bytes, undefined, b1.bytes], 'getBlocks: the bytes of each CID in the order asked, undefined where not stored')
      checkEqual(await storage.getBlocks([]), [], 'getBlocks of no CIDs')
      checkEqual(await storage.countBlocks(), 1, 'countBlocks after one block')
      checkEqual(await storage.getHeads(), [b1.cid], 'getHeads after one block')
      // A document in a collection no op created: the collection exists while it holds documents.
      const b2 = testBlock('b2', [b1], [{ op: 'put', coll: 'd', id: 'y', set: { w: 'z' } }])
      checkEqual(await apply(storage, b2), {
        applied: true,
        changes: [{ coll: 'd', id: 'y', before: null, after: { _id: 'y', w: 'z' } }],
        collections: ['d'],
        heads: [b2.cid]
      }, 'applyBlock result of a block writing the first document of a collection never created')
      // A local block on the heads, changing a document of an existing collection.
      const b3 = testBlock('b3', [b2], [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }])
      checkEqual(await apply(storage, b3, { local: true }), {
        applied: true,
        changes: [{ coll: 'c', id: 'x', before: { _id: 'x', v: 1 }, after: { _id: 'x', v: 2 } }],
        collections: [],
        heads: [b3.cid]
      }, 'applyBlock result of a local block updating a document')
      checkEqual(await storage.getHeads(), [b3.cid], 'getHeads after a chain of three blocks')
      checkEqual(await storage.countBlocks(), 3, 'countBlocks after three blocks')
    }),

    c('applyBlock is idempotent: a block already stored is not applied again, also after a reopen', async env => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', inc: { n: 1 } }])
      const orphan = testBlock('orphan', [testNode('unknown parent')], [{ op: 'put', coll: 'c', id: 'y', inc: { n: 1 } }])
      await apply(env.storage, b1)
      await apply(env.storage, orphan)
      // The same CID again, with a merge that would write something else: nothing may change.
      const twin = (b: TestBlock): TestBlock => ({ ...b, ops: [{ op: 'put', coll: 'c', id: 'x', set: { n: 99 } }] })
      const heads = sorted([b1, orphan])
      for (const reopen of [false, true]) {
        const storage = reopen ? await env.reopen() : env.storage
        for (const b of [b1, orphan]) {
          checkEqual(await apply(storage, twin(b)), { applied: false, changes: [], collections: [], heads }, `applyBlock of ${b === b1 ? 'a stored block' : 'a stored block whose parent is missing'} again`)
        }
        checkEqual(await storage.getDocs('c'), [{ _id: 'x', n: 1 }, { _id: 'y', n: 1 }], 'documents after blocks applied twice')
        checkEqual(await storage.countBlocks(), 2, 'countBlocks after blocks applied twice')
        checkEqual(await storage.getMissing(), [testNode('unknown parent').cid], 'getMissing after blocks applied twice')
      }
    }),

    c('heads and missing parents follow blocks arriving children first, and concurrent blocks', async ({ storage }) => {
      const b1 = testBlock('b1', [], [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      const b2 = testBlock('b2', [b1], [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }])
      const b3 = testBlock('b3', [b2], [{ op: 'put', coll: 'c', id: 'y', set: { v: 3 } }])
      const c3 = testBlock('c3', [b2], [{ op: 'put', coll: 'c', id: 'z', set: { v: 4 } }])
      const unknown = testNode('never arrives')
      const d = testBlock('d', [b3, unknown], [{ op: 'put', coll: 'c', id: 'y', set: { v: 5 } }])
      // A block whose parent is missing is applied at once; its parent becomes missing.
      checkEqual((await apply(storage, b3)).heads, [b3.cid], 'heads in the result of a block whose parent is missing')
      checkEqual(await storage.getDoc('c', 'y'), { _id: 'y', v: 3 }, 'the document of a block whose parent is missing')
      checkEqual(await storage.getMissing(), [b2.cid], 'getMissing: the parent named by a stored block')
      await apply(storage, c3)
      checkEqual(await storage.getMissing(), [b2.cid], 'getMissing lists a parent two stored blocks name once')
      checkEqual(await storage.getHeads(), sorted([b3, c3]), 'getHeads: two blocks no stored block names')
      // b1 is named by no stored block (b2 is not stored yet): it is a head until b2 arrives.
      checkEqual((await apply(storage, b1)).heads, sorted([b1, b3, c3]), 'heads after the root arrives before its child')
      checkEqual(await storage.getMissing(), [b2.cid], 'getMissing after the root arrived')
      checkEqual((await apply(storage, b2)).heads, sorted([b3, c3]), 'heads after the missing block arrives (it is named, so not a head, and it replaces its parent)')
      checkEqual(await storage.getMissing(), [], 'getMissing once every named block arrived')
      checkEqual(await storage.getDoc('c', 'x'), { _id: 'x', v: 2 }, 'the document after blocks arrived out of order')
      // A block naming a stored head and an unknown CID: only the unknown one is missing.
      checkEqual((await apply(storage, d)).heads, sorted([c3, d]), 'heads after a block merging one head')
      checkEqual(await storage.getMissing(), [unknown.cid], 'getMissing lists only the unknown parent')
      const m = testBlock('m', [c3, d], [{ op: 'put', coll: 'c', id: 'z', set: { v: 6 } }])
      checkEqual((await apply(storage, m, { local: true })).heads, [m.cid], 'heads after a block naming every head')
      checkEqual(await storage.getHeads(), [m.cid], 'getHeads after a block naming every head')
      checkEqual(await storage.getMissing(), [unknown.cid], 'getMissing after a block naming every head')
    }),

    atomic('a remote block whose parent is missing, creating a collection', async ({ storage }) => {
      await apply(storage, testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }]))
      await storage.createIndex('c', ['v'])
      const block = testBlock('b2', [testNode('unknown')], [
        { op: 'put', coll: 'c', id: 'x', set: { v: 2 } }, { op: 'put', coll: 'c', id: 'y', set: { v: 3 } },
        { op: 'coll', coll: 'd' }, { op: 'put', coll: 'd', id: 'z', set: { v: 4 } }
      ])
      return { block, options: {} }
    }),

    atomic('a local block on the heads', async ({ storage }) => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      const b2 = testBlock('b2', [b1], [{ op: 'put', coll: 'c', id: 'y', set: { v: 1 } }])
      await storage.createIndex('c', ['v'])
      await apply(storage, b1, { local: true })
      await apply(storage, b2, { local: true })
      return { block: testBlock('b3', [b2], [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }, { op: 'del', coll: 'c', id: 'y' }]), options: { local: true } }
    }),

    atomic('a local insert expected absent', async ({ storage }) => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      await apply(storage, b1, { local: true })
      return { block: testBlock('b2', [b1], [{ op: 'put', coll: 'c', id: 'new', set: { v: 2 } }]), options: { local: true, expectAbsent: true } }
    }),

    atomic('a local block on documents this storage instance has not read', async env => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      await apply(env.storage, b1, { local: true })
      const storage = await env.reopen()
      const b2 = testBlock('b2', [b1], [{ op: 'put', coll: 'c', id: 'other', set: { v: 1 } }])
      await apply(storage, b2, { local: true })
      return { block: testBlock('b3', [b2], [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }]), options: { local: true } }
    }),

    c('expectAbsent is a hint: a document that exists is merged from its stored state', async env => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1, w: 1 } }])
      await apply(env.storage, b1, { local: true })
      for (const [label, v] of [['just written', 2], ['after a reopen', 3]] as const) {
        // After the reopen, first a write on another document, so only x's state is unread.
        const storage = label === 'just written' ? env.storage : await env.reopen()
        const other = testBlock(`other ${label}`, await storage.getHeads(), [{ op: 'put', coll: 'c', id: `o ${label}`, set: { v: 0 } }])
        await apply(storage, other, { local: true })
        const seen: boolean[] = []
        const b = testBlock(`b ${label}`, [other], [{ op: 'put', coll: 'c', id: 'x', set: { v } }])
        const result = await apply(storage, b, { local: true, expectAbsent: true, seen: input => { seen.push(input.docs.get('c\u0000x') !== undefined) } })
        // A storage may first run the merge on the hint, but what it commits is the merge of the stored state.
        check(seen.at(-1) === true, `the last merge of a block expected to insert a document that exists (${label}) sees its state`)
        checkEqual(result.changes, [{ coll: 'c', id: 'x', before: { _id: 'x', v: v - 1, w: 1 }, after: { _id: 'x', v, w: 1 } }], `changes of that block (${label})`)
        checkEqual(await storage.getDoc('c', 'x'), { _id: 'x', v, w: 1 }, `the document after that block (${label})`)
      }
    }),

    c('expectAbsent in a large insert among many stored documents: one past the first keys of its range, and a deleted one, are merged from their stored states', async env => {
      // c holds k000…k199; d a document deleted since (only its state is stored).
      const ids = Array.from({ length: 200 }, (_, n) => `k${String(n).padStart(3, '0')}`)
      const b1 = testBlock('many', [], [
        { op: 'coll', coll: 'c' }, { op: 'coll', coll: 'd' },
        ...ids.map((id): Op => ({ op: 'put', coll: 'c', id, set: { v: 1 } })),
        { op: 'put', coll: 'd', id: 'gone', set: { v: 1, w: 1 } },
        { op: 'put', coll: 'd', id: 'gone too', set: { v: 1 } }
      ])
      await apply(env.storage, b1, { local: true })
      const b2 = testBlock('delete', [b1], [{ op: 'del', coll: 'd', id: 'gone' }, { op: 'del', coll: 'd', id: 'gone too' }])
      await apply(env.storage, b2, { local: true })
      // After a reopen, a write to both collections, so only the documents below are unread.
      const storage = await env.reopen()
      const other = testBlock('other', [b2], [{ op: 'put', coll: 'c', id: 'zzz', set: { v: 0 } }, { op: 'put', coll: 'd', id: 'zzz', set: { v: 0 } }])
      await apply(storage, other, { local: true })
      // Inserts of 41 documents (more than a storage may check one by one). c's range from 'a00'
      // to 'k150' holds 151 stored keys, k150 the last of them.
      const fresh = Array.from({ length: 40 }, (_, n) => `a${String(n).padStart(2, '0')}`)
      const puts = (coll: string, ids: string[]): Op[] => ids.map(id => ({ op: 'put', coll, id, set: { v: 2 } }))
      const seen: MergeInput[] = []
      const b3 = testBlock('insert into c', [other], puts('c', [...fresh, 'k150']))
      const r3 = await apply(storage, b3, { local: true, expectAbsent: true, seen: input => { seen.push(input) } })
      check(seen.at(-1)?.docs.get('c\u0000k150') !== undefined, 'the merge committed sees the state of c/k150, stored past the first keys of the insert\'s range')
      checkEqual(r3.changes.filter(ch => ch.before !== null).map(ch => [ch.id, ch.before]), [['k150', { _id: 'k150', v: 1 }]], 'the one document of c that existed before the insert')
      const b4 = testBlock('insert into d', [b3], puts('d', ['gone', ...fresh.map(id => `new ${id}`)]))
      await apply(storage, b4, { local: true, expectAbsent: true, seen: input => { seen.push(input) } })
      check(seen.at(-1)?.docs.get('d\u0000gone') !== undefined, 'the merge committed sees the state of the deleted d/gone')
      // and an insert of one document, deleted before
      const b5 = testBlock('insert one into d', [b4], puts('d', ['gone too']))
      await apply(storage, b5, { local: true, expectAbsent: true, seen: input => { seen.push(input) } })
      check(seen.at(-1)?.docs.get('d\u0000gone too') !== undefined, 'the merge committed sees the state of the deleted d/gone too')
      checkEqual(await storage.getDoc('d', 'gone'), { _id: 'gone', v: 2 }, 'the deleted document put again shows only what was put after the delete')
    }),

    c('chunks: applyBlock stores its nodes and putNodes stores chunks ahead of their block; neither are blocks, heads or missing', async ({ storage }) => {
      const early = testNode('chunk that arrives first')
      const withBlock = testNode('chunk that comes with its block')
      await storage.putNodes([early])
      await storage.putNodes([early])
      await storage.putNodes([])
      check(await storage.hasBlock(early.cid), 'hasBlock of a chunk stored by putNodes is true')
      checkEqual(await storage.getBlocks([early.cid]), [early.bytes], 'getBlocks returns a chunk\'s bytes')
      checkEqual(await storage.countBlocks(), 0, 'countBlocks does not count chunks')
      checkEqual(await storage.getHeads(), [], 'a chunk is not a head')
      checkEqual(await storage.getMissing(), [], 'a chunk makes nothing missing')
      const b = testBlock('b', [], [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      await apply(storage, b, { nodes: [withBlock] })
      check(await storage.hasBlock(withBlock.cid), 'hasBlock of a chunk applied with its block is true')
      checkEqual(await storage.getBlocks([early.cid, b.cid, withBlock.cid]), [early.bytes, b.bytes, withBlock.bytes], 'getBlocks of chunks and a block')
      checkEqual(await storage.countBlocks(), 1, 'countBlocks counts the block, not its chunks')
      checkEqual(await storage.getHeads(), [b.cid], 'getHeads: the block only')
      checkEqual((await storage.readSnapshotSource()).blocks, [b.cid], 'readSnapshotSource lists blocks without chunks')
    })
  ]
}
