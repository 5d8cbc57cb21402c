/**
 * The WebRTC dial race behind catch-up's dead direct connections, reproduced on purpose with real
 * libp2p nodes and real WebRTC (node-datachannel) in Node.
 *
 * @libp2p/webrtc's initiator opens an `init` data channel, reads ICE candidates until it learns
 * the peer connection is "connected", then waits for `init` to open, closes it and upgrades. The
 * recipient closes `init` as soon as its muxer sees it. When the initiator learns "connected"
 * late (a busy page), `init` has already opened *and closed*: the unpatched initiator then waits
 * for an `open` event that never comes until its dial times out, while the recipient holds a
 * connection whose streams never negotiate. patches/@libp2p+webrtc+6.0.33.patch (applied by
 * `npm ci`) makes the initiator accept an `init` channel that opened and is already closed.
 *
 * Here every peer connection of this process hears "connected" `HOLD_MS` late, and a recipient
 * closes `init` the moment it arrives: the race happens every time, not in a third of the runs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { RTCPeerConnection } from 'node-datachannel/polyfill'
import { type PeerNode, createPeerNode } from '../../src/net/index.js'
import { useRelay } from '../helpers/relay.js'

const relay = useRelay()
const nodes: PeerNode[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

const HOLD_MS = 500
const ECHO = '/kitedb-test/echo/1'

/** For each initiator's peer connection: its `init` channel's state when it was told "connected". */
const initStateWhenConnected: string[] = []

interface Patched { dispatchEvent: EventTarget['dispatchEvent'], connectionState: PropertyDescriptor, createDataChannel: RTCPeerConnection['createDataChannel'] }
let original: Patched | undefined

beforeAll(() => {
  const proto = RTCPeerConnection.prototype
  /* eslint-disable @typescript-eslint/unbound-method -- the prototype's own methods, called with .call(this) and put back after */
  original = {
    dispatchEvent: proto.dispatchEvent,
    connectionState: Object.getOwnPropertyDescriptor(proto, 'connectionState') as PropertyDescriptor,
    createDataChannel: proto.createDataChannel
  }
  /* eslint-enable @typescript-eslint/unbound-method */
  const { dispatchEvent, connectionState, createDataChannel } = original
  const released = new WeakSet<object>()
  const initChannel = new WeakMap<object, RTCDataChannel>()
  const nativeState = (pc: object): string => connectionState.get?.call(pc) as string
  Object.defineProperty(proto, 'connectionState', {
    configurable: true,
    get (this: object) {
      const state = nativeState(this)
      return state === 'connected' && !released.has(this) ? 'connecting' : state
    }
  })
  proto.createDataChannel = function (this: RTCPeerConnection, label: string, init?: RTCDataChannelInit) {
    const channel = createDataChannel.call(this, label, init)
    if (label === 'init') initChannel.set(this, channel)
    return channel
  }
  proto.dispatchEvent = function (this: RTCPeerConnection, event: Event): boolean {
    if (event.type === 'connectionstatechange' && nativeState(this) === 'connected' && !released.has(this)) {
      setTimeout(() => {
        released.add(this)
        const init = initChannel.get(this)
        if (init !== undefined) initStateWhenConnected.push(init.readyState)
        dispatchEvent.call(this, event)
      }, HOLD_MS)
      return true
    }
    const result = dispatchEvent.call(this, event)
    const channel = (event as Event & { channel?: RTCDataChannel }).channel
    if (event.type === 'datachannel' && channel?.label === 'init') channel.close() // the recipient's muxer does this on adoption
    return result
  }
})

afterAll(() => {
  if (original === undefined) return
  const proto = RTCPeerConnection.prototype
  proto.dispatchEvent = original.dispatchEvent
  proto.createDataChannel = original.createDataChannel
  Object.defineProperty(proto, 'connectionState', original.connectionState)
})

describe('WebRTC dial: the init channel race', () => {
  it('an initiator that learns "connected" after the recipient closed the init channel still gets a working connection', async () => {
    const [na, nb] = await Promise.all([createPeerNode({ relays: [relay.addr] }), createPeerNode({ relays: [relay.addr] })])
    nodes.push(na, nb)
    await nb.handle(ECHO, async stream => {
      const lp = lpStream(stream)
      await lp.write(await lp.read())
      await stream.close()
    }, { runOnLimitedConnection: true })
    const target = multiaddr(`${relay.addr}/p2p-circuit/webrtc/p2p/${nb.peerId.toString()}`)
    initStateWhenConnected.length = 0
    // Unpatched, this dial waits for an `open` that never comes and fails when the signal fires.
    const conn = await na.dial(target, { signal: AbortSignal.timeout(8000) })
    expect(initStateWhenConnected).toEqual(['closed']) // the race did happen
    expect(conn.limits).toBeUndefined() // a direct connection, not the relayed one
    // Both sides can open streams on it.
    const lp = lpStream(await conn.newStream(ECHO, { signal: AbortSignal.timeout(5000) }))
    await lp.write(new Uint8Array([4, 2]))
    expect([...(await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()]).toEqual([4, 2])
  }, 30_000)
})
