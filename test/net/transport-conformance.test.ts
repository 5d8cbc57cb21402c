/**
 * The libp2p transport passes the transport conformance suite the library ships: real nodes that
 * reach each other through a real relay (and upgrade to direct WebRTC on their own).
 */
import { describe, it } from 'vitest'
import { Libp2pTransport, createPeerNode, parseRelays } from '../../src/net/index.js'
import { transportConformance } from '../../src/sync/transport-conformance.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()

describe('Transport conformance: libp2p', () => {
  const cases = transportConformance(async n => {
    const nodes = await Promise.all(Array.from({ length: n }, async () => await createPeerNode({ relays: [relay.addr] })))
    const peers = nodes.map(node => new Libp2pTransport(node, { relays: parseRelays([relay.addr]) }))
    return {
      peers,
      cleanup: async () => {
        for (const t of peers) t.close()
        await Promise.all(nodes.map(async node => { await node.stop() }))
      },
      disconnect: async i => {
        const node = nodes[i]
        await Promise.all((node?.getConnections() ?? []).map(async conn => { await conn.close() }))
      }
    }
  })
  for (const c of cases) it(c.name, c.run, 120_000)
})
