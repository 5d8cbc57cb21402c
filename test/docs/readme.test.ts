/** The README's quick-start example runs, and does what its comments say. */
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as kitedb from '../../src/index.js'

function quickstart (): string {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8')
  const at = readme.indexOf('<!-- example:quickstart')
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))
  if (at < 0 || block === null) throw new Error('README has no quickstart example')
  return block[1]
}

describe('README', () => {
  it('quick-start example runs against the library', async () => {
    const code = quickstart()
    expect(code).toContain("import { KiteDB } from 'kitedb'")
    const body = code.replace("import { KiteDB } from 'kitedb'", '') + '\nreturn { open, one }'
    const logs: unknown[][] = []
    const fakeConsole = { log: (...args: unknown[]) => { logs.push(args) } }
    const AsyncFunction = (async function () {}).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<unknown>
    const result = await new AsyncFunction('KiteDB', 'console', body)(kitedb.KiteDB, fakeConsole) as { open: unknown, one: { _id: string } }
    expect(result.open).toEqual([{ title: 'buy milk' }, { title: 'write tests' }])
    expect(result.one._id).toBe('ship')
    expect(logs.some(l => l[0] === 'done:' && l[1] === 1)).toBe(true)
    expect(logs.some(l => typeof l[0] === 'string' && /^\/kite\/bafyrei/.test(l[0]))).toBe(true)
    expect(logs.some(l => typeof l[0] === 'string' && l[0].startsWith('https://app.example/#db=/kite/'))).toBe(true)
  })
})
