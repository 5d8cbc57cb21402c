#!/usr/bin/env node
// `npm test`: typecheck, lint (npm run lint), the size of a local-only app (npm run size), unit/property/integration tests (vitest, Node), then browser tests
// (Playwright, Debian's Chromium, real relay + demo). Ends with one line `tests: N passed, M failed`.
// Arguments after `--` go to both runners' filters, e.g. `npm test -- todo`.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, '.test-output') // not test-results/: Playwright empties that one
mkdirSync(out, { recursive: true })
const env = { ...process.env, FORCE_COLOR: process.env.CI ? '0' : process.env.FORCE_COLOR }
const bin = (name) => join(root, 'node_modules', '.bin', name)
const run = (cmd, args, extraEnv = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...env, ...extraEnv } }).status ?? 1

let passed = 0
let failed = 0
let broken = false

const chromium = spawnSync('bash', [join(root, 'scripts', 'ensure-chromium.sh')], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
if (chromium.status !== 0) { console.error('no Chromium for the browser tests'); process.exit(1) }
const chromiumPath = chromium.stdout.trim()

console.log('\n== typecheck ==')
if (run(bin('tsc'), ['-p', 'tsconfig.json']) !== 0) { failed++; broken = true }

console.log('\n== lint (npm run lint) ==')
if (run(bin('eslint'), ['.']) !== 0) { failed++; broken = true }

console.log('\n== size of a local-only app (npm run size) ==')
if (run(process.execPath, [join(root, 'scripts', 'size.js')]) !== 0) { failed++; broken = true }

console.log('\n== unit, property and integration tests (vitest) ==')
const vitestJson = join(out, 'vitest.json')
rmSync(vitestJson, { force: true })
const vitestStatus = run(bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${vitestJson}`, ...process.argv.slice(2)])
try {
  const r = JSON.parse(readFileSync(vitestJson, 'utf8'))
  passed += r.numPassedTests
  failed += r.numFailedTests
  if (vitestStatus !== 0 && r.numFailedTests === 0) { failed++; broken = true }
} catch { failed++; broken = true }

console.log('\n== browser tests (Playwright, Chromium at ' + chromiumPath + ') ==')
const pwJson = join(out, 'playwright.json')
rmSync(pwJson, { force: true })
const pwStatus = run(bin('playwright'), ['test', '--reporter=list,json', ...process.argv.slice(2)], { PLAYWRIGHT_JSON_OUTPUT_NAME: pwJson, CHROMIUM_PATH: chromiumPath })
try {
  const s = JSON.parse(readFileSync(pwJson, 'utf8')).stats
  passed += s.expected + s.flaky
  failed += s.unexpected
  if (pwStatus !== 0 && s.unexpected === 0) { failed++; broken = true }
} catch { failed++; broken = true }

if (broken) console.log('(a runner failed outside its tests: counted as one failure)')
console.log(`tests: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
