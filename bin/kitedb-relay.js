#!/usr/bin/env node
// The relay command. Runs the compiled relay when present (an installed package), otherwise the
// TypeScript source through tsx (a development checkout).
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const compiled = join(root, 'dist', 'relay', 'cli.js')
let mod
if (existsSync(compiled)) {
  mod = await import(pathToFileURL(compiled).href)
} else {
  const { tsImport } = await import('tsx/esm/api')
  mod = await tsImport(pathToFileURL(join(root, 'src', 'relay', 'cli.ts')).href, import.meta.url)
}
process.exitCode = await mod.main(process.argv.slice(2), process.env)
