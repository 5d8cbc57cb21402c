/**
 * One libp2p node per set of relays per page (or process), shared by every database opened with
 * those relays and stopped when the last of them closes.
 */
import { type PrivateKey } from '@libp2p/interface'
import { createPeerNode, parseRelays } from './node.js'
import { Libp2pTransport } from './transport.js'
import { type IdentityClaim } from './identity.js'
import { type Transport } from '../sync/transport.js'
import { type LimitsOptions, resolveLimits } from '../sync/limits.js'

/** A shared network handle: use `transport`, call `release()` once when done. */
export interface NetworkLease {
  transport: Transport
  /** the relay multiaddrs this network uses */
  relays: string[]
  release (): Promise<void>
}

interface PoolEntry {
  ready: Promise<{ transport: Libp2pTransport, identity?: IdentityClaim }>
  refs: number
}

const pool = new Map<string, PoolEntry>()

/** Options of `acquireNetwork`. */
export interface AcquireOptions {
  /** leases with the same `node` name and relays share one libp2p node (default `'default'`); give
   * different names to run several independent peers in one page or process (tests, simulations) */
  node?: string
  /** identity of a newly started node */
  privateKey?: PrivateKey
  /** claims the identity of a newly started node (released when the node stops); overrides `privateKey` */
  identity?: () => Promise<IdentityClaim>
  /** false: never open direct connections to peers, only relayed ones (default true) */
  directConnections?: boolean
  /** per-peer rates and bans of a newly started node (see `Limits`; defaults `DEFAULT_LIMITS`); leases
   * with different limits get different nodes */
  limits?: LimitsOptions
}

/**
 * Lease the network for `relays`, starting it on first use. Rejects like `createPeerNode`
 * (`ValidationError`, also for bad `limits`; `NetworkError`, `TimeoutError`); a failed start is
 * not cached.
 */
export async function acquireNetwork (relays: string[], options: AcquireOptions = {}): Promise<NetworkLease> {
  const mas = parseRelays(relays)
  const direct = options.directConnections ?? true
  const key = `${options.node ?? 'default'}\u0000${String(direct)}\u0000${JSON.stringify(resolveLimits(options.limits))}\u0000${mas.map(m => m.toString()).sort().join(' ')}`
  let entry = pool.get(key)
  if (entry === undefined) {
    const ready = (async () => {
      const identity = options.identity !== undefined ? await options.identity() : undefined
      const privateKey = identity?.privateKey ?? options.privateKey
      try {
        const node = await createPeerNode({ relays: mas.map(m => m.toString()), webrtc: direct, ...(privateKey !== undefined ? { privateKey } : {}) })
        return { transport: new Libp2pTransport(node, { relays: mas, directConnections: direct, ...(options.limits !== undefined ? { limits: options.limits } : {}) }), ...(identity !== undefined ? { identity } : {}) }
      } catch (err) {
        identity?.release()
        throw err
      }
    })()
    entry = { ready, refs: 0 }
    pool.set(key, entry)
    ready.catch(() => { if (pool.get(key) === entry) pool.delete(key) })
  }
  entry.refs++
  const held = entry
  let transport: Libp2pTransport
  let identity: IdentityClaim | undefined
  try {
    ({ transport, identity } = await held.ready)
  } catch (err) {
    held.refs--
    throw err
  }
  let released = false
  return {
    transport,
    relays: mas.map(m => m.toString()),
    release: async () => {
      if (released) return
      released = true
      if (--held.refs > 0) return
      if (pool.get(key) === held) pool.delete(key)
      transport.close()
      await transport.node.stop()
      identity?.release()
    }
  }
}
