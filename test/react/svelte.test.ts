/**
 * A live query is a Svelte store: `observe(query, {initial})` keeps the store contract (subscribe
 * calls at once, synchronously, with the current value, and returns what unsubscribes), so
 * `svelte/store`'s `get` and `derived`, and `$store` in components, work on it.
 */
import { describe, expect, it } from 'vitest'
import { derived, get } from 'svelte/store'
import { KiteDB, MemoryStorageProvider } from '../../src/index.js'
import { eventually } from '../helpers/memory-transport.js'

describe('a live query as a Svelte store', () => {
  it('satisfies the store contract: a synchronous first value, updates, unsubscribe', async () => {
    const db = await KiteDB.init('svelte', { storage: new MemoryStorageProvider() })
    const todos = await db.initCollection<{ title: string }>('todos')
    const live = todos.observe({}, { sort: { title: 1 }, initial: [] })
    expect(get(live)).toEqual([]) // the initial value, synchronously
    const titles = derived(live, docs => docs.map(d => d.title))
    const seen: string[][] = []
    const unsubscribe = titles.subscribe(v => { seen.push(v) })
    expect(seen).toEqual([[]])
    await todos.insertOne({ title: 'b' })
    await todos.insertOne({ title: 'a' })
    await eventually(() => JSON.stringify(seen.at(-1)) === '["a","b"]', 5000, 'the store to update')
    expect(get(titles)).toEqual(['a', 'b']) // a new subscriber gets the latest at once
    unsubscribe()
    const count = seen.length
    await todos.insertOne({ title: 'c' })
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(seen.length).toBe(count)
    await db.close()
  })
})
