/**
 * The database API in real Chromium IndexedDB (not fake-indexeddb): indexes, the planner, drops,
 * live queries and persistence across a reload.
 */
import { test, expect } from './fixtures.js'

test('indexes and the query planner agree with a scan in real IndexedDB, and survive a reload', async ({ page }) => {
  await page.goto('/')
  await expect(page.getByTestId('new-todo')).toBeEnabled()
  const result = await page.evaluate(async () => {
    const { KiteDB } = window.kitedb
    const db = await KiteDB.create(`api-${Date.now()}`, { storage: 'indexeddb' })
    const c = await db.initCollection('people', { indexes: ['age', 'tags', ['city', 'age']] })
    const cities = ['Oslo', 'Rome', 'Lima']
    await c.insert(Array.from({ length: 300 }, (_, i) => ({
      _id: `p${String(i).padStart(3, '0')}`,
      age: i % 7 === 0 ? null : i % 60,
      city: cities[i % 3],
      tags: i % 5 === 0 ? [] : [`t${i % 4}`, `t${i % 9}`],
      ...(i % 11 === 0 ? { extra: true } : {})
    })))
    const queries: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ age: 42 }, {}],
      [{ age: { $gte: 10, $lt: 20 } }, { sort: { age: -1 } }],
      [{ age: null }, {}],
      [{ tags: 't3' }, {}],
      [{ tags: { $in: ['t1', 't8'] } }, { sort: { age: 1 }, limit: 7 }],
      [{ city: 'Rome', age: { $gt: 50 } }, {}],
      [{}, { sort: { age: -1 }, skip: 2, limit: 5 }],
      [{ age: { $gt: 'a' } }, {}]
    ]
    const mismatches: unknown[] = []
    const plans: string[] = []
    for (const [q, o] of queries) {
      const viaPlanner = await c.find(q, undefined, o)
      plans.push((await c.explain(q, o)).strategy)
      // Reference: the same query over an unindexed copy of the data (a scan + mingo).
      const all = await c.find()
      const copy = await db.initCollection(`copy${plans.length}`)
      await copy.insert(all)
      const reference = await copy.find(q, undefined, o)
      if (JSON.stringify(viaPlanner) !== JSON.stringify(reference)) mismatches.push({ q, o, viaPlanner: viaPlanner.length, reference: reference.length })
    }
    await db.dropCollection('copy1')
    return { mismatches, plans, address: db.address, name: db.name, collections: await db.listCollections() }
  })
  expect(result.mismatches).toEqual([])
  expect(result.plans).toEqual(['index', 'index', 'index', 'index', 'index', 'index', 'index', 'index'])
  expect(result.collections).not.toContain('copy1')

  await page.reload()
  await expect(page.getByTestId('new-todo')).toBeEnabled()
  const after = await page.evaluate(async (name) => {
    const db = await window.kitedb.KiteDB.init(name, { storage: 'indexeddb' })
    const people = await db.openCollection('people')
    return {
      count: await people.countDocuments(),
      indexes: (await people.listIndexes()).map(i => i.name).sort(),
      plan: (await people.explain({ age: 42 })).strategy,
      collections: await db.listCollections()
    }
  }, result.name)
  expect(after).toEqual({ count: 300, indexes: ['age', 'city+age', 'tags'], plan: 'index', collections: expect.arrayContaining(['people']) })
  expect(after.collections).not.toContain('copy1')
})
