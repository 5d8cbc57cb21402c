/**
 * Conformance cases of documents and collections: `getDoc`, `getDocs`, `getDocsById`,
 * `countDocs`, `getCollections`, `hasCollection`, the changes and collections `applyBlock` reports, what a merge
 * is given, and `read`.
 */
import { type Doc, type JsonValue } from '../../crdt/index.js'
import { type ConformanceCase, check, checkEqual, rejection, show } from '../../check.js'
import { type MergeInput } from '../storage.js'
import { RANK } from '../keys.js'
import { ALL, type SuiteContext, StorageEnv, apply, fold, testBlock } from './fixtures.js'

export function documentCases (ctx: SuiteContext): ConformanceCase[] {
  const c = (name: string, fn: (env: StorageEnv) => Promise<void>): ConformanceCase => ({ name, run: async () => { await StorageEnv.run(ctx, fn) } })
  return [
    c('documents: getDoc, getDocs in _id order, getDocsById in the order asked, countDocs; deleted and absent documents are undefined', async ({ storage }) => {
      const ids = ['m', 'a', '10', '9', 'B', 'a0', 'ü', 'z']
      const value = (i: number): Record<string, JsonValue> => ({ n: i, s: `v${i}`, nested: { k: [1, 'two', null, true, { deep: 1.5 }] } })
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, ...ids.map((id, i) => ({ op: 'put' as const, coll: 'c', id, set: value(i) }))])
      const b2 = testBlock('b2', [b1], [{ op: 'del', coll: 'c', id: 'z' }, { op: 'put', coll: 'c', id: 'm', unset: ['s'] }, { op: 'put', coll: 'other', id: 'a', set: { other: true } }])
      await apply(storage, b1)
      await apply(storage, b2)
      const doc = (id: string): Doc => {
        const d: Doc = { _id: id, ...value(ids.indexOf(id)) }
        if (id === 'm') delete d.s
        return d
      }
      const order = ['10', '9', 'B', 'a', 'a0', 'm', 'ü']
      checkEqual(await storage.getDocs('c'), order.map(doc), 'getDocs: every existing document in _id order (UTF-16 code units)')
      checkEqual(await storage.getDoc('c', 'a'), doc('a'), 'getDoc of an existing document')
      checkEqual(await storage.getDoc('c', 'm'), doc('m'), 'getDoc of a document with a field unset')
      checkEqual(await storage.getDoc('c', 'z'), undefined, 'getDoc of a deleted document')
      checkEqual(await storage.getDoc('c', 'nope'), undefined, 'getDoc of a document never written')
      checkEqual(await storage.getDoc('nope', 'a'), undefined, 'getDoc in a collection never written')
      checkEqual(await storage.getDoc('other', 'a'), { _id: 'a', other: true }, 'getDoc of a document with the same id in another collection')
      checkEqual(await storage.getDocsById('c', ['m', 'nope', 'z', 'a', 'm']), [doc('m'), undefined, undefined, doc('a'), doc('m')], 'getDocsById: in the order asked, undefined where absent or deleted')
      checkEqual(await storage.getDocsById('c', []), [], 'getDocsById of no ids')
      checkEqual(await storage.countDocs('c'), order.length, 'countDocs of a collection (deleted documents not counted)')
      checkEqual(await storage.countDocs('other'), 1, 'countDocs of another collection')
      checkEqual(await storage.countDocs('nope'), 0, 'countDocs of a collection never written')
      checkEqual(await storage.getDocs('nope'), [], 'getDocs of a collection never written')
    }),

    c('documents read are copies: changing one changes nothing stored', async ({ storage }) => {
      await apply(storage, testBlock('b1', [], [{ op: 'put', coll: 'c', id: 'x', set: { list: [1], o: { k: 1 } } }]))
      await storage.createIndex('c', ['o.k'])
      const spoil = (d: Doc | undefined): void => {
        if (d === undefined) return
        ;(d.list as JsonValue[]).push(2)
        ;(d.o as Record<string, JsonValue>).k = 2
        d.added = true
      }
      spoil(await storage.getDoc('c', 'x'))
      for (const d of await storage.getDocs('c')) spoil(d)
      for (const d of await storage.getDocsById('c', ['x'])) spoil(d)
      for (const e of await storage.scanIndexDocs('c', 'o.k', { lower: [], upper: [[999]] })) spoil(e.doc)
      checkEqual(await storage.getDoc('c', 'x'), { _id: 'x', list: [1], o: { k: 1 } }, 'the document after changing the copies getDoc, getDocs, getDocsById and scanIndexDocs returned')
    }),

    c('applyBlock reports a change only for documents whose value changed, with before and after; the state is written either way', async ({ storage }) => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      const same = testBlock('same', [b1], [{ op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      const del = testBlock('del', [same], [{ op: 'del', coll: 'c', id: 'x' }])
      const revive = testBlock('revive', [del], [{ op: 'put', coll: 'c', id: 'x', set: { w: 2 } }])
      await apply(storage, b1)
      checkEqual(await apply(storage, same, { local: true }), { applied: true, changes: [], collections: [], heads: [same.cid] }, 'applyBlock of a block writing a value the document already has')
      checkEqual((await storage.readSnapshotSource()).docs, fold([b1, same]).docs, 'the state is written even though the document did not change')
      checkEqual((await apply(storage, del, { local: true })).changes, [{ coll: 'c', id: 'x', before: { _id: 'x', v: 1 }, after: null }], 'changes of a delete')
      checkEqual((await apply(storage, revive)).changes, [{ coll: 'c', id: 'x', before: null, after: { _id: 'x', w: 2 } }], 'changes of a put after a delete')
      checkEqual(await storage.getDoc('c', 'x'), { _id: 'x', w: 2 }, 'a document written after its delete')
      checkEqual((await storage.readSnapshotSource()).docs, fold([b1, same, del, revive]).docs, 'states after a delete and a revival')
    }),

    c('collections exist once created and not dropped since, or while they hold documents; getCollections is sorted and hasCollection agrees; applyBlock reports existence changes', async ({ storage }) => {
      const step = async (label: string, ops: Parameters<typeof testBlock>[2], collections: string[], listed: string[]): Promise<void> => {
        const result = await apply(storage, testBlock(label, await storage.getHeads(), ops))
        checkEqual([...result.collections].sort(), collections, `applyBlock collections (${label})`)
        checkEqual(await storage.getCollections(), listed, `getCollections (${label})`)
        for (const coll of ['a', 'b', 'c', 'd']) checkEqual(await storage.hasCollection(coll), listed.includes(coll), `hasCollection('${coll}') (${label})`)
      }
      checkEqual(await storage.getCollections(), [], 'getCollections of an empty storage')
      checkEqual(await storage.hasCollection('a'), false, 'hasCollection of an empty storage')
      await step('create b and c, write a', [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'a', id: 'x', set: { v: 1 } }, { op: 'coll', coll: 'b' }], ['a', 'b', 'c'], ['a', 'b', 'c'])
      await step('drop the empty c', [{ op: 'drop', coll: 'c' }], ['c'], ['a', 'b'])
      await step('delete a\'s only document', [{ op: 'del', coll: 'a', id: 'x' }], ['a'], ['b'])
      await step('write a document in the dropped c', [{ op: 'put', coll: 'c', id: 'y', set: { v: 1 } }], ['c'], ['b', 'c'])
      await step('create c again', [{ op: 'coll', coll: 'c' }], [], ['b', 'c'])
      const seen: MergeInput[] = []
      const drop = testBlock('drop c with a document', await storage.getHeads(), [{ op: 'drop', coll: 'c' }])
      const result = await apply(storage, drop, { seen: input => { seen.push(input) } })
      checkEqual(result.changes, [{ coll: 'c', id: 'y', before: { _id: 'y', v: 1 }, after: null }], 'changes of dropping a collection that holds a document')
      checkEqual(result.collections, ['c'], 'collections of dropping a collection that holds a document')
      checkEqual(await storage.getCollections(), ['b'], 'getCollections after dropping a collection that holds a document')
      checkEqual(await storage.hasCollection('c'), false, 'hasCollection after dropping a collection that holds a document')
      checkEqual(await storage.getDocs('c'), [], 'getDocs of a dropped collection')
      check(seen.at(-1)?.docs.has('c\u0000y') === true, 'the merge of a drop is given the states of the collection\'s documents')
    }),

    c('a merge is given the states of the documents and collections a block names and of every document of a collection it drops; `before` starts empty', async ({ storage }) => {
      const b1 = testBlock('b1', [], [
        { op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }, { op: 'put', coll: 'c', id: 'y', set: { v: 1 } }, { op: 'put', coll: 'd', id: 'z', set: { v: 1 } }
      ])
      const b2 = testBlock('b2', [b1], [{ op: 'del', coll: 'c', id: 'y' }])
      await apply(storage, b1)
      await apply(storage, b2)
      const states = fold([b1, b2])
      const stateOf = (coll: string, id: string): unknown => states.docs.find(d => d.coll === coll && d.id === id)?.state
      const seen: Array<{ docs: unknown, keys: string[], colls: unknown, collKeys: string[], before: number }> = []
      const b3 = testBlock('b3', [b2], [{ op: 'put', coll: 'd', id: 'w', set: { v: 1 } }, { op: 'drop', coll: 'c' }])
      await apply(storage, b3, {
        seen: input => {
          seen.push({
            docs: Object.fromEntries(input.docs),
            keys: [...input.docs.keys()].sort(),
            colls: Object.fromEntries(input.colls),
            collKeys: [...input.colls.keys()].sort(),
            before: input.before.size
          })
        }
      })
      check(seen.length > 0, 'applyBlock runs the merge')
      checkEqual(seen.at(-1), {
        docs: { 'c\u0000x': stateOf('c', 'x'), 'c\u0000y': stateOf('c', 'y') },
        keys: ['c\u0000x', 'c\u0000y', 'd\u0000w'],
        colls: { c: states.colls[0]?.state },
        collKeys: ['c', 'd'],
        before: 0
      }, 'the merge input: states by docKey (undefined for a new document), a dropped collection\'s documents, deleted ones too, and collection states (undefined when none)')
      checkEqual(await storage.getDocs('d'), [{ _id: 'w', v: 1 }, { _id: 'z', v: 1 }], 'documents of the collection the block wrote')
      checkEqual(await storage.getDocs('c'), [], 'documents of the collection the block dropped')
    }),

    c('read(fn) resolves with what fn resolves with; the document, collection and index reads in fn see one state while a block is applied meanwhile; a rejection of fn comes through', async ({ storage }) => {
      await apply(storage, testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }]))
      await storage.createIndex('c', ['v'])
      const reading = storage.read(async () => {
        const first = await storage.getDoc('c', 'x')
        for (let i = 0; i < 5; i++) await storage.countDocs('c')
        const docs = await storage.getDocs('c')
        const byId = await storage.getDocsById('c', ['x', 'y'])
        const count = await storage.countDocs('c')
        const collections = await storage.getCollections()
        const indexes = (await storage.listIndexes('c')).map(i => i.name)
        const entries = await storage.scanIndex('c', 'v', ALL)
        const withDocs = (await storage.scanIndexDocs('c', 'v', ALL)).map(e => e.doc)
        const last = await storage.getDoc('c', 'x')
        return { first, docs, byId, count, collections, indexes, entries, withDocs, last }
      })
      // Issued while the function runs: its reads must see the state before this block or after it, never both.
      const writing = apply(storage, testBlock('b2', [], [{ op: 'put', coll: 'c', id: 'x', set: { v: 2 } }, { op: 'put', coll: 'c', id: 'y', set: { v: 1 } }]))
      const [x1, x2, y1] = [{ _id: 'x', v: 1 }, { _id: 'x', v: 2 }, { _id: 'y', v: 1 }]
      const before = { first: x1, docs: [x1], byId: [x1, undefined], count: 1, collections: ['c'], indexes: ['v'], entries: [{ key: [[RANK.number, 1]], id: 'x' }], withDocs: [x1], last: x1 }
      const after = { first: x2, docs: [x2, y1], byId: [x2, y1], count: 2, collections: ['c'], indexes: ['v'], entries: [{ key: [[RANK.number, 1]], id: 'y' }, { key: [[RANK.number, 2]], id: 'x' }], withDocs: [y1, x2], last: x2 }
      const seen = show(await reading)
      check(seen === show(before) || seen === show(after), `the reads inside read() while a block was applied saw one state: expected ${show(before)} or ${show(after)}, got ${seen}`)
      await writing
      checkEqual(await storage.getDocs('c'), [{ _id: 'x', v: 2 }, { _id: 'y', v: 1 }], 'the block applied meanwhile, once read() resolved')
      checkEqual(await storage.read(async () => await storage.getCollections()), ['c'], 'read resolves with what its function resolves with')
      const err = await rejection(storage.read(async () => { await storage.getDoc('c', 'x'); throw new Error('inside read') }), 'read of a function that rejects')
      checkEqual((err as Error | undefined)?.message, 'inside read', 'read rejects with the error of its function')
    })
  ]
}
