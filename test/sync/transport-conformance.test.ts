/** The in-memory transport of the sync tests passes the transport conformance suite the library ships. */
import { describe, it } from 'vitest'
import { transportConformance } from '../../src/sync/transport-conformance.js'
import { MemoryHub } from '../helpers/memory-transport.js'

describe('Transport conformance: memory', () => {
  const cases = transportConformance(async n => {
    const hub = new MemoryHub()
    const peers = Array.from({ length: n }, (_, i) => hub.join(`peer-${i}`))
    return { peers, cleanup: async () => { for (const p of peers) hub.leave(p.peerId) } }
  }, { timeoutMs: 5000 })
  for (const c of cases) it(c.name, c.run)
})
