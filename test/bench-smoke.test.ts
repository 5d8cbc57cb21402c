/**
 * Smoke test of `npm run bench` (bench/run.ts) at a tiny scale: it must run every measure on every
 * system it names and write a JSON figure for each, either numbers or the `n/a:` marker for a
 * KiteDB method not built yet. No speed is asserted.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { MEASURES, NOT_AVAILABLE, UNITS, type Result } from '../bench/measures.js'

const root = fileURLToPath(new URL('..', import.meta.url))

describe('npm run bench', () => {
  it('writes a figure for every measure and system at --scale 0.002 --runs 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kitedb-bench-smoke-'))
    try {
      const file = join(dir, 'bench.json')
      await promisify(execFile)('npx', ['tsx', 'bench/run.ts', '--scale', '0.002', '--runs', '1', '--json', file], { cwd: root, timeout: 120_000, maxBuffer: 16 * 2 ** 20 })
      const results = JSON.parse(await readFile(file, 'utf8')) as Result[]
      const expected = MEASURES.flatMap(m => m.systems.map(system => `${m.name}/${system}`))
      expect(results.map(r => `${r.name}/${r.system}`).sort()).toEqual(expected.sort())
      for (const r of results) {
        expect(r.n, `${r.name}/${r.system} n`).toBeGreaterThanOrEqual(1)
        expect(UNITS).toContain(r.unit)
        if (r.median === null) {
          expect(r.p99, `${r.name}/${r.system} p99`).toBeNull()
          expect(r.note, `${r.name}/${r.system}: ${r.note}`).toMatch(new RegExp(`^${NOT_AVAILABLE}`))
        } else {
          expect(Number.isFinite(r.median) && r.median >= 0, `${r.name}/${r.system} median ${r.median}`).toBe(true)
          expect(r.p99, `${r.name}/${r.system} p99`).toBeGreaterThanOrEqual(r.median)
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
