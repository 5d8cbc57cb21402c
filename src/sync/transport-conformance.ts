/**
 * The conformance suite of `Transport`: every case an implementation must pass, exercising each
 * member directly (publish/subscribe, request/response, connections, and the optional network
 * members when present). It ships with the library so that an implementation outside it can be
 * checked the same way as the libp2p and in-memory transports are. Delivery is asynchronous and
 * gossip may lose messages while a mesh forms: cases poll with bounded waits (publishing again
 * while they wait), and never take a pause as the proof that something happened or did not.
 */
import { type ConformanceCase, check, checkEqual, codeOf, eventually, rejection, within } from '../check.js'
import { DEFAULT_LIMITS } from './limits.js'
import { type NetworkState, type PeerConnection, type Transport } from './transport.js'

export { type ConformanceCase } from '../check.js'

/** What `makePeers(n)` gives the suite: `n` transports, each its own node, able to reach each other. */
export interface TransportPeers {
  /** the transports; they may need a moment to hear each other (the suite waits) */
  peers: Transport[]
  /** stop every transport and release what they hold; called once, after the case */
  cleanup: () => Promise<void>
  /**
   * Cut every connection of `peers[index]` (optional): lets the case on connection and network
   * changes watch them happen. The transport may reconnect by itself afterwards.
   */
  disconnect?: (index: number) => Promise<void>
}

/** Options of `transportConformance`. */
export interface TransportConformanceOptions {
  /** bound of each wait for something asynchronous (a delivery, a subscription heard), ms (default 20000) */
  timeoutMs?: number
  /** the `timeoutMs` the timeout case gives `request`, ms (default 500) */
  requestTimeoutMs?: number
  /** prefix of the topics the cases use (default `'/kitedb/1/conformance/'`: KiteDB relays join `/kitedb/1/` topics) */
  topicPrefix?: string
  /** prefix of the request protocols the cases use (default `'/kitedb-conformance/1/'`) */
  protocolPrefix?: string
  /** a peer id no transport of the run has (default a well-formed libp2p Ed25519 peer id) */
  absentPeer?: string
}

const text = new TextEncoder()
const untext = new TextDecoder()
const bytes = (s: string): Uint8Array => text.encode(s)
const str = (b: Uint8Array): string => untext.decode(b)
const noop = (): void => {}
/** The limits the wire protocol fixes (not local policy: `LimitsOptions` leaves them out). */
const WIRE_LIMITS = ['maxBlockBytes', 'maxMessageBytes', 'maxRequestCids', 'maxParents']

/** Messages a handler received, as text with their `from`. */
class Inbox {
  readonly items: Array<{ text: string, from: string }> = []
  readonly handler = (data: Uint8Array, from: string): void => { this.items.push({ text: str(data), from }) }
  has (prefix: string, from?: string): boolean { return this.items.some(i => i.text.startsWith(prefix) && (from === undefined || i.from === from)) }
  count (prefix: string): number { return this.items.filter(i => i.text.startsWith(prefix)).length }
}

/** Throws unless `c` has the shape of a `PeerConnection`. */
function checkConnection (c: PeerConnection, what: string): void {
  check(['direct', 'relayed', 'none'].includes(c?.kind), `${what}: kind is 'direct', 'relayed' or 'none', got ${JSON.stringify(c)}`)
  check(typeof c.transport === 'string' && c.transport.length > 0, `${what}: transport is a non-empty string, got ${JSON.stringify(c)}`)
  check(c.kind !== 'none' || c.transport === 'none', `${what}: a connection of kind 'none' has transport 'none', got ${JSON.stringify(c)}`)
  check(c.remainingBytes === undefined || (typeof c.remainingBytes === 'number' && c.remainingBytes >= 0), `${what}: remainingBytes is absent or a number >= 0, got ${JSON.stringify(c)}`)
}

/** Throws unless `s` has the shape of a `NetworkState` and keeps its documented invariants. */
function checkNetworkState (s: NetworkState, what: string): void {
  const shown = JSON.stringify(s)
  check(['online', 'connecting', 'offline'].includes(s?.status), `${what}: status is 'online', 'connecting' or 'offline', got ${shown}`)
  const count = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 0
  check(count(s.reserved) && count(s.connectedPeers), `${what}: reserved and connectedPeers are counts, got ${shown}`)
  check(s.status !== 'online' || s.reserved > 0 || s.connectedPeers > 0, `${what}: online means a reservation or a connected peer, got ${shown}`)
  check(s.nextAttemptAt === null || (s.status === 'offline' && typeof s.nextAttemptAt === 'number'), `${what}: nextAttemptAt is a time only while offline, else null, got ${shown}`)
  check(s.error === null || typeof s.error === 'string', `${what}: error is a string or null, got ${shown}`)
  check(Array.isArray(s.relays), `${what}: relays is an array, got ${shown}`)
  for (const r of s.relays) {
    check(typeof r.addr === 'string' && typeof r.peer === 'string' && ['reserved', 'connected', 'connecting', 'waiting'].includes(r.state) &&
      count(r.failures) && (r.nextAttemptAt === null || typeof r.nextAttemptAt === 'number') && (r.error === null || typeof r.error === 'string') &&
      typeof r.since === 'number', `${what}: each relay has the shape of a RelayStatus, got ${JSON.stringify(r)}`)
  }
}

/**
 * The cases a `Transport` implementation must pass. `makePeers(n)` returns `n` fresh transports
 * that can reach each other (on one network, through one relay, or over one in-memory hub) and a
 * `cleanup`; each case makes its own and cleans them up. Run each case's `run()` with any test
 * runner: it resolves when the transport behaves as `Transport` documents, and rejects with an
 * `Error` saying what differed otherwise. With vitest:
 *
 * ```ts
 * for (const c of transportConformance(makePeers)) it(c.name, c.run, 60_000)
 * ```
 *
 * The optional members (`networkState`, `onNetworkChange`, `onConnectionChange`, `reconnect`) are
 * checked when the transports have them; their changes only when `makePeers` also gives
 * `disconnect`. Framework-free: runs in Node and in browsers.
 */
export function transportConformance (makePeers: (n: number) => Promise<TransportPeers>, options: TransportConformanceOptions = {}): ConformanceCase[] {
  const timeoutMs = options.timeoutMs ?? 20_000
  const requestTimeoutMs = options.requestTimeoutMs ?? 500
  const absent = options.absentPeer ?? '12D3KooWQBwdJBtatW3z8dUh9vu6m7xsZTKbYKRUM3aKPg4DTRjM'
  const run = Math.random().toString(36).slice(2, 10)
  const topicOf = (name: string): string => `${options.topicPrefix ?? '/kitedb/1/conformance/'}${name}/${run}`
  const protocolOf = (name: string): string => `${options.protocolPrefix ?? '/kitedb-conformance/1/'}${name}`
  /** Wait for `condition`, running `act` (publish again, say) before each look. */
  const until = async (condition: () => boolean | Promise<boolean>, what: string, act?: () => unknown): Promise<void> => {
    await eventually(condition, timeoutMs, what, act === undefined ? {} : { act, everyMs: 200 })
  }
  /** A request that must settle within the suite's bound. */
  const ask = async (from: Transport, to: string, protocol: string, data: Uint8Array, requestMs = timeoutMs): Promise<Uint8Array> =>
    await within(from.request(to, protocol, data, { timeoutMs: requestMs }), requestMs + timeoutMs, `request ${protocol}`)

  const c = (name: string, n: number, fn: (peers: Transport[], all: TransportPeers) => Promise<void>): ConformanceCase => ({
    name,
    run: async () => {
      const all = await makePeers(n)
      try {
        checkEqual(all.peers.length, n, `makePeers(${n}) gives ${n} transports`)
        await fn(all.peers, all)
      } finally {
        await all.cleanup()
      }
    }
  })

  return [
    c('peerId is a non-empty string, distinct for each transport; limits, when set, give every limit, the wire protocol\'s as it fixes them', 2, async ([a, b]) => {
      for (const t of [a, b]) check(typeof t?.peerId === 'string' && t.peerId.length > 0, `peerId is a non-empty string, got ${JSON.stringify(t?.peerId)}`)
      check(a?.peerId !== b?.peerId, 'two transports have distinct peer ids')
      for (const t of [a, b]) {
        const limits = t?.limits as Record<string, unknown> | undefined
        if (limits === undefined) continue
        for (const [key, value] of Object.entries(DEFAULT_LIMITS)) {
          check(typeof limits[key] === 'number' && limits[key] > 0, `limits.${key} is a positive number, got ${String(limits[key])}`)
          if (WIRE_LIMITS.includes(key)) checkEqual(limits[key], value, `limits.${key} (fixed by the wire protocol)`)
        }
      }
    }),

    c('publish reaches every subscriber of the topic with the publisher as `from`, and not the publisher itself', 3, async ([a, b, c]) => {
      const topic = topicOf('publish')
      const [ia, ib, ic] = [new Inbox(), new Inbox(), new Inbox()]
      a.subscribe(topic, ia.handler)
      b.subscribe(topic, ib.handler)
      c.subscribe(topic, ic.handler)
      let k = 0
      await until(() => ib.has('from a', a.peerId) && ic.has('from a', a.peerId), 'two subscribers to receive a message published by a third', async () => { await a.publish(topic, bytes(`from a ${k++}`)) })
      // Once a has b's message, what a published had time to come back to it.
      await until(() => ia.has('from b', b.peerId), 'the publisher to receive a message of another subscriber', async () => { await b.publish(topic, bytes(`from b ${k++}`)) })
      checkEqual(ia.count('from a'), 0, 'messages a publisher received of its own')
      for (const [name, box] of [['b', ib], ['c', ic]] as const) {
        check(box.items.filter(i => i.text.startsWith('from a')).every(i => i.from === a.peerId), `every message a published reached ${name} with from = a's peer id: ${JSON.stringify(box.items.slice(0, 5))}`)
      }
      check(ia.items.every(i => i.text.startsWith('from b') && i.from === b.peerId), `a received only b's messages, from b: ${JSON.stringify(ia.items.slice(0, 5))}`)
    }),

    c('subscribe with validate: a message validate resolves false for, or rejects, is not delivered; validate sees the publisher', 2, async ([a, b]) => {
      const topic = topicOf('validate')
      const inbox = new Inbox()
      const checked: Array<{ text: string, from: string }> = []
      b.subscribe(topic, inbox.handler, {
        validate: async (data, from) => {
          const t = str(data)
          checked.push({ text: t, from })
          if (t.startsWith('throw')) throw new Error('validator failed')
          return !t.startsWith('refuse')
        }
      })
      let k = 0
      await until(() => inbox.has('accept') && checked.some(i => i.text.startsWith('refuse')) && checked.some(i => i.text.startsWith('throw')),
        'messages to be validated, and an accepted one delivered', async () => {
          await a.publish(topic, bytes(`refuse ${k}`))
          await a.publish(topic, bytes(`throw ${k}`))
          await a.publish(topic, bytes(`accept ${k++}`))
        })
      checkEqual(inbox.count('refuse') + inbox.count('throw'), 0, 'messages delivered that validate refused or rejected')
      check(checked.every(i => i.from === a.peerId), `validate is called with the publisher's peer id: ${JSON.stringify(checked.slice(0, 3))}`)
      check(inbox.items.every(i => i.from === a.peerId), 'accepted messages come from the publisher')
    }),

    c('the function subscribe returns unsubscribes that handler only', 2, async ([a, b]) => {
      const topic = topicOf('unsubscribe')
      const [one, two] = [new Inbox(), new Inbox()]
      const offOne = b.subscribe(topic, one.handler)
      b.subscribe(topic, two.handler)
      let k = 0
      await until(() => one.has('before') && two.has('before'), 'both handlers of a topic to receive a message', async () => { await a.publish(topic, bytes(`before ${k++}`)) })
      offOne()
      await until(() => two.has('after'), 'the handler still subscribed to receive a message', async () => { await a.publish(topic, bytes(`after ${k++}`)) })
      checkEqual(one.count('after'), 0, 'messages an unsubscribed handler received after unsubscribing')
    }),

    c('subscribers lists the peers heard to subscribe to the topic, not this node, and drops a peer whose last handler unsubscribed', 3, async ([a, b, c]) => {
      const topic = topicOf('subscribers')
      a.subscribe(topic, noop)
      b.subscribe(topic, noop)
      let k = 0
      const ping = async (...ts: Transport[]): Promise<void> => { for (const t of ts) await t.publish(topic, bytes(`ping ${k++}`)) }
      await until(() => a.subscribers(topic).includes(b.peerId) && b.subscribers(topic).includes(a.peerId), 'two subscribers to list each other', async () => { await ping(a, b) })
      check(!a.subscribers(topic).includes(a.peerId), 'subscribers does not list this node')
      check(!a.subscribers(topic).includes(c.peerId), 'subscribers does not list a peer that never subscribed')
      check(a.subscribers(topicOf('nobody')).length === 0, 'subscribers of a topic nobody subscribes to is empty')
      const offFirst = c.subscribe(topic, noop)
      const offSecond = c.subscribe(topic, noop)
      await until(() => a.subscribers(topic).includes(c.peerId), 'a new subscriber to be listed', async () => { await ping(a, b, c) })
      offFirst()
      offSecond()
      await until(() => !a.subscribers(topic).includes(c.peerId), 'a peer whose handlers all unsubscribed to leave the list', async () => { await ping(a, b) })
      check(a.subscribers(topic).includes(b.peerId), 'a subscriber stays listed')
    }),

    c('onSubscriber reports a peer that newly subscribes; the function it returns removes that handler only', 3, async ([a, b, c]) => {
      const topic = topicOf('on-subscriber')
      const [one, two]: [string[], string[]] = [[], []]
      a.subscribe(topic, noop)
      const offOne = a.onSubscriber(topic, peer => { one.push(peer) })
      a.onSubscriber(topic, peer => { two.push(peer) })
      const other: string[] = []
      a.onSubscriber(topicOf('other'), peer => { other.push(peer) })
      b.subscribe(topic, noop)
      let k = 0
      const ping = async (...ts: Transport[]): Promise<void> => { for (const t of ts) await t.publish(topic, bytes(`ping ${k++}`)) }
      await until(() => one.includes(b.peerId) && two.includes(b.peerId), 'onSubscriber handlers to hear a new subscriber', async () => { await ping(a, b) })
      offOne()
      c.subscribe(topic, noop)
      await until(() => two.includes(c.peerId), 'the handler still registered to hear another new subscriber', async () => { await ping(a, b, c) })
      check(!one.includes(c.peerId), 'a removed onSubscriber handler was called for a peer that subscribed after its removal')
      check(![...one, ...two].includes(a.peerId), 'onSubscriber never reports this node itself')
      check(!other.includes(b.peerId) && !other.includes(c.peerId), `onSubscriber of a topic nobody subscribed to reported ${JSON.stringify(other)}`)
    }),

    c('request and handle: the response to each request, empty and larger payloads, concurrent requests, the requester as `from`', 2, async ([a, b]) => {
      const protocol = protocolOf('echo')
      const froms: string[] = []
      b.handle(protocol, async (data, from) => {
        froms.push(from)
        return Uint8Array.from(data).reverse()
      })
      const reversed = (d: Uint8Array): Uint8Array => Uint8Array.from(d).reverse()
      const large = Uint8Array.from({ length: 16 * 1024 }, (_, i) => (i * 7) % 251)
      for (const [what, data] of [['a small request', bytes('hello')], ['an empty request', new Uint8Array(0)], ['a 16 KiB request', large]] as const) {
        checkEqual(await ask(a, b.peerId, protocol, data), reversed(data), `the response to ${what}`)
      }
      const many = Array.from({ length: 6 }, (_, i) => bytes(`concurrent ${i}`))
      checkEqual(await Promise.all(many.map(async d => await ask(a, b.peerId, protocol, d))), many.map(reversed), 'the responses to concurrent requests, each to its own')
      check(froms.length === 9 && froms.every(f => f === a.peerId), `the handler is called once per request with the requester's peer id: ${JSON.stringify(froms)}`)
    }),

    c('a request whose handler rejects rejects with NetworkError, and the next request is answered', 2, async ([a, b]) => {
      const protocol = protocolOf('refuse')
      b.handle(protocol, async data => {
        if (str(data) === 'refuse') throw new Error('the handler refuses')
        return data
      })
      checkEqual(str(await ask(a, b.peerId, protocol, bytes('ok'))), 'ok', 'the response to a request the handler answers')
      const err = await rejection(a.request(b.peerId, protocol, bytes('refuse'), { timeoutMs }), 'a request whose handler rejects', 2 * timeoutMs)
      checkEqual(codeOf(err), 'ERR_NETWORK', `the code of the error of a request whose handler rejected (${String(err)})`)
      checkEqual(str(await ask(a, b.peerId, protocol, bytes('again'))), 'again', 'the response to the next request')
    }),

    c('a request on a protocol the peer does not handle, or to a peer no one has, rejects with NetworkError and disturbs no request in flight', 2, async ([a, b]) => {
      const echo = protocolOf('echo')
      const held = protocolOf('held')
      let release: () => void = noop
      const gate = new Promise<void>(resolve => { release = resolve })
      let arrived = false
      b.handle(echo, async data => data)
      b.handle(held, async data => { arrived = true; await gate; return data })
      try {
        checkEqual(str(await ask(a, b.peerId, echo, bytes('first'))), 'first', 'the response before')
        // A request in flight while another fails on an unknown protocol: it must still be answered.
        const inFlight = ask(a, b.peerId, held, bytes('in flight'))
        inFlight.catch(noop) // awaited below
        await until(() => arrived, 'a request to reach its handler')
        const unknown = await rejection(a.request(b.peerId, protocolOf('nobody handles this'), bytes('x'), { timeoutMs }), 'a request on a protocol the peer does not handle', 2 * timeoutMs)
        checkEqual(codeOf(unknown), 'ERR_NETWORK', `the code of the error of a request on a protocol the peer does not handle (${String(unknown)})`)
        release()
        checkEqual(str(await inFlight), 'in flight', 'the response to a request in flight while another failed on an unknown protocol')
      } finally {
        release()
      }
      checkEqual(str(await ask(a, b.peerId, echo, bytes('after'))), 'after', 'the response after a request on an unknown protocol')
      const unreachable = await rejection(a.request(absent, echo, bytes('x'), { timeoutMs }), 'a request to a peer no one has', 2 * timeoutMs)
      checkEqual(codeOf(unreachable), 'ERR_NETWORK', `the code of the error of a request to a peer no one has (${String(unreachable)})`)
    }),

    c('a request not answered within timeoutMs rejects with TimeoutError after about that long', 2, async ([a, b]) => {
      const echo = protocolOf('echo')
      const slow = protocolOf('never answers')
      let release: () => void = noop
      const held = new Promise<void>(resolve => { release = resolve })
      b.handle(echo, async data => data)
      b.handle(slow, async data => { await held; return data })
      try {
        await ask(a, b.peerId, echo, bytes('warm up')) // so the time goes to the handler, not to connecting
        const started = Date.now()
        const err = await rejection(a.request(b.peerId, slow, bytes('x'), { timeoutMs: requestTimeoutMs }), `a request with timeoutMs ${requestTimeoutMs} whose handler never answers`, requestTimeoutMs + timeoutMs)
        const took = Date.now() - started
        checkEqual(codeOf(err), 'ERR_TIMEOUT', `the code of the error of a request that timed out (${String(err)})`)
        check(took >= requestTimeoutMs - 10, `a request with timeoutMs ${requestTimeoutMs} rejected after ${took} ms`)
      } finally {
        release()
      }
    }),

    c('the function handle returns removes the handler: later requests reject with NetworkError and never reach it', 2, async ([a, b]) => {
      const protocol = protocolOf('removed')
      let calls = 0
      const off = b.handle(protocol, async data => { calls++; return data })
      checkEqual(str(await ask(a, b.peerId, protocol, bytes('before'))), 'before', 'the response before the handler is removed')
      off()
      const before = calls
      let last: unknown
      await until(async () => {
        last = await rejection(a.request(b.peerId, protocol, bytes('after'), { timeoutMs }), 'a request after its handler was removed', 2 * timeoutMs)
        return codeOf(last) === 'ERR_NETWORK'
      }, 'requests to a removed handler to reject with NetworkError')
      checkEqual(calls, before, 'calls of a handler after it was removed')
    }),

    c('connection describes how this node reaches a peer: not \'none\' once requests pass, \'none\' for a peer no one has', 2, async ([a, b]) => {
      const echo = protocolOf('echo')
      a.handle(echo, async data => data)
      b.handle(echo, async data => data)
      const none = a.connection(absent)
      checkConnection(none, 'connection to a peer no one has')
      checkEqual(none.kind, 'none', 'kind of the connection to a peer no one has')
      await ask(a, b.peerId, echo, bytes('x'))
      await ask(b, a.peerId, echo, bytes('y'))
      for (const [from, to] of [[a, b], [b, a]] as const) {
        const conn = from.connection(to.peerId)
        checkConnection(conn, 'connection to a peer just answered')
        check(conn.kind !== 'none', `a peer that just answered a request is reached directly or relayed, got ${JSON.stringify(conn)}`)
      }
    }),

    c('networkState, onNetworkChange, onConnectionChange and reconnect, when implemented: shapes, changes when connections go, unsubscribing', 2, async ([a, b], all) => {
      const t = a
      if (t.networkState !== undefined) {
        checkNetworkState(t.networkState(), 'networkState()')
        await until(() => t.networkState?.().status === 'online', 'networkState().status to be online while peers are reachable')
        checkNetworkState(t.networkState(), 'networkState() online')
      }
      const states: NetworkState[] = []
      const removedStates: NetworkState[] = []
      let changes = 0
      let removedChanges = 0
      const offStates = t.onNetworkChange?.(s => { states.push(s) })
      const offRemovedStates = t.onNetworkChange?.(s => { removedStates.push(s) })
      const offChanges = t.onConnectionChange?.(() => { changes++ })
      const offRemovedChanges = t.onConnectionChange?.(() => { removedChanges++ })
      for (const off of [offStates, offRemovedStates, offChanges, offRemovedChanges]) check(off === undefined || typeof off === 'function', 'onNetworkChange and onConnectionChange return functions')
      offRemovedStates?.()
      offRemovedChanges?.()
      if (all.disconnect === undefined) return
      await all.disconnect(0)
      if (offChanges !== undefined) await until(() => changes > 0, 'onConnectionChange to report connections closing')
      if (offStates !== undefined) {
        await until(() => states.length > 0, 'onNetworkChange to report a change when every connection closed')
        for (const s of states) checkNetworkState(s, 'a state onNetworkChange reported')
      }
      t.reconnect?.()
      if (t.networkState !== undefined) await until(() => t.networkState?.().status === 'online', 'networkState().status to come back to online')
      const echo = protocolOf('echo')
      b.handle(echo, async data => data)
      await until(async () => await a.request(b.peerId, echo, bytes('back'), { timeoutMs }).then(() => true, () => false), 'requests to be answered again after the connections were cut')
      checkEqual([removedStates.length, removedChanges], [0, 0], 'calls of removed onNetworkChange and onConnectionChange handlers')
      offStates?.()
      offChanges?.()
    })
  ]
}
