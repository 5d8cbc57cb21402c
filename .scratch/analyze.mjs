import { build } from 'vite'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
const outDir = '/tmp/size-analyze'
await build({ root: 'scripts/size-app', logLevel: 'silent', configFile: false, build: { outDir, emptyOutDir: true, sourcemap: true, minify: true, target: 'es2022' } })
const dir = join(outDir, 'assets')
for (const f of readdirSync(dir).filter(f => f.endsWith('.js'))) {
  const code = readFileSync(join(dir, f), 'utf8')
  const map = JSON.parse(readFileSync(join(dir, f + '.map'), 'utf8'))
  // attribute bytes per source by decoding mappings roughly: count segments per source
  const { SourceMapConsumer } = await import('source-map-js')
  const c = new SourceMapConsumer(map)
  const lines = code.split('\n')
  const bySrc = new Map()
  let prev = null
  c.eachMapping(m => {
    if (prev) {
      const len = prev.generatedLine === m.generatedLine ? m.generatedColumn - prev.generatedColumn : 0
      const src = prev.source ?? '?'
      const key = src.replace(/.*node_modules\//, '').split('/').slice(0, src.includes('node_modules') ? (src.includes('/@') || src.replace(/.*node_modules\//,'').startsWith('@') ? 2 : 1) : 3).join('/')
      bySrc.set(key, (bySrc.get(key) ?? 0) + len)
    }
    prev = m
  })
  const total = code.length
  console.log(`== ${f} ${(total/1024).toFixed(0)} KB raw, ${(gzipSync(code).length/1024).toFixed(1)} KB gz`)
  for (const [k, v] of [...bySrc].sort((a,b)=>b[1]-a[1]).slice(0, 14)) console.log(`  ${(v/1024).toFixed(1).padStart(7)} KB  ${k}`)
}
