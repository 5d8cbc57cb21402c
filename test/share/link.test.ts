import { describe, expect, it } from 'vitest'
import { formatShareLink, parseShareLink, renderQrSvg, renderQrDataUrl, InvalidAddressError } from '../../src/index.js'

const ADDRESS = '/kite/bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const RELAY = '/ip4/127.0.0.1/tcp/9091/ws/p2p/12D3KooWMzFXrB3f3a1EtPxadvut2bgKNmARfjNUkTAESZJaQA5S'
const PEER = '12D3KooWGzis1nV2uwrSx7vhiArmubHSjvpdiT8uXNbWqu8LwMTS'

describe('share links', () => {
  it('round-trip address, relays and peer in the fragment, readable', () => {
    const link = formatShareLink('http://127.0.0.1:5173/?q=1#ignored', { address: ADDRESS, relays: [RELAY, RELAY + 'x'], peer: PEER })
    expect(link).toBe(`http://127.0.0.1:5173/?q=1#db=${ADDRESS}&relay=${RELAY}&relay=${RELAY}x&peer=${PEER}`)
    expect(parseShareLink(link)).toEqual({ address: ADDRESS, relays: [RELAY, RELAY + 'x'], peer: PEER })
    expect(parseShareLink(link.slice(link.indexOf('#')))).toEqual(parseShareLink(link))
  })

  it('accepts a peer-only link and a bare CID', () => {
    expect(parseShareLink(`#peer=${PEER}&relay=${RELAY}`)).toEqual({ relays: [RELAY], peer: PEER })
    expect(parseShareLink(`#db=${ADDRESS.slice(6)}`)).toEqual({ address: ADDRESS, relays: [] })
  })

  it('returns undefined for a URL that carries no database, and throws for a bad one', () => {
    expect(parseShareLink('http://x/')).toBeUndefined()
    expect(parseShareLink('http://x/#something')).toBeUndefined()
    expect(() => parseShareLink('#db=/kite/nope')).toThrow(InvalidAddressError)
    expect(() => parseShareLink('#peer=not!a!peer')).toThrow(InvalidAddressError)
    expect(() => formatShareLink('http://x/', { address: 'nope', relays: [] })).toThrow(InvalidAddressError)
  })

  it('renders the link as a QR code (SVG and PNG)', async () => {
    const link = formatShareLink('http://127.0.0.1:5173/', { address: ADDRESS, relays: [RELAY], peer: PEER })
    const svg = await renderQrSvg(link)
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg).toContain('width="256"')
    expect(await renderQrSvg(link)).toBe(svg) // deterministic
    expect(await renderQrSvg(link + 'x')).not.toBe(svg)
    expect(await renderQrDataUrl(link)).toMatch(/^data:image\/png;base64,/)
    await expect(renderQrSvg('x'.repeat(5000))).rejects.toThrow()
  })
})
