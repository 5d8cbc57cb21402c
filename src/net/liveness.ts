/**
 * Liveness of a peer node's connections (docs/design.md, "Staying connected"), in place of
 * libp2p's connection monitor, which pings every connection at one pace. Each ping opens a
 * stream, and on a direct WebRTC connection a stream is a data channel, opened and closed: in a
 * room of ten, pinging nine peers every 5 s was much of what an idle page did. So:
 *
 * - relay connections, and every connection that is not direct WebRTC, are pinged every
 *   `intervalMs`: a relay cut off by the network is still noticed within about
 *   `intervalMs + timeout`;
 * - direct WebRTC connections only every `directEvery`-th time, staggered: WebRTC watches them
 *   too (a peer connection whose ICE consent lapses fails, and is closed);
 * - a ping that fails or takes longer than the adaptive timeout (between `timeout`'s bounds,
 *   from the round trips measured) aborts the connection, as libp2p's monitor does; a peer that
 *   does not speak ping answered, so it is alive.
 */
import { type Connection, type Libp2p } from '@libp2p/interface'
import { AdaptiveTimeout, byteStream } from '@libp2p/utils'

/** The ping protocol (@libp2p/ping, which every peer node runs and answers). */
const PING_PROTOCOL = '/ipfs/ping/1.0.0'
const PING_BYTES = 32

/** Options of `monitorConnections`. */
export interface LivenessOptions {
  /** how often relay (and every non-WebRTC) connection is pinged, ms */
  intervalMs: number
  /** a direct WebRTC connection is pinged every this many intervals (≥ 1) */
  directEvery: number
  /** bounds of the adaptive ping timeout, ms */
  timeout: { minTimeout: number, maxTimeout: number }
}

/** Whether `conn` is a direct WebRTC connection (not a circuit through a relay). */
function isDirectWebRTC (conn: Connection): boolean {
  const addr = conn.remoteAddr.toString()
  return conn.limits == null && addr.includes('/webrtc') && !addr.includes('/p2p-circuit/p2p/')
}

/** Ping `node`'s connections as the file's doc says until the returned function is called. */
export function monitorConnections (node: Libp2p, options: LivenessOptions): () => void {
  const timeout = new AdaptiveTimeout(options.timeout)
  const stopping = new AbortController()
  /** per connection: intervals since it was last pinged (a direct one starts at a random point, so their pings spread) */
  const since = new WeakMap<Connection, number>()
  const ping = async (conn: Connection): Promise<void> => {
    const signal = timeout.getTimeoutSignal({ signal: stopping.signal })
    let stream
    try {
      stream = await conn.newStream(PING_PROTOCOL, { signal, runOnLimitedConnection: true })
      const bytes = byteStream(stream)
      const start = Date.now()
      await Promise.all([bytes.write(crypto.getRandomValues(new Uint8Array(PING_BYTES)), { signal }), bytes.read({ bytes: PING_BYTES, signal })])
      conn.rtt = Date.now() - start
      await stream.close({ signal })
    } catch (err) {
      stream?.abort(err as Error)
      // a peer that says it does not speak ping answered: it is there
      if ((err as Error).name === 'UnsupportedProtocolError' || stopping.signal.aborted) return
      conn.abort(err as Error)
    } finally {
      timeout.cleanUp(signal)
    }
  }
  const timer = setInterval(() => {
    for (const conn of node.getConnections()) {
      if (conn.status !== 'open') continue
      if (isDirectWebRTC(conn)) {
        const n = (since.get(conn) ?? Math.floor(Math.random() * options.directEvery)) + 1
        if (n < options.directEvery) {
          since.set(conn, n)
          continue
        }
        since.set(conn, 0)
      }
      void ping(conn)
    }
  }, options.intervalMs)
  return () => {
    clearInterval(timer)
    stopping.abort()
  }
}
