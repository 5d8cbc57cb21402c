/**
 * patches/@libp2p+yamux+8.0.3.patch: a yamux receiver grants more window once half of it is used
 * (as go-yamux and rust-yamux do), not with a window update frame after every data frame it
 * receives. Real muxers over a pair of in-memory connections: the frames each side sends are
 * counted, and flow control must still carry far more than one window.
 */
import { describe, expect, it } from 'vitest'
import { yamux } from '@libp2p/yamux'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { type MultiaddrConnection, type Stream } from '@libp2p/interface'

/** Count the `send` calls (one a frame) made on `conn` from now on. */
function countSends (conn: MultiaddrConnection): { count: number } {
  const counter = { count: 0 }
  const send = conn.send.bind(conn)
  conn.send = (data: Parameters<typeof send>[0]) => { counter.count++; return send(data) }
  return counter
}

async function muxedPair (): Promise<{ client: Stream, server: Stream, serverSends: { count: number } }> {
  const [outbound, inbound] = multiaddrConnectionPair()
  const clientMuxer = yamux()().createStreamMuxer(outbound)
  const serverMuxer = yamux()().createStreamMuxer(inbound)
  const accepted = new Promise<Stream>(resolve => { serverMuxer.addEventListener('stream', evt => { resolve(evt.detail) }, { once: true }) })
  const client = await clientMuxer.createStream()
  client.send(new Uint8Array([0])) // opens the stream on the other side
  const server = await accepted
  await new Promise(resolve => setTimeout(resolve, 20))
  return { client, server, serverSends: countSends(inbound) }
}

describe('yamux window updates (patched)', () => {
  it('a receiver of many small messages sends no window update until half its window is used', async () => {
    const { client, server, serverSends } = await muxedPair()
    let received = 0
    server.addEventListener('message', evt => { received += evt.data.byteLength })
    for (let i = 0; i < 200; i++) client.send(new Uint8Array(100)) // 20,000 bytes: a twelfth of the 256 KiB window
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(received).toBe(1 + 200 * 100)
    expect(serverSends.count).toBe(0) // unpatched: a window update frame per data frame
  })

  it('flow control still carries many windows of data', async () => {
    const { client, server, serverSends } = await muxedPair()
    let received = 0
    const all = 4 * 2 ** 20
    const done = new Promise<void>(resolve => {
      server.addEventListener('message', evt => {
        received += evt.data.byteLength
        if (received === 1 + all) resolve()
      })
    })
    for (let sent = 0; sent < all; sent += 4096) {
      if (!client.send(new Uint8Array(4096))) await new Promise(resolve => { client.addEventListener('drain', resolve, { once: true }) })
    }
    await done
    expect(received).toBe(1 + all)
    expect(serverSends.count).toBeGreaterThan(0) // the window was granted again
    expect(serverSends.count).toBeLessThan(all / 4096 / 4)
  }, 30_000)
})
