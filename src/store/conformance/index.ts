/**
 * The conformance suite of `Storage` and `StorageProvider`: every case an implementation must
 * pass, exercising each member directly. It ships with the library so that an implementation
 * outside it can be checked the same way as `MemoryStorage` and `DexieStorage` are.
 */
import { type ConformanceCase } from '../../check.js'
import { type StorageProvider } from '../storage.js'
import { blockCases } from './blocks.js'
import { documentCases } from './documents.js'
import { type StorageConformanceOptions } from './fixtures.js'
import { indexCases } from './indexes.js'
import { providerCases } from './provider.js'
import { snapshotCases } from './snapshots.js'

export { type StorageConformanceOptions } from './fixtures.js'
export { type ConformanceCase } from '../../check.js'

/**
 * The cases a `Storage` implementation and its `StorageProvider` must pass. Each case calls
 * `makeProvider` for a provider of its own, opens databases with fresh ids, and closes and
 * destroys them when done (so a provider over persistent storage may be used). Run each case's
 * `run()` with any test runner: it resolves when the implementation behaves as `Storage`
 * documents, and rejects with an `Error` saying what differed otherwise. With vitest:
 *
 * ```ts
 * for (const c of storageConformance(() => new MyProvider())) it(c.name, c.run)
 * ```
 *
 * Cases take from milliseconds to a few seconds (index builds write `options.buildDocs`
 * documents). Framework-free: runs in Node and in browsers.
 */
export function storageConformance (makeProvider: () => StorageProvider | Promise<StorageProvider>, options: StorageConformanceOptions = {}): ConformanceCase[] {
  const ctx = { makeProvider, options: { buildDocs: options.buildDocs ?? 1100 } }
  return [...blockCases(ctx), ...snapshotCases(ctx), ...documentCases(ctx), ...indexCases(ctx), ...providerCases(ctx)]
}
