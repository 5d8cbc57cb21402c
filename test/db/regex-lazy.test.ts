/**
 * The regular-expression engine (RE2) loads the first time a query or update holds a pattern, so
 * apps that never use one never load it: a live query, a find and a `$pull` with a pattern work
 * from a cold start.
 */
import { describe, expect, it } from 'vitest'
import { KiteDB, MemoryStorageProvider } from '../../src/index.js'
import { regexEngineLoaded } from '../../src/db/query.js'
import { eventually } from '../helpers/memory-transport.js'

describe('the regular-expression engine, on demand', () => {
  it('is not loaded until a pattern is used; then live queries, finds and updates with patterns work', async () => {
    const db = await KiteDB.init('regex', { storage: new MemoryStorageProvider() })
    const todos = await db.initCollection<{ title: string, tags: string[] }>('todos')
    await todos.insert([{ _id: 'a', title: 'apple pie', tags: ['sweet', 'baked'] }, { _id: 'b', title: 'bread', tags: ['baked'] }])
    expect(await todos.find({ title: 'bread' })).toHaveLength(1)
    expect(regexEngineLoaded()).toBe(false)
    const seen: string[][] = []
    todos.observe({ title: { $regex: '^app' } }, docs => { seen.push(docs.map(d => d._id)) })
    await eventually(() => seen.length > 0, 5000, 'the live query\'s first result')
    expect(seen.at(-1)).toEqual(['a'])
    expect(regexEngineLoaded()).toBe(true)
    expect((await todos.find({ title: /BREAD/i })).map(d => d._id)).toEqual(['b'])
    await todos.updateMany({}, { $pull: { tags: /^bak/ } })
    expect((await todos.find({}, { tags: 1 })).map(d => d.tags)).toEqual([['sweet'], []])
    await db.close()
  })
})
