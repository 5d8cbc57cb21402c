/**
 * What `npm run bench` measures: each measure's name (for `--only`), its document count at scale
 * 1, its unit and the systems it runs on. Shared by the driver (bench/run.ts) and its smoke test.
 */

/** A system as it appears in results. */
export type System = 'dexie' | 'rxdb' | 'kitedb' | 'kitedb-replicated' | 'keeper'

/** Units of figures: milliseconds, MiB, a ratio (`x`, printed as `1.23×`), blocks per second, or percent (of one CPU core). */
export const UNITS = ['ms', 'MB', 'x', 'blocks/s', '%'] as const
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
  /** measured runs by default (else 3 when slow, 5 otherwise); `--runs` overrides it */
  runs?: number
  /** false: no warm-up run before the measured ones (too slow to repeat) */
  warmUp?: boolean
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
  { name: 'catch-up-100k', label: 'fresh page catches up 100,000 docs (observe sees all docs; target ≤ 12 s)', n: 100_000, unit: 'ms', systems: ['kitedb-replicated'], kind: 'runs', slow: true, runs: 1, warmUp: false },
  { name: 'catch-up-100k-bytes', label: 'bytes the fresh page received catching up 100,000 docs ÷ their dag-cbor size', n: 100_000, unit: 'x', systems: ['kitedb-replicated'], kind: 'runs', slow: true, from: 'catch-up-100k' },
  { name: 'heap-100k-catch-up', label: 'JS heap of that page once caught up (after GC)', n: 100_000, unit: 'MB', systems: ['kitedb-replicated'], kind: 'reading', slow: true, from: 'catch-up-100k' },
  { name: 'heap-100k-catch-up-peak', label: 'JS heap of that page, peak during the catch-up (sampled every 100 ms)', n: 100_000, unit: 'MB', systems: ['kitedb-replicated'], kind: 'reading', slow: true, from: 'catch-up-100k' },
  { name: 'room-10', label: 'room of 10 pages: an update seen by each of the 9 others via observe (target p50 ≤ 50 ms)', n: 100, unit: 'ms', systems: ['kitedb-replicated'], kind: 'calls', slow: true },
  { name: 'room-10-relay-cpu', label: 'room of 10: relay process CPU per update (user + system)', n: 100, unit: 'ms', systems: ['kitedb-replicated'], kind: 'runs', slow: true, from: 'room-10' },
  { name: 'room-10-heap', label: 'room of 10: each page\'s JS heap after GC', n: 100, unit: 'MB', systems: ['kitedb-replicated'], kind: 'reading', slow: true, from: 'room-10' },
  { name: 'room-10-idle-cpu', label: 'room of 10: each page\'s renderer process CPU while idle (% of one core)', n: 100, unit: '%', systems: ['kitedb-replicated'], kind: 'reading', slow: true, from: 'room-10' },
  { name: 'room-10-burst-cpu', label: 'room of 10: each page\'s renderer process CPU per update during the burst', n: 100, unit: 'ms', systems: ['kitedb-replicated'], kind: 'reading', slow: true, from: 'room-10' },
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

