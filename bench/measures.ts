/**
 * What `npm run bench` measures: each measure's name (for `--only`), its document count at scale
 * 1, its unit and the systems it runs on. Shared by the driver (bench/run.ts) and its smoke test.
 */

/** A system as it appears in results. */
export type System = 'dexie' | 'rxdb' | 'kitedb' | 'kitedb-replicated' | 'keeper'

/** Units of figures: milliseconds, MiB, a ratio (`x`, printed as `1.23×`), or blocks per second. */
export const UNITS = ['ms', 'MB', 'x', 'blocks/s'] as const
export type Unit = typeof UNITS[number]

/** One measure. */
export interface Measure {
  /** identifier, used by `--only` and in the JSON */
  name: string
  /** what is measured, for the table */
  label: string
  /** documents (or calls, or updates) at scale 1 */
  n: number
  unit: Unit
  systems: System[]
  /** how the figures are gathered: timed runs, single calls, or one reading */
  kind: 'runs' | 'calls' | 'reading'
  /** slow enough to default to fewer runs (3 instead of 5) */
  slow?: boolean
  /** taken in the runs of that measure, never run on its own (`--only` either runs both) */
  from?: string
}

const LOCAL: System[] = ['dexie', 'rxdb', 'kitedb']

/** Every measure, in the order run and printed. */
export const MEASURES: Measure[] = [
  { name: 'insert-bulk', label: 'insert all docs in one call, persisted', n: 10_000, unit: 'ms', systems: LOCAL, kind: 'runs' },
  { name: 'insert-one', label: 'insertOne, sequential, per call', n: 500, unit: 'ms', systems: LOCAL, kind: 'calls' },
  { name: 'find-eq-indexed', label: 'find email = X (indexed)', n: 100_000, unit: 'ms', systems: LOCAL, kind: 'runs' },
  { name: 'find-range-sort', label: 'find 30 ≤ age ≤ 40, sort age, limit 50 (indexed)', n: 100_000, unit: 'ms', systems: LOCAL, kind: 'runs' },
  { name: 'find-unindexed', label: 'find nested.city = X (unindexed scan)', n: 100_000, unit: 'ms', systems: LOCAL, kind: 'runs' },
  { name: 'update-many', label: 'updateMany of all docs (Dexie: bulkPut of the changed docs)', n: 1_000, unit: 'ms', systems: LOCAL, kind: 'runs' },
  { name: 'cold-open', label: 'reloaded page: open to first find result', n: 100_000, unit: 'ms', systems: LOCAL, kind: 'runs', slow: true },
  { name: 'observe-latency', label: 'update seen by the other page via observe', n: 200, unit: 'ms', systems: ['kitedb-replicated'], kind: 'calls' },
  { name: 'catch-up', label: 'fresh page catches up the history (observe sees all docs, all stored)', n: 10_000, unit: 'ms', systems: ['kitedb-replicated'], kind: 'runs', slow: true },
  { name: 'catch-up-bytes', label: 'bytes the fresh page received catching up ÷ the docs\' dag-cbor size', n: 10_000, unit: 'x', systems: ['kitedb-replicated'], kind: 'runs', slow: true, from: 'catch-up' },
  { name: 'catch-up-first', label: 'fresh page: its observe({}) first shows a screenful (20 docs) of that history', n: 10_000, unit: 'ms', systems: ['kitedb-replicated'], kind: 'runs', slow: true, from: 'catch-up' },
  { name: 'relay-restart', label: 'relay killed and restarted: a fresh page sees the list (from the relay\'s return)', n: 100, unit: 'ms', systems: ['kitedb-replicated'], kind: 'runs', slow: true },
  { name: 'network-heal', label: 'a page\'s link cut and back: both pages\' lists equal (from the link\'s return)', n: 100, unit: 'ms', systems: ['kitedb-replicated'], kind: 'runs', slow: true },
  { name: 'keeper-catch-up', label: 'fresh page catches up from a keeper, every writer offline (observe sees all docs)', n: 10_000, unit: 'ms', systems: ['kitedb-replicated'], kind: 'runs', slow: true },
  { name: 'keeper-ingest', label: 'keeper ingest over the keep protocol, 1,000 databases (full size with --keeper-full; else a tenth)', n: 1_000_000, unit: 'blocks/s', systems: ['keeper'], kind: 'reading', slow: true },
  { name: 'keeper-rss', label: 'keeper process RSS after that ingest (blocks served from disk, not loaded)', n: 1_000_000, unit: 'MB', systems: ['keeper'], kind: 'reading', slow: true, from: 'keeper-ingest' },
  { name: 'tab-to-tab', label: 'update in one tab seen by another tab\'s observe', n: 200, unit: 'ms', systems: ['kitedb'], kind: 'calls' },
  { name: 'heap-after-load', label: 'JS heap after loading the docs (after GC)', n: 100_000, unit: 'MB', systems: LOCAL, kind: 'reading' }
]

/** One result. `median` and `p99` are null when the run failed; `note` then starts with `error:`. */
export interface Result {
  name: string
  system: System
  n: number
  unit: Unit
  median: number | null
  p99: number | null
  note?: string
}

