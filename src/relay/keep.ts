/**
 * A relay that keeps (`kitedb-relay --keep DIR`): a `Keeper` (src/keep) over the relay's own
 * libp2p node. Its keep, blocks and snapshot protocols are served through a `Libp2pTransport`,
 * so every per-peer bound of replicas holds for it too (request rates, open streams, read and
 * drain times, sizes, answer budget); its gossip goes out on the relay's gossipsub, and the
 * relay's topic validator asks it about inline blocks (`gossipCheck`).
 */
import { type LimitsOptions } from '../sync/limits.js'
import { type PeerNode, Libp2pTransport } from '../net/index.js'
import { Keeper, KeepStore, type KeepLimits, resolveKeepLimits, type KeepStoreOptions } from '../keep/index.js'

/** Options of `startKeeping`. */
export interface KeepingOptions {
  /** the LevelDB directory (created when absent) */
  dir: string
  /** quotas and expiry (defaults `DEFAULT_KEEP_LIMITS`) */
  limits?: Partial<KeepLimits>
  /** per-peer network limits of the keep, blocks and snapshot protocols (defaults `DEFAULT_LIMITS`) */
  network?: LimitsOptions
  /** store options (clock, fsync) */
  store?: KeepStoreOptions
}

/** A running keeper; `close` stops it and closes its store. */
export interface Keeping {
  keeper: Keeper
  store: KeepStore
  close: () => Promise<void>
}

/**
 * Keep on relay `node`: open the store in `options.dir` and serve. Rejects when the store cannot
 * be opened (another process holds the directory, say), `ValidationError` for bad limits.
 */
export async function startKeeping (node: PeerNode, options: KeepingOptions): Promise<Keeping> {
  const limits = resolveKeepLimits(options.limits)
  const store = await KeepStore.open(options.dir, limits, options.store)
  const transport = new Libp2pTransport(node, { relays: [], directConnections: false, ...(options.network !== undefined ? { limits: options.network } : {}) })
  const pubsub = node.services.pubsub
  const keeper = new Keeper(store, transport, {
    limits,
    gossip: {
      publish: async (topic, data) => { await pubsub.publish(topic, data) },
      onSubscribe: handler => {
        const listener = (evt: CustomEvent): void => {
          const { peerId, subscriptions } = evt.detail as { peerId: { toString: () => string }, subscriptions: Array<{ topic: string, subscribe: boolean }> }
          for (const { topic, subscribe } of subscriptions) if (subscribe) handler(topic, peerId.toString())
        }
        pubsub.addEventListener('subscription-change', listener)
        return () => { pubsub.removeEventListener('subscription-change', listener) }
      }
    }
  })
  keeper.start()
  let closed = false
  return {
    keeper,
    store,
    close: async () => {
      if (closed) return
      closed = true
      keeper.stop()
      transport.close()
      await store.close()
    }
  }
}
