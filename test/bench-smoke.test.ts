/**
 * Smoke test of `npm run bench` (bench/run.ts) at a tiny scale: it must run every measure on every
 * system it names and write a JSON figure for each: a median and a p99, numbers. No speed is
 * asserted. It takes about 2–3 minutes on the shared 2-core machines (118 s before room-10 and
 * catch-up-100k, about 25 s more with them at this scale), hence the 240 s limit.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { MEASURES, UNITS, type Result } from '../bench/measures.js'

const root = fileURLToPath(new URL('..', import.meta.url))

describe('npm run bench', () => {
  it('writes a figure for every measure and system at --scale 0.002 --runs 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kitedb-bench-smoke-'))
    try {
      const file = join(dir, 'bench.json')
      await promisify(execFile)('npx', ['tsx', 'bench/run.ts', '--scale', '0.002', '--runs', '1', '--json', file], { cwd: root, timeout: 240_000, maxBuffer: 16 * 2 ** 20 })
      const results = JSON.parse(await readFile(file, 'utf8')) as Result[]
      const expected = MEASURES.flatMap(m => m.systems.map(system => `${m.name}/${system}`))
      expect(results.map(r => `${r.name}/${r.system}`).sort()).toEqual(expected.sort())
      for (const r of results) {
        // Only a measure this machine cannot take may be skipped: the network cut needs root.
        if (r.note?.startsWith('skipped:') === true && r.name === 'network-heal' && process.getuid?.() !== 0) continue
        expect(r.n, `${r.name}/${r.system} n`).toBeGreaterThanOrEqual(1)
        expect(UNITS).toContain(r.unit)
        expect(Number.isFinite(r.median) && (r.median as number) >= 0, `${r.name}/${r.system} median ${r.median}: ${r.note ?? ''}`).toBe(true)
        expect(r.p99, `${r.name}/${r.system} p99`).toBeGreaterThanOrEqual(r.median as number)
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 240_000)
})
