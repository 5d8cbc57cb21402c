/**
 * Conformance cases of secondary indexes: `createIndex` (build, progress, concurrent writes and
 * declarations), `listIndexes`, `dropIndex`, `scanIndex` and `scanIndexDocs` (ranges, open
 * bounds, order, `after`, `limit`, `reverse`, multikey documents), and the entries writes keep.
 */
import { type JsonValue } from '../../crdt/index.js'
import { type ConformanceCase, check, checkEqual } from '../../check.js'
import { type KeyRange, RANK, compareKeys } from '../keys.js'
import { type IndexEntry, type IndexProgress } from '../storage.js'
import { ALL, type SuiteContext, StorageEnv, apply, expectedEntries, testBlock } from './fixtures.js'

const pad = (i: number): string => String(i).padStart(5, '0')

export function indexCases (ctx: SuiteContext): ConformanceCase[] {
  const c = (name: string, fn: (env: StorageEnv) => Promise<void>): ConformanceCase => ({ name, run: async () => { await StorageEnv.run(ctx, fn) } })
  /** Apply a block of `ops` on the current heads. */
  const write = async (storage: StorageEnv['storage'], label: string, ops: Parameters<typeof testBlock>[2]): Promise<void> => {
    await apply(storage, testBlock(label, await storage.getHeads(), ops), { local: true })
  }
  return [
    c('createIndex builds over existing documents, reporting progress, while blocks applied during the build keep it exact; listIndexes reports it', async ({ storage }) => {
      const n = ctx.options.buildDocs
      await write(storage, 'docs', [{ op: 'coll', coll: 'c' }, ...Array.from({ length: n }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${pad(i)}`, set: { a: i % 7 } }))])
      checkEqual(await storage.listIndexes('c'), [], 'listIndexes before any index is declared')
      const progress: IndexProgress[] = []
      let during: Promise<void> | undefined
      const info = await storage.createIndex('c', ['a'], p => {
        progress.push({ done: p.done, total: p.total })
        // A block applied while the index is built (not awaited here: the build goes on).
        during ??= write(storage, 'during the build', [
          { op: 'put', coll: 'c', id: `d${pad(1)}`, set: { a: 'moved' } },
          { op: 'del', coll: 'c', id: `d${pad(2)}` },
          { op: 'put', coll: 'c', id: 'new', set: { a: 3 } }
        ])
      })
      await during
      checkEqual(info, { name: 'a', paths: ['a'], ready: true, multikey: false }, 'createIndex resolves with the index, ready')
      checkEqual(await storage.listIndexes('c'), [info], 'listIndexes after the build')
      check(progress.length > 0, 'createIndex reports progress')
      checkEqual(progress[0], { done: 0, total: n }, 'the first progress report: nothing done of every document')
      for (let i = 0; i < progress.length; i++) {
        const p = progress[i]
        check(p.done >= 0 && p.done <= p.total, `progress report ${i}: done within [0, total]: ${JSON.stringify(p)}`)
        check(i === 0 || p.done >= progress[i - 1].done, `progress reports never go back: ${JSON.stringify(progress.slice(i - 1, i + 1))}`)
      }
      const last = progress[progress.length - 1]
      check(last.done === last.total, `the last progress report says every document is done: ${JSON.stringify(last)}`)
      checkEqual(await storage.scanIndex('c', 'a', ALL), await expectedEntries(storage, 'c', ['a']), 'index entries after a build with a block applied during it')
      checkEqual(await storage.scanIndex('c', 'a', { lower: [[RANK.string, 'moved']], upper: [[RANK.string, 'moved']] }), [{ key: [[RANK.string, 'moved']], id: `d${pad(1)}` }], 'the entry of a document changed during the build')
      checkEqual(await storage.listIndexes('other'), [], 'listIndexes of another collection')
    }),

    c('createIndex of a declared index resolves with it, ready, also when declared twice at once', async ({ storage }) => {
      await write(storage, 'docs', [{ op: 'coll', coll: 'c' }, ...Array.from({ length: 50 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${pad(i)}`, set: { a: i % 3 } }))])
      const ready = { name: 'a', paths: ['a'], ready: true, multikey: false }
      checkEqual(await Promise.all([storage.createIndex('c', ['a']), storage.createIndex('c', ['a'])]), [ready, ready], 'two createIndex of one index at once')
      checkEqual(await storage.createIndex('c', ['a']), ready, 'createIndex of an index already built')
      checkEqual(await storage.listIndexes('c'), [ready], 'listIndexes lists an index declared three times once')
      checkEqual(await storage.scanIndex('c', 'a', ALL), await expectedEntries(storage, 'c', ['a']), 'index entries of an index declared three times')
    }),

    c('compound, dotted and multikey indexes: keys as keys.ts encodes them; multikey is set by writes and builds and stays set', async ({ storage }) => {
      const compound = await storage.createIndex('c', ['city', 'age'])
      checkEqual(compound, { name: 'city+age', paths: ['city', 'age'], ready: true, multikey: false }, 'createIndex of a compound index on an empty collection')
      await write(storage, 'people', [
        { op: 'put', coll: 'c', id: 'p1', set: { city: 'b', age: 3 } },
        { op: 'put', coll: 'c', id: 'p2', set: { city: 'a', age: 5 } },
        { op: 'put', coll: 'c', id: 'p3', set: { age: 1 } },
        { op: 'put', coll: 'c', id: 'q1', set: { o: { x: 5 } } },
        { op: 'put', coll: 'c', id: 'q2', set: { o: [{ x: 1 }, { x: 2 }] } }
      ])
      checkEqual((await storage.listIndexes('c'))[0]?.multikey, false, 'multikey of a compound index no document has several values for')
      checkEqual(await storage.scanIndex('c', 'city+age', ALL), await expectedEntries(storage, 'c', ['city', 'age']), 'entries of a compound index (a missing field indexed as null)')
      await write(storage, 'array', [{ op: 'put', coll: 'c', id: 'p4', set: { city: 'a', age: [1, 2] } }])
      checkEqual((await storage.listIndexes('c'))[0]?.multikey, true, 'multikey once a document has several values at an indexed path')
      checkEqual(await storage.scanIndex('c', 'city+age', { lower: [[RANK.string, 'a']], upper: [[RANK.string, 'a'], [RANK.max]] }), [
        { key: [[RANK.string, 'a'], [RANK.number, 1]], id: 'p4' },
        { key: [[RANK.string, 'a'], [RANK.number, 2]], id: 'p4' },
        { key: [[RANK.string, 'a'], [RANK.number, 5]], id: 'p2' }
      ], 'a compound prefix range: one entry per key of a multikey document')
      await write(storage, 'gone', [{ op: 'del', coll: 'c', id: 'p4' }])
      checkEqual((await storage.listIndexes('c'))[0]?.multikey, true, 'multikey stays set after the document goes')
      checkEqual(await storage.scanIndex('c', 'city+age', ALL), await expectedEntries(storage, 'c', ['city', 'age']), 'a deleted document leaves no entries')
      const dotted = await storage.createIndex('c', ['o.x'])
      checkEqual(dotted, { name: 'o.x', paths: ['o.x'], ready: true, multikey: true }, 'createIndex of a dotted path through an array: the build sets multikey')
      checkEqual(await storage.scanIndex('c', 'o.x', ALL), await expectedEntries(storage, 'c', ['o.x']), 'entries of a dotted index')
      checkEqual(await storage.scanIndex('c', 'o.x', { lower: [[RANK.number, 1]], upper: [[RANK.number, 2]] }), [
        { key: [[RANK.number, 1]], id: 'q2' }, { key: [[RANK.number, 2]], id: 'q2' }
      ], 'a range of a dotted index')
      checkEqual((await storage.listIndexes('c')).map(i => i.name).sort(), ['city+age', 'o.x'], 'listIndexes names')
    }),

    c('scanIndex and scanIndexDocs: ranges with open bounds, (key, id) order, reverse, after and limit through duplicate and multikey keys', async ({ storage }) => {
      await storage.createIndex('c', ['a'])
      const values: JsonValue[] = [1, 2, 2, 'x', [2, 3], 2, 1, [1, 1, 'x'], null, 3, 2, 'x']
      await write(storage, 'values', values.map((a, i) => ({ op: 'put' as const, coll: 'c', id: `d${String(values.length - i).padStart(2, '0')}`, set: { a } })))
      await write(storage, 'no a', [{ op: 'put', coll: 'c', id: 'e', set: { b: 1 } }]) // no `a`: indexed as null
      const ranges: KeyRange[] = [
        ALL,
        { lower: [[RANK.number, 2]], upper: [[RANK.number, 2]] },
        { lower: [[RANK.number, 1]], upper: [[RANK.number, 3]], lowerOpen: true },
        { lower: [[RANK.number]], upper: [[RANK.number + 1]], upperOpen: true },
        { lower: [[RANK.number, 2]], upper: [[RANK.string, 'x']], lowerOpen: true, upperOpen: true },
        { lower: [[RANK.string, 'y']], upper: [[RANK.max]] }
      ]
      const byEntry = (a: IndexEntry, b: IndexEntry): number => compareKeys(a.key, b.key) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
      for (const range of ranges) {
        const r = JSON.stringify(range)
        const expected = await expectedEntries(storage, 'c', ['a'], range)
        checkEqual(await storage.scanIndex('c', 'a', range), expected, `scanIndex of ${r}`)
        checkEqual(await storage.scanIndex('c', 'a', range, { reverse: true }), [...expected].reverse(), `scanIndex of ${r}, reverse`)
        const withDocs = await storage.scanIndexDocs('c', 'a', range)
        checkEqual(withDocs.map(e => ({ key: e.key, id: e.id })), expected, `scanIndexDocs of ${r}: the entries of scanIndex`)
        checkEqual(withDocs.map(e => e.doc), await storage.getDocsById('c', expected.map(e => e.id)), `scanIndexDocs of ${r}: each entry's document`)
        for (const reverse of [false, true]) {
          const order = reverse ? [...expected].reverse() : expected
          checkEqual((await storage.scanIndexDocs('c', 'a', range, { reverse, limit: 2 })).map(e => ({ key: e.key, id: e.id })), order.slice(0, 2), `scanIndexDocs of ${r}, limit 2${reverse ? ', reverse' : ''}`)
          for (const limit of [1, 2, 3]) {
            const paged: IndexEntry[] = []
            let after: IndexEntry | undefined
            for (let pages = 0; pages <= order.length; pages++) {
              const page = await storage.scanIndex('c', 'a', range, { reverse, limit, ...(after !== undefined ? { after } : {}) })
              check(page.length <= limit, `scanIndex of ${r} returns at most limit ${limit} entries, got ${page.length}`)
              paged.push(...page)
              if (page.length < limit) break
              after = page[page.length - 1]
            }
            checkEqual(paged, order, `scanIndex of ${r} paged by ${limit} with after${reverse ? ', reverse' : ''}`)
            // `after` any entry continues strictly after it, in scan order
            for (let i = 0; i < order.length; i++) {
              checkEqual(await storage.scanIndex('c', 'a', range, { reverse, after: order[i], limit }), order.slice(i + 1, i + 1 + limit), `scanIndex of ${r} after entry ${i}, limit ${limit}${reverse ? ', reverse' : ''}`)
            }
          }
          // `after` a position between entries (an id no document has) continues after that position
          const between: IndexEntry = { key: [[RANK.number, 2]], id: 'd05x' }
          const rest = order.filter(e => reverse ? byEntry(e, between) < 0 : byEntry(e, between) > 0)
          checkEqual(await storage.scanIndex('c', 'a', range, { reverse, after: between }), rest, `scanIndex of ${r} after a position between entries${reverse ? ', reverse' : ''}`)
          checkEqual((await storage.scanIndexDocs('c', 'a', range, { reverse, after: between })).map(e => ({ key: e.key, id: e.id })), rest, `scanIndexDocs of ${r} after a position between entries${reverse ? ', reverse' : ''}`)
        }
      }
      const multi = await storage.scanIndexDocs('c', 'a', { lower: [[RANK.number, 1]], upper: [[RANK.number, 1]] })
      checkEqual(multi.map(e => e.id), ['d05', 'd06', 'd12'], 'scanIndexDocs: a multikey document with one key twice in its array comes once for that key')
      checkEqual(await storage.scanIndex('c', 'a', ALL, { limit: 0 }), [], 'scanIndex with limit 0')
    }),

    c('dropIndex removes an index and its entries; declared again it is exact though documents changed meanwhile; undeclared indexes scan empty', async ({ storage }) => {
      await storage.createIndex('c', ['a'])
      await storage.createIndex('c', ['b'])
      await write(storage, 'docs', Array.from({ length: 30 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${String(i).padStart(2, '0')}`, set: { a: i % 4, b: i % 3 === 0 ? [i, 'x'] : 's' } })))
      await storage.dropIndex('c', 'a')
      checkEqual(await storage.scanIndex('c', 'a', ALL), [], 'scanIndex of a dropped index')
      checkEqual(await storage.scanIndexDocs('c', 'a', ALL), [], 'scanIndexDocs of a dropped index')
      checkEqual((await storage.listIndexes('c')).map(i => i.name), ['b'], 'listIndexes after a drop')
      await storage.dropIndex('c', 'never declared')
      checkEqual(await storage.scanIndex('c', 'never declared', ALL), [], 'scanIndex of an index never declared')
      checkEqual(await storage.scanIndex('other', 'b', ALL), [], 'scanIndex of an index declared on another collection')
      // documents change, go and come while the index is dropped
      await write(storage, 'meanwhile', [
        { op: 'put', coll: 'c', id: 'd01', set: { a: 'changed' } },
        { op: 'del', coll: 'c', id: 'd02' },
        { op: 'put', coll: 'c', id: 'n1', set: { a: 7 } }
      ])
      await storage.createIndex('c', ['a'])
      checkEqual(await storage.scanIndex('c', 'a', ALL), await expectedEntries(storage, 'c', ['a']), 'entries of an index declared again')
      checkEqual(await storage.scanIndex('c', 'b', ALL), await expectedEntries(storage, 'c', ['b']), 'entries of an index kept through the other\'s drop')
      // dropped and declared again at once (either may come last): exact entries or none
      await Promise.all([storage.dropIndex('c', 'b'), storage.createIndex('c', ['b'])])
      await write(storage, 'later', [{ op: 'put', coll: 'c', id: 'd03', set: { b: 'later' } }])
      const declared = (await storage.listIndexes('c')).some(i => i.name === 'b')
      checkEqual(await storage.scanIndex('c', 'b', ALL), declared ? await expectedEntries(storage, 'c', ['b']) : [], `entries of an index dropped and declared at once (${declared ? 'declared' : 'dropped'} last)`)
      checkEqual(await storage.scanIndex('c', 'a', ALL), await expectedEntries(storage, 'c', ['a']), 'entries of the other index after all that')
    })
  ]
}
