#!/usr/bin/env node
// `npm run size`: builds a local-only app (scripts/size-app: KiteDB.init without relays, a
// collection, an insert, a live query) with Vite and prints the gzip size of the JavaScript it
// loads at start — its entry chunk and the chunks that chunk imports statically; chunks loaded by
// dynamic import (the network, the replicator, schemas) only when used are listed apart. Exits 1 over the budget.
//
//   npm run size [-- --budget KB]     (default budget 130 KB gzip)
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const budgetArg = process.argv.indexOf('--budget')
const budgetKB = budgetArg >= 0 ? Number(process.argv[budgetArg + 1]) : 130

const { build } = await import('vite')
const outDir = await mkdtemp(join(tmpdir(), 'kitedb-size-'))
try {
  const result = await build({
    root: join(root, 'scripts', 'size-app'),
    logLevel: 'silent',
    configFile: false,
    build: { outDir, emptyOutDir: true, target: 'es2022', manifest: true, modulePreload: false, chunkSizeWarningLimit: 1e6 }
  })
  const manifest = JSON.parse(readFileSync(join(outDir, '.vite', 'manifest.json'), 'utf8'))
  const entry = Object.values(manifest).find(c => c.isEntry)
  const atStart = new Set()
  const walk = (key) => {
    const chunk = manifest[key] ?? Object.values(manifest).find(c => c.file === key)
    if (chunk === undefined || atStart.has(chunk.file)) return
    atStart.add(chunk.file)
    for (const i of chunk.imports ?? []) walk(i)
  }
  walk(Object.keys(manifest).find(k => manifest[k] === entry))
  const gz = (file) => gzipSync(readFileSync(join(outDir, file)), { level: 9 }).byteLength
  const all = [...new Set(Object.values(manifest).map(c => c.file).filter(f => f.endsWith('.js')))]
  let start = 0
  let later = 0
  const lines = []
  for (const file of all.sort()) {
    const size = gz(file)
    const when = atStart.has(file) ? 'at start' : 'on demand'
    if (atStart.has(file)) start += size
    else later += size
    lines.push(`  ${(size / 1024).toFixed(1).padStart(7)} KB  ${when.padEnd(9)}  ${file}`)
  }
  void result
  console.log(lines.join('\n'))
  console.log(`local-only app: ${(start / 1024).toFixed(1)} KB gzip of JavaScript at start (budget ${budgetKB} KB); ${(later / 1024).toFixed(1)} KB more on demand`)
  process.exitCode = start / 1024 <= budgetKB ? 0 : 1
} finally {
  await rm(outDir, { recursive: true, force: true })
}
