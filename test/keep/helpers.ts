/**
 * Keepers for the keep tests: a relay with a keeper in this process (`InProcessKeeper`, stopped
 * and started again on the same key, port and directory), and databases opened against it.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { type PrivateKey } from '@libp2p/interface'
import { Libp2pTransport, createPeerNode, createRelayNode, parseRelays, type PeerNode } from '../../src/net/index.js'
import { type Keeping, type KeepingOptions, startKeeping } from '../../src/relay/keep.js'
import { MemoryStorageProvider, type Database, type OpenOptions } from '../../src/index.js'

/** A relay that keeps, in this process. */
export class InProcessKeeper {
  node?: PeerNode
  keeping?: Keeping
  port = 0
  private constructor (readonly key: PrivateKey, readonly dir: string, private readonly options: Omit<KeepingOptions, 'dir'>) {}

  static async start (options: Omit<KeepingOptions, 'dir'> = {}, dir?: string): Promise<InProcessKeeper> {
    const k = new InProcessKeeper(await generateKeyPair('Ed25519'), dir ?? await mkdtemp(join(tmpdir(), 'kitedb-keep-')), options)
    await k.restart()
    return k
  }

  get addr (): string { return `/ip4/127.0.0.1/tcp/${this.port}/ws/p2p/${this.key.publicKey.toString()}` }

  async restart (): Promise<void> {
    let keeping: Keeping | undefined
    this.node = await createRelayNode({ port: this.port, privateKey: this.key, gossipCheck: async (t, d, f) => await (keeping?.keeper.checkGossip(t, d, f) ?? true) })
    this.port = Number(this.node.getMultiaddrs()[0]?.toString().split('/')[4])
    keeping = this.keeping = await startKeeping(this.node, { ...this.options, dir: this.dir })
  }

  async stop (): Promise<void> {
    await this.node?.stop()
    await this.keeping?.close()
    this.node = undefined
    this.keeping = undefined
  }

  async destroy (): Promise<void> {
    await this.stop()
    await rm(this.dir, { recursive: true, force: true })
  }
}

/** Open options for a device of its own (its own storage and libp2p node), relay-only (no WebRTC in Node tests). */
export function device (relays: string[], extra: OpenOptions = {}): OpenOptions {
  return { relays, node: `device-${Math.random()}`, storage: new MemoryStorageProvider(), directConnections: false, replication: { republishMs: 500 }, ...extra }
}

/** The titles of a database's todos, sorted by `_id`. */
export async function titles (db: Database): Promise<string[]> {
  return (await (await db.initCollection<{ title: string }>('todos')).find({}, undefined, { sort: { _id: 1 } })).map(d => d.title)
}

/** A keeper in this process and a plain peer reaching it through it, relay-only; `close` stops both and removes the keeper's directory. */
export async function keeperAndPeer (options: Omit<KeepingOptions, 'dir'> = {}): Promise<{ keeper: InProcessKeeper, transport: Libp2pTransport, close: () => Promise<void> }> {
  const keeper = await InProcessKeeper.start(options)
  const node = await createPeerNode({ relays: [keeper.addr], webrtc: false })
  const transport = new Libp2pTransport(node, { relays: parseRelays([keeper.addr]), directConnections: false })
  return {
    keeper,
    transport,
    close: async () => {
      transport.close()
      await node.stop()
      await keeper.destroy()
    }
  }
}
