/**
 * One libp2p node per set of relays per page (or process), shared by every database opened with
 * those relays and stopped when the last of them closes. The node starts without waiting for any
 * relay: its relay keeper reaches them in the background and keeps reaching them (see relays.ts).
 *
 * A node started with a fresh identity because another tab held the device's (see identity.ts)
 * is replaced by one with the device identity when that tab lets go: the pool starts the new node,
 * and every lease of the old one learns it through `replaced`.
 */
import { type PrivateKey } from '@libp2p/interface'
import { createPeerNode, parseRelays } from './node.js'
import { Libp2pTransport } from './transport.js'
import { type IdentityClaim } from './identity.js'
import { createLogger } from '../log.js'
import { type Transport } from '../sync/transport.js'
import { type LimitsOptions, resolveLimits } from '../sync/limits.js'

const log = createLogger('net')

/** A shared network handle: use `transport`, call `release()` once when done. */
export interface NetworkLease {
  transport: Transport
  /** the relay multiaddrs this network uses */
  relays: string[]
  /**
   * Resolves when this lease's node is being replaced (a fresh identity gave way to the device's):
   * release this lease and acquire again to get the new node. Never settles otherwise.
   */
  replaced: Promise<void>
  /** the device's peer id (set by the database layer): what share links name, whichever tab runs it */
  devicePeerId?: string
  release (): Promise<void>
}

interface PoolEntry {
  ready: Promise<{ transport: Libp2pTransport, identity?: IdentityClaim }>
  refs: number
  /** resolved when the entry is replaced */
  replace: () => void
  replaced: Promise<void>
  /** set once the entry's node is stopping */
  done: boolean
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
  /** STUN/TURN servers for WebRTC (see `PeerNodeOptions.iceServers`); leases with different ones get different nodes */
  iceServers?: RTCIceServer[]
}

/**
 * Lease the network for `relays`, starting its node on first use (without waiting for a relay).
 * Rejects with `ValidationError` for bad relays or `limits`; a failed start is not cached.
 */
export async function acquireNetwork (relays: string[], options: AcquireOptions = {}): Promise<NetworkLease> {
  const mas = parseRelays(relays)
  const direct = options.directConnections ?? true
  const key = [options.node ?? 'default', String(direct), JSON.stringify(resolveLimits(options.limits)), JSON.stringify(options.iceServers ?? []),
    mas.map(m => m.toString()).sort().join(' ')].join('\u0000')
  let entry = pool.get(key)
  if (entry === undefined) {
    entry = startEntry(key, async () => options.identity !== undefined ? await options.identity() : undefined, options, mas.map(m => m.toString()))
  }
  entry.refs++
  const held = entry
  let transport: Libp2pTransport
  try {
    ({ transport } = await held.ready)
  } catch (err) {
    held.refs--
    throw err
  }
  let released = false
  return {
    transport,
    relays: mas.map(m => m.toString()),
    replaced: held.replaced,
    release: async () => {
      if (released) return
      released = true
      if (--held.refs > 0) return
      await stopEntry(key, held)
    }
  }
}

/** Start a node for `key` with the identity `claim` gives, and put it in the pool. */
function startEntry (key: string, claim: () => Promise<IdentityClaim | undefined>, options: AcquireOptions, relays: string[]): PoolEntry {
  let replace = (): void => {}
  const replaced = new Promise<void>(resolve => { replace = resolve })
  const entry: PoolEntry = {
    refs: 0,
    replace,
    replaced,
    done: false,
    ready: (async () => {
      const identity = await claim()
      const privateKey = identity?.privateKey ?? options.privateKey
      try {
        const direct = options.directConnections ?? true
        const node = await createPeerNode({
          relays,
          webrtc: direct,
          waitForRelay: false,
          ...(privateKey !== undefined ? { privateKey } : {}),
          ...(options.iceServers !== undefined ? { iceServers: options.iceServers } : {})
        })
        const transport = new Libp2pTransport(node, { relays: parseRelays(relays), directConnections: direct, ...(options.limits !== undefined ? { limits: options.limits } : {}) })
        identity?.upgrade?.then(upgraded => { takeOver(key, entry, upgraded, options, relays) }, () => {})
        return { transport, ...(identity !== undefined ? { identity } : {}) }
      } catch (err) {
        identity?.release()
        throw err
      }
    })()
  }
  pool.set(key, entry)
  entry.ready.catch(() => { if (pool.get(key) === entry) pool.delete(key) })
  return entry
}

/** The device identity became free: start a node with it in `old`'s place and tell `old`'s leases. */
function takeOver (key: string, old: PoolEntry, upgraded: IdentityClaim, options: AcquireOptions, relays: string[]): void {
  if (old.done || pool.get(key) !== old) { upgraded.release(); return }
  log.debug('the device identity is free: moving this page\'s node to it')
  const next = startEntry(key, async () => upgraded, options, relays)
  old.replace()
  // Its leases acquire the new node at once; should none (their databases closed meanwhile), stop it.
  setTimeout(() => { if (next.refs === 0 && !next.done) void stopEntry(key, next).catch(() => {}) }, 30_000)
}

async function stopEntry (key: string, entry: PoolEntry): Promise<void> {
  entry.done = true
  if (pool.get(key) === entry) pool.delete(key)
  const { transport, identity } = await entry.ready
  transport.close()
  await transport.node.stop()
  identity?.release()
}
