/**
 * The storage conformance suite can fail: each broken `MemoryStorage` here (one contract broken
 * on purpose) must fail the cases named, while the unbroken one passes them all
 * (test/store/conformance.test.ts).
 */
import { describe, expect, it } from 'vitest'
import {
  type ApplyBlockInput, type ApplyBlockResult, type IndexEntry, type InstallSnapshotInput, type InstallSnapshotParts, type InstallSnapshotResult, type KeyRange, type ScanOptions,
  MemoryStorageProvider
} from '../../src/store/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { storageConformance } from '../../src/store/conformance/index.js'

/** What a mutant may reach of MemoryStorage's private state. */
interface Inside { blocks: Map<string, Uint8Array>, blockCids: Set<string>, missing: Set<string>, meta: Map<string, unknown> }
const inside = (s: MemoryStorage): Inside => s as unknown as Inside

/** A provider of storages of class `Kind`, optionally with other provider members replaced. */
function providerOf (Kind: new () => MemoryStorage, override: Partial<MemoryStorageProvider> = {}): () => MemoryStorageProvider {
  return () => {
    const storages = new Map<string, MemoryStorage>()
    const provider = new MemoryStorageProvider()
    provider.open = async (dbId: string) => {
      let s = storages.get(dbId)
      if (s === undefined) storages.set(dbId, s = new Kind())
      return s
    }
    provider.destroy = async (dbId: string) => { storages.delete(dbId) }
    return Object.assign(provider, override)
  }
}

const mutants: Array<{ broken: string, make: () => MemoryStorageProvider, fails: string[] }> = [
  {
    broken: 'a parent that arrives after its child is not remembered as missing, so it becomes a head',
    make: providerOf(class extends MemoryStorage {
      override async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> {
        const result = await super.applyBlock(input)
        for (const p of input.parents) inside(this).missing.delete(p)
        return result
      }
    }),
    fails: ['heads and missing parents follow blocks arriving children first']
  },
  {
    broken: 'a block is stored even when its merge throws',
    make: providerOf(class extends MemoryStorage {
      override async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> {
        try {
          return await super.applyBlock(input)
        } catch (err) {
          inside(this).blocks.set(input.cid, input.bytes)
          inside(this).blockCids.add(input.cid)
          throw err
        }
      }
    }),
    fails: ['applyBlock is atomic: a merge that throws leaves nothing written (a remote block', 'applyBlock is atomic: a merge that throws leaves nothing written (a local block on the heads)']
  },
  {
    broken: 'a stored block is applied again',
    make: providerOf(class extends MemoryStorage {
      override async applyBlock (input: ApplyBlockInput): Promise<ApplyBlockResult> {
        inside(this).blocks.delete(input.cid)
        inside(this).blockCids.delete(input.cid)
        return await super.applyBlock(input)
      }
    }),
    fails: ['applyBlock is idempotent']
  },
  {
    broken: 'getBlocks leaves out the CIDs it does not have',
    make: providerOf(class extends MemoryStorage {
      override async getBlocks (cids: string[]): Promise<Array<Uint8Array | undefined>> {
        return (await super.getBlocks(cids)).filter(b => b !== undefined)
      }
    }),
    fails: ['applyBlock stores a block and reports what changed', 'installSnapshot takes a missing snapshot head']
  },
  {
    broken: 'installSnapshot covers only the heads',
    make: providerOf(class extends MemoryStorage {
      override async installSnapshot (input: InstallSnapshotInput): Promise<InstallSnapshotResult> {
        return await super.installSnapshot({ ...input, covered: input.covered.filter(c => input.heads.some(h => h.cid === c)) })
      }
    }),
    fails: ['installSnapshot joins states', 'installSnapshot takes a missing snapshot head', 'readSnapshotSource']
  },
  {
    broken: 'installSnapshot given in parts installs each part as it comes, in its own install',
    make: providerOf(class extends MemoryStorage {
      override async installSnapshot (input: InstallSnapshotInput | InstallSnapshotParts): Promise<InstallSnapshotResult> {
        if (!('next' in input)) return await super.installSnapshot(input)
        let result: InstallSnapshotResult = { changes: [], collections: [], heads: [] }
        for (let part = await input.next(); part !== undefined; part = await input.next()) {
          const one = await super.installSnapshot(part)
          result = { changes: [...result.changes, ...one.changes], collections: [...result.collections, ...one.collections], heads: one.heads }
        }
        return result
      }
    }),
    fails: ['installSnapshot given in parts is atomic, into an empty storage', 'installSnapshot given in parts is atomic, into a storage holding documents']
  },
  {
    broken: 'scanIndex ignores `after` when scanning in reverse',
    make: providerOf(class extends MemoryStorage {
      override async scanIndex (coll: string, name: string, range: KeyRange, options: ScanOptions = {}): Promise<IndexEntry[]> {
        return await super.scanIndex(coll, name, range, options.reverse === true ? { ...options, after: undefined } : options)
      }
    }),
    fails: ['scanIndex and scanIndexDocs']
  },
  {
    broken: 'read() lets writes in while its function runs',
    make: providerOf(class extends MemoryStorage {
      override async read<T> (fn: () => Promise<T>): Promise<T> { return await fn() }
    }),
    fails: ['read(fn) resolves']
  },
  {
    broken: 'setMeta keeps the caller\'s object rather than a copy',
    make: providerOf(class extends MemoryStorage {
      override async setMeta (key: string, value: unknown): Promise<void> { inside(this).meta.set(key, value) }
    }),
    fails: ['getMeta and setMeta']
  },
  {
    broken: 'hasCollection says yes for every collection it ever saw',
    make: providerOf(class extends MemoryStorage {
      override async hasCollection (coll: string): Promise<boolean> {
        return (await this.getCollections()).includes(coll) || (await this.readSnapshotSource()).colls.some(c => c.coll === coll)
      }
    }),
    fails: ['collections exist once created and not dropped since']
  },
  {
    broken: 'destroy leaves the data',
    make: providerOf(MemoryStorage, { destroy: async () => {} }),
    fails: ['destroy deletes every trace']
  },
  {
    broken: 'listNames is not sorted',
    make: () => {
      const provider = new MemoryStorageProvider()
      const list = provider.listNames.bind(provider)
      provider.listNames = async () => (await list()).reverse()
      return provider
    },
    fails: ['names: registerName']
  }
]

describe('the storage conformance suite fails broken storages', () => {
  for (const { broken, make, fails } of mutants) {
    it(broken, async () => {
      const failed: string[] = []
      for (const c of storageConformance(make, { buildDocs: 50 })) {
        try { await c.run() } catch { failed.push(c.name) }
      }
      for (const name of fails) expect(failed.filter(f => f.startsWith(name)), `cases failed: ${JSON.stringify(failed)}`).not.toEqual([])
    })
  }
})
