/** docs/apps.md's examples run against the library and print what their comments say. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import * as kitedb from '../../src/index.js'
import { useRelay } from '../helpers/relay.js'
import { eventually } from '../helpers/memory-transport.js'

const relay = useRelay()
const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'apps.md'), 'utf8')
const opened: kitedb.Database[] = []
afterAll(async () => { await Promise.all(opened.map(async db => { await db.close() })) })

/** Run the example marked `name` with the library's exports (and `relays`) in scope; returns what it logged. */
async function run (name: string): Promise<unknown[][]> {
  const at = doc.indexOf(`<!-- example:${name} -->`)
  const code = /```ts\n([\s\S]*?)```/.exec(doc.slice(at))?.[1]
  if (at < 0 || code === undefined) throw new Error(`docs/apps.md has no example ${name}`)
  const logs: unknown[][] = []
  const scope = { ...kitedb, KiteDB: new Proxy(kitedb.KiteDB, {
    get: (target, prop) => {
      const f = Reflect.get(target, prop) as unknown
      if (prop !== 'init' && prop !== 'open') return f
      return async (...args: unknown[]) => { const db = await (f as (...a: unknown[]) => Promise<kitedb.Database>).apply(target, args); opened.push(db); return db }
    }
  }), relays: [relay.addr], console: { log: (...args: unknown[]) => { logs.push(args) } } }
  const AsyncFunction = (async function () {}).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<unknown>
  await new AsyncFunction(...Object.keys(scope), code)(...Object.values(scope))
  return logs
}

describe('docs/apps.md', () => {
  it('presence: Bob hears Ada', async () => {
    const logs = await run('presence')
    await eventually(() => logs.some(l => JSON.stringify(l) === JSON.stringify(['here:', [{ name: 'Ada', editing: 'todo-1' }]])), 15_000, 'Bob to log Ada')
  })

  it('storage: persist and estimate answer where the API is missing', async () => {
    expect(await run('storage')).toEqual([['persisted:', false], ['estimate:', undefined]])
  })

  it('schemas: a document that does not fit is refused with the path', async () => {
    expect(await run('schemas')).toEqual([['SchemaError', ['/price must be >= 0']], ['invalid:', []]])
  })

  it('inspect: heads, network, relays', async () => {
    expect(await run('inspect')).toEqual([[1, 'online', ['reserved'], true]])
  })
})
