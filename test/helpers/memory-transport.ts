/**
 * An in-memory `Transport` hub for unit tests of the sync layer (never the proof that replication
 * works over the network: test/integration does that with real libp2p). Delivery is asynchronous;
 * `drop` and `partition` let tests lose messages and cut peers apart.
 */
import { type Limits, type PeerConnection, type SubscribeOptions, type Transport } from '../../src/sync/index.js'
import { NetworkError, TimeoutError } from '../../src/errors.js'

export class MemoryHub {
  readonly peers = new Map<string, MemoryTransport>()
  /** probability in [0, 1) that a published message is lost on its way to one subscriber */
  drop = 0
  /** probability that a delivery (message or response) happens twice */
  duplicate = 0
  /** probability that a delivered message or response has a few bytes flipped */
  corrupt = 0
  /** maximum random delay of a delivery, ms (deliveries overtake each other: reordering) */
  maxDelayMs = 0
  /** peer groups that can talk: peers in different groups cannot (undefined: everyone can) */
  private groups?: Array<Set<string>>
  private rng = 1

  join (peerId: string): MemoryTransport {
    const t = new MemoryTransport(this, peerId)
    this.peers.set(peerId, t)
    for (const other of this.peers.values()) {
      if (other === t) continue
      for (const topic of other.topics()) t.notifySubscriber(topic, other.peerId)
    }
    return t
  }

  leave (peerId: string): void { this.peers.delete(peerId) }

  partition (...groups: string[][]): void { this.groups = groups.map(g => new Set(g)) }

  heal (): void { this.groups = undefined }

  canTalk (a: string, b: string): boolean {
    if (!this.peers.has(a) || !this.peers.has(b)) return false
    if (this.groups === undefined) return true
    return this.groups.some(g => g.has(a) && g.has(b))
  }

  /** deterministic pseudo-random numbers, so a failing run can be replayed */
  random (): number {
    this.rng = (this.rng * 16807) % 2147483647
    return (this.rng - 1) / 2147483646
  }

  /** Seed the pseudo-random generator. */
  seed (n: number): void { this.rng = (Math.abs(Math.floor(n)) % 2147483646) + 1 }

  /** Deliver `data` to `fn` as the network would: maybe lost (when `droppable`), delayed, duplicated, corrupted. */
  deliver (data: Uint8Array, fn: (data: Uint8Array) => void, droppable: boolean): void {
    if (droppable && this.drop > 0 && this.random() < this.drop) return
    const copies = this.duplicate > 0 && this.random() < this.duplicate ? 2 : 1
    for (let i = 0; i < copies; i++) {
      let bytes = Uint8Array.from(data)
      if (this.corrupt > 0 && this.random() < this.corrupt && bytes.length > 0) {
        bytes = Uint8Array.from(bytes)
        for (let j = 0; j < 3; j++) bytes[Math.floor(this.random() * bytes.length)] ^= 1 << Math.floor(this.random() * 8)
      }
      setTimeout(() => { fn(bytes) }, this.maxDelayMs > 0 ? Math.floor(this.random() * this.maxDelayMs) : 0)
    }
  }
}

export class MemoryTransport implements Transport {
  readonly peerId: string
  /** the limits the replication engine applies (want list, snapshot builds); default `DEFAULT_LIMITS` */
  limits?: Limits
  private readonly hub: MemoryHub
  private readonly handlers = new Map<string, Set<(data: Uint8Array, from: string) => void>>()
  private readonly subscriberHandlers = new Map<string, Set<(peer: string) => void>>()
  private readonly protocols = new Map<string, (data: Uint8Array, from: string) => Promise<Uint8Array>>()

  constructor (hub: MemoryHub, peerId: string) {
    this.hub = hub
    this.peerId = peerId
  }

  topics (): string[] { return [...this.handlers.keys()] }

  subscribe (topic: string, handler: (data: Uint8Array, from: string) => void, options: SubscribeOptions = {}): () => void {
    let set = this.handlers.get(topic)
    if (set === undefined) {
      this.handlers.set(topic, set = new Set())
      for (const other of this.hub.peers.values()) if (other !== this) other.notifySubscriber(topic, this.peerId)
    }
    // Like gossipsub: a message the validator refuses is never delivered.
    const validate = options.validate
    const deliver = validate === undefined
      ? handler
      : (data: Uint8Array, from: string) => { void validate(data, from).then(ok => { if (ok) handler(data, from) }, () => {}) }
    set.add(deliver)
    return () => {
      set.delete(deliver)
      // Its last handler gone, this peer no longer subscribes to the topic.
      if (set.size === 0 && this.handlers.get(topic) === set) this.handlers.delete(topic)
    }
  }

  notifySubscriber (topic: string, peer: string): void {
    if (!this.hub.canTalk(this.peerId, peer)) return
    for (const h of this.subscriberHandlers.get(topic) ?? []) setTimeout(() => { h(peer) }, 0)
  }

  async publish (topic: string, data: Uint8Array): Promise<void> {
    for (const other of this.hub.peers.values()) {
      if (other === this || !this.hub.canTalk(this.peerId, other.peerId)) continue
      for (const h of other.handlers.get(topic) ?? []) this.hub.deliver(data, bytes => { h(bytes, this.peerId) }, true)
    }
  }

  onSubscriber (topic: string, handler: (peer: string) => void): () => void {
    let set = this.subscriberHandlers.get(topic)
    if (set === undefined) this.subscriberHandlers.set(topic, set = new Set())
    set.add(handler)
    return () => { set.delete(handler) }
  }

  subscribers (topic: string): string[] {
    return [...this.hub.peers.values()].filter(p => p !== this && p.handlers.has(topic) && this.hub.canTalk(this.peerId, p.peerId)).map(p => p.peerId)
  }

  async request (peer: string, protocol: string, data: Uint8Array, options: { timeoutMs?: number } = {}): Promise<Uint8Array> {
    const timeoutMs = options.timeoutMs ?? 10_000
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new TimeoutError(`request ${protocol} to ${peer} timed out after ${timeoutMs} ms`)) }, timeoutMs)
    })
    try {
      return await Promise.race([this.exchange(peer, protocol, data), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** One request and its response, without the timeout. */
  private async exchange (peer: string, protocol: string, data: Uint8Array): Promise<Uint8Array> {
    const target = this.hub.peers.get(peer)
    const handler = target?.protocols.get(protocol)
    if (target === undefined || handler === undefined || !this.hub.canTalk(this.peerId, peer)) throw new NetworkError(`cannot reach ${peer}`)
    if (this.hub.drop > 0 && this.hub.random() < this.hub.drop) throw new NetworkError(`request to ${peer} lost`)
    const request = await new Promise<Uint8Array>(resolve => { this.hub.deliver(data, resolve, false) })
    // As over a network: a handler's rejection closes the exchange without a response.
    const response = await handler(request, this.peerId).catch((err: Error) => { throw new NetworkError(`request ${protocol} to ${peer} failed: ${err.message}`, { cause: err }) })
    if (!this.hub.canTalk(this.peerId, peer)) throw new NetworkError(`connection to ${peer} lost`)
    return await new Promise<Uint8Array>(resolve => { this.hub.deliver(response, resolve, false) })
  }

  handle (protocol: string, handler: (data: Uint8Array, from: string) => Promise<Uint8Array>): () => void {
    this.protocols.set(protocol, handler)
    return () => { this.protocols.delete(protocol) }
  }

  connection (peer: string): PeerConnection {
    return this.hub.canTalk(this.peerId, peer) ? { kind: 'direct', transport: 'memory' } : { kind: 'none', transport: 'none' }
  }
}

/** Poll `cond` every 20 ms until it holds; throws after `timeoutMs`. */
export async function eventually (cond: () => Promise<boolean> | boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
