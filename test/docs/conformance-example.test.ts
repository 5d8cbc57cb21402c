/**
 * docs/seams.md's conformance example runs: its storage suite against `MemoryStorageProvider` and
 * its transport suite against the in-memory transport, standing in for the reader's own.
 */
import { describe, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { MemoryStorageProvider, storageConformance } from '../../src/storage.js'
import { transportConformance } from '../../src/transport.js'
import { MemoryHub } from '../helpers/memory-transport.js'

const IMPORTS = [
  "import { describe, it } from 'vitest'",
  "import { storageConformance } from 'kitedb/storage'",
  "import { transportConformance } from 'kitedb/transport'",
  "import { MyStorageProvider, startMyTransports } from './my-seams.js'"
]

function example (): string {
  const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'seams.md'), 'utf8')
  const at = doc.indexOf('<!-- example:conformance')
  const block = /```ts\n([\s\S]*?)```/.exec(doc.slice(at))
  if (at < 0 || block === null) throw new Error('docs/seams.md has no conformance example')
  let code = block[1]
  for (const line of IMPORTS) {
    if (!code.includes(line)) throw new Error(`docs/seams.md's conformance example no longer has: ${line}`)
    code = code.replace(line, '')
  }
  return code
}

/** The reader's transports, here the in-memory ones. */
async function startMyTransports (n: number): Promise<{ peers: unknown[], cleanup: () => Promise<void> }> {
  const hub = new MemoryHub()
  const peers = Array.from({ length: n }, (_, i) => hub.join(`peer-${i}`))
  return { peers, cleanup: async () => { for (const p of peers) hub.leave(p.peerId) } }
}

// The example registers its own tests, as it would in the reader's test file.
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- runs the example's text, as the reader's test file would
const run = new Function('describe', 'it', 'storageConformance', 'transportConformance', 'MyStorageProvider', 'startMyTransports', example()) as (...args: unknown[]) => void
run(describe, it, storageConformance, transportConformance, MemoryStorageProvider, startMyTransports)
