/**
 * Conformance cases of the provider and of what outlives one storage: `kind`, `channel`, `open`
 * (databases apart, data kept across `close`), `destroy`, the name registry, secrets, and
 * `getMeta`/`setMeta`.
 */
import { type ConformanceCase, check, checkEqual } from '../../check.js'
import { ALL, type SuiteContext, StorageEnv, apply, everything, freshDbId, installInput, testBlock, testNode } from './fixtures.js'

/** A prefix no other run uses, for names and secrets in a registry other runs may share. */
const unique = (): string => `conformance-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-`

export function providerCases (ctx: SuiteContext): ConformanceCase[] {
  const c = (name: string, fn: (env: StorageEnv) => Promise<void>): ConformanceCase => ({ name, run: async () => { await StorageEnv.run(ctx, fn) } })
  return [
    c('kind names the implementation, the same for the provider and its storages; channel, when set, is a name', async ({ provider, storage }) => {
      check(typeof provider.kind === 'string' && provider.kind.length > 0, `provider.kind is a non-empty string, got ${JSON.stringify(provider.kind)}`)
      checkEqual(storage.kind, provider.kind, 'storage.kind equals the kind of its provider')
      check(provider.channel === undefined || (typeof provider.channel === 'string' && provider.channel.length > 0), `provider.channel is absent or a non-empty string, got ${JSON.stringify(provider.channel)}`)
    }),

    c('getMeta and setMeta keep JSON values and byte arrays, as copies; an unset key is undefined', async ({ storage }) => {
      checkEqual(await storage.getMeta('never set'), undefined, 'getMeta of a key never set')
      const values: Record<string, unknown> = {
        json: { n: 1, s: 'x', nested: { a: [1, 'b', null, true, { c: -0.5 }] } },
        bytes: new Uint8Array([0, 1, 2, 255]),
        mixed: { heads: ['a', 'b'], bytes: new Uint8Array([7]), n: 0 },
        zero: 0,
        empty: '',
        no: false,
        nothing: null,
        list: [1, [2, [3]], []]
      }
      for (const [key, value] of Object.entries(values)) await storage.setMeta(key, value)
      for (const [key, value] of Object.entries(values)) checkEqual(await storage.getMeta(key), value, `getMeta of ${key}`)
      check((await storage.getMeta('bytes')) instanceof Uint8Array, 'getMeta of a Uint8Array is a Uint8Array')
      await storage.setMeta('json', 'replaced')
      checkEqual(await storage.getMeta('json'), 'replaced', 'getMeta after a second setMeta of the key')
      const written = { list: [1] }
      await storage.setMeta('copy', written)
      written.list.push(2)
      const read = await storage.getMeta<{ list: number[] }>('copy')
      read?.list.push(3)
      checkEqual(await storage.getMeta('copy'), { list: [1] }, 'a meta value after changing the object written and the object read')
    }),

    c('close, then open of the same database: blocks, heads, missing, covered CIDs, documents, states, indexes and meta are all there', async env => {
      const b1 = testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { a: 1 } }])
      const b2 = testBlock('b2', [b1, testNode('missing')], [{ op: 'put', coll: 'c', id: 'y', set: { a: [2, 3] } }, { op: 'del', coll: 'c', id: 'x' }])
      await apply(env.storage, b1)
      await env.storage.createIndex('c', ['a'])
      await apply(env.storage, b2, { nodes: [testNode('chunk')] })
      await env.storage.installSnapshot(installInput({ docs: [], covered: [testNode('covered').cid] }))
      await env.storage.setMeta('m', { bytes: new Uint8Array([1, 2]) })
      const before = await everything(env.storage, ['c'])
      const storage = await env.reopen()
      checkEqual(await everything(storage, ['c']), before, 'everything after close and open')
      checkEqual(await storage.getMeta('m'), { bytes: new Uint8Array([1, 2]) }, 'a meta value after close and open')
      checkEqual(await storage.getBlocks([b1.cid, b2.cid, testNode('chunk').cid]), [b1.bytes, b2.bytes, testNode('chunk').bytes], 'block and chunk bytes after close and open')
      checkEqual((await apply(storage, b2)).applied, false, 'applyBlock of a stored block after close and open')
      await apply(storage, testBlock('b3', [b2], [{ op: 'put', coll: 'c', id: 'z', set: { a: 4 } }]), { local: true })
      checkEqual(await storage.scanIndex('c', 'a', ALL), [
        { key: [[20, 2]], id: 'y' }, { key: [[20, 3]], id: 'y' }, { key: [[20, 4]], id: 'z' }
      ], 'an index built before the reopen is kept by writes after it')
    }),

    c('open keeps databases apart', async env => {
      const other = await env.open(freshDbId())
      await apply(env.storage, testBlock('b1', [], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }]))
      await env.storage.createIndex('c', ['v'])
      await env.storage.setMeta('m', 1)
      checkEqual(await everything(other, ['c']), await everything(await env.open(freshDbId()), ['c']), 'another database shows nothing written to the first')
      checkEqual(await other.getMeta('m'), undefined, 'another database has none of the first one\'s meta')
    }),

    c('destroy deletes every trace of a database and leaves others alone', async env => {
      const keptId = freshDbId()
      const kept = await env.open(keptId)
      await apply(kept, testBlock('kept', [], [{ op: 'put', coll: 'c', id: 'k', set: { v: 1 } }]))
      const b1 = testBlock('b1', [testNode('missing')], [{ op: 'coll', coll: 'c' }, { op: 'put', coll: 'c', id: 'x', set: { v: 1 } }])
      await apply(env.storage, b1, { nodes: [testNode('chunk')] })
      await env.storage.createIndex('c', ['v'])
      await env.storage.installSnapshot(installInput({ docs: [], covered: [testNode('covered').cid] }))
      await env.storage.setMeta('m', 1)
      const empty = await everything(await env.open(freshDbId()), ['c'])
      await env.storage.close()
      await env.provider.destroy(env.dbId)
      const again = await env.open(env.dbId)
      checkEqual(await everything(again, ['c']), empty, 'a destroyed database opened again is empty')
      checkEqual(await again.getMeta('m'), undefined, 'a destroyed database has no meta')
      for (const cid of [b1.cid, testNode('chunk').cid, testNode('covered').cid]) check(!await again.hasBlock(cid), 'a destroyed database has no blocks, chunks or covered CIDs')
      checkEqual(await kept.getDocs('c'), [{ _id: 'k', v: 1 }], 'another database after a destroy')
    }),

    c('names: registerName, lookupName, listNames sorted by name, a second registration replaces the first, unregisterName', async ({ provider }) => {
      const p = unique()
      const mine = async (): Promise<Array<{ name: string, address: string }>> => (await provider.listNames()).filter(n => n.name.startsWith(p))
      checkEqual(await provider.lookupName(`${p}a`), undefined, 'lookupName of a name never registered')
      checkEqual(await mine(), [], 'listNames before any registration')
      await provider.registerName(`${p}b`, '/kite/address-1')
      await provider.registerName(`${p}a`, '/kite/address-2')
      checkEqual(await provider.lookupName(`${p}a`), '/kite/address-2', 'lookupName of a registered name')
      checkEqual(await mine(), [{ name: `${p}a`, address: '/kite/address-2' }, { name: `${p}b`, address: '/kite/address-1' }], 'listNames: every name with its address, sorted by name')
      await provider.registerName(`${p}a`, '/kite/address-3')
      checkEqual(await provider.lookupName(`${p}a`), '/kite/address-3', 'lookupName after a second registration of the name')
      checkEqual((await mine()).length, 2, 'listNames after a second registration of a name lists it once')
      await provider.unregisterName(`${p}a`)
      await provider.unregisterName(`${p}never`)
      checkEqual(await provider.lookupName(`${p}a`), undefined, 'lookupName of an unregistered name')
      checkEqual(await mine(), [{ name: `${p}b`, address: '/kite/address-1' }], 'listNames after unregisterName')
      await provider.unregisterName(`${p}b`)
    }),

    c('secrets: saveSecret keeps a copy of the bytes under a name, loadSecret returns them; an unknown name is undefined', async ({ provider }) => {
      const p = unique()
      checkEqual(await provider.loadSecret(`${p}key`), undefined, 'loadSecret of a name never saved')
      const bytes = new Uint8Array([1, 2, 3, 4])
      await provider.saveSecret(`${p}key`, bytes)
      await provider.saveSecret(`${p}other`, new Uint8Array([9]))
      bytes[0] = 99
      const loaded = await provider.loadSecret(`${p}key`)
      check(loaded instanceof Uint8Array, 'loadSecret returns a Uint8Array')
      checkEqual(loaded, new Uint8Array([1, 2, 3, 4]), 'loadSecret after the saved array was changed')
      await provider.saveSecret(`${p}key`, new Uint8Array([5, 6]))
      checkEqual(await provider.loadSecret(`${p}key`), new Uint8Array([5, 6]), 'loadSecret after a second saveSecret')
      checkEqual(await provider.loadSecret(`${p}other`), new Uint8Array([9]), 'loadSecret of another name')
    })
  ]
}
