/**
 * Bytes this page moves on the network, for the catch-up-bytes measure (docs/benchmarks.md: what a
 * joining page receives, as a multiple of the documents' dag-cbor size). Importing this module replaces `globalThis.RTCPeerConnection`
 * and `globalThis.WebSocket` with subclasses that count; main.ts imports it before KiteDB, because
 * @libp2p/webrtc reads `globalThis.RTCPeerConnection` once, when its module is evaluated.
 *
 * - WebRTC: Chromium's `getStats()` of every peer connection the page created, `transport` stats
 *   (bytes of the DTLS packets on the ICE transport: DTLS records carrying SCTP carrying the data
 *   channels, so the libp2p stream bytes plus their framing and the handshakes; not ICE checks,
 *   nor UDP/IP headers). A connection's stats are read when it changes state and just before it
 *   closes (Chromium's report of a closed connection is empty), and once more by `wireBytes()`.
 * - WebSocket: the sizes of the messages sent and received (the relay connection, before and
 *   beside the direct WebRTC connection); WebSocket framing and TCP/IP headers are not counted.
 * - By protocol: the payload of every WebRTC data channel (libp2p opens one per stream, framed by
 *   @libp2p/webrtc's protobuf), attributed to the libp2p protocol its multistream-select header
 *   names (readable there: the data channels are encrypted by DTLS only).
 *
 * Counts run from page load: measure in a fresh page.
 */

/** Byte counts of one direction pair. */
export interface Bytes { received: number, sent: number }

/** What `wireBytes()` reports. */
export interface WireBytes {
  /** WebRTC `transport` stats, summed over every peer connection */
  webrtc: Bytes & { connections: number }
  /** WebRTC `candidate-pair` stats, summed over every pair of every connection (a cross-check) */
  webrtcPairs: Bytes
  /** WebSocket messages */
  websocket: Bytes & { connections: number }
  /** WebRTC data channel payloads by libp2p protocol (`?`: none named yet) */
  byProtocol: Record<string, Bytes & { channels: number }>
}

interface PcCount { transport: Bytes, pairs: Bytes }

const zero = (): Bytes => ({ received: 0, sent: 0 })
const peerConnections = new Map<RTCPeerConnection, PcCount>()
const websocket = { ...zero(), connections: 0 }
const channels: Array<Bytes & { protocol?: string }> = []

/**
 * The protocol a data channel's first messages negotiate: the first `/…\n` line of
 * multistream-select other than its own `/multistream/1.0.0`.
 */
function protocolIn (data: unknown): string | undefined {
  if (!(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data)) return undefined
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  const text = String.fromCharCode(...bytes.subarray(0, 512))
  for (const [, line] of text.matchAll(/(\/[\x21-\x7e]+)\n/g)) if (line !== '/multistream/1.0.0') return line
  return undefined
}

/** Count the payload of `channel` (a stream's data channel) under its protocol. */
function countChannel (channel: RTCDataChannel): void {
  const count: Bytes & { protocol?: string } = zero()
  channels.push(count)
  const name = (data: unknown): void => { if (count.protocol === undefined) count.protocol = protocolIn(data) }
  channel.addEventListener('message', ev => { count.received += sizeOf(ev.data); name(ev.data) })
  const send = channel.send.bind(channel) as (data: unknown) => void
  channel.send = (data: unknown) => { count.sent += sizeOf(data); name(data); send(data) }
}

/** Read `pc`'s stats into its counts (counters only grow: keep the largest reading). */
async function readStats (pc: RTCPeerConnection): Promise<void> {
  const count = peerConnections.get(pc)
  if (count === undefined) return
  let report: RTCStatsReport
  try {
    report = await pc.getStats()
  } catch {
    return
  }
  const transport = zero()
  const pairs = zero()
  report.forEach((s: { type: string, bytesReceived?: number, bytesSent?: number }) => {
    const into = s.type === 'transport' ? transport : s.type === 'candidate-pair' ? pairs : undefined
    if (into === undefined) return
    into.received += s.bytesReceived ?? 0
    into.sent += s.bytesSent ?? 0
  })
  for (const [mine, read] of [[count.transport, transport], [count.pairs, pairs]] as const) {
    mine.received = Math.max(mine.received, read.received)
    mine.sent = Math.max(mine.sent, read.sent)
  }
}

const NativePeerConnection = globalThis.RTCPeerConnection
if (NativePeerConnection !== undefined) {
  class CountedPeerConnection extends NativePeerConnection {
    constructor (configuration?: RTCConfiguration) {
      super(configuration)
      peerConnections.set(this, { transport: zero(), pairs: zero() })
      this.addEventListener('connectionstatechange', () => { void readStats(this) })
      this.addEventListener('datachannel', ev => { countChannel(ev.channel) })
    }

    override createDataChannel (label: string, init?: RTCDataChannelInit): RTCDataChannel {
      const channel = super.createDataChannel(label, init)
      countChannel(channel)
      return channel
    }

    override close (): void {
      // getStats() called before close() still reports the connection; after it, nothing
      void readStats(this)
      super.close()
    }
  }
  globalThis.RTCPeerConnection = CountedPeerConnection
}

/** Bytes of a WebSocket message (string, Blob, ArrayBuffer or view). */
function sizeOf (data: unknown): number {
  if (typeof data === 'string') return new TextEncoder().encode(data).byteLength
  if (data instanceof Blob) return data.size
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength
  return 0
}

const NativeWebSocket = globalThis.WebSocket
class CountedWebSocket extends NativeWebSocket {
  constructor (url: string | URL, protocols?: string | string[]) {
    super(url, protocols)
    websocket.connections++
    this.addEventListener('message', ev => { websocket.received += sizeOf(ev.data) })
  }

  override send (data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    websocket.sent += sizeOf(data)
    super.send(data)
  }
}
globalThis.WebSocket = CountedWebSocket

/** Bytes received and sent since page load, by WebRTC (closed connections included) and WebSocket. */
export async function wireBytes (): Promise<WireBytes> {
  await Promise.all([...peerConnections.keys()].map(readStats))
  const webrtc = { ...zero(), connections: peerConnections.size }
  const webrtcPairs = zero()
  for (const { transport, pairs } of peerConnections.values()) {
    webrtc.received += transport.received
    webrtc.sent += transport.sent
    webrtcPairs.received += pairs.received
    webrtcPairs.sent += pairs.sent
  }
  const byProtocol: WireBytes['byProtocol'] = {}
  for (const { protocol, received, sent } of channels) {
    const p = byProtocol[protocol ?? '?'] ??= { ...zero(), channels: 0 }
    p.received += received
    p.sent += sent
    p.channels++
  }
  return { webrtc, webrtcPairs, websocket: { ...websocket }, byProtocol }
}
