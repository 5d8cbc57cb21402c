import { describe, expect, it } from 'vitest'
import QRCode from 'qrcode'
import { formatShareLink, formatShortLink, parseShareLink, renderQrSvg, renderQrDataUrl, InvalidAddressError } from '../../src/index.js'

const ADDRESS = '/kite/bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'
const RELAY = '/ip4/127.0.0.1/tcp/9091/ws/p2p/12D3KooWMzFXrB3f3a1EtPxadvut2bgKNmARfjNUkTAESZJaQA5S'
const PEER = '12D3KooWGzis1nV2uwrSx7vhiArmubHSjvpdiT8uXNbWqu8LwMTS'
const KEY = 'q3XjJb6LJ4m5yNq7hPzY0xZ9C0dS5mW4s1F9nQe2aQw'
const LAN_RELAYS = [
  '/ip4/192.168.1.20/tcp/9091/tls/ws/p2p/12D3KooWMzFXrB3f3a1EtPxadvut2bgKNmARfjNUkTAESZJaQA5S',
  '/ip4/192.168.1.20/tcp/9092/tls/ws/p2p/12D3KooWGzis1nV2uwrSx7vhiArmubHSjvpdiT8uXNbWqu8LwMTS'
]
const qrVersion = (text: string): number => QRCode.create(text, { errorCorrectionLevel: 'M' }).version

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

describe('short share links', () => {
  const base = 'https://192.168.1.20:5173/'

  it('carry the address and key in uppercase base32, and the app\'s relays as nothing', () => {
    const link = formatShortLink(`${base}#old`, { address: ADDRESS, key: KEY, relays: LAN_RELAYS }, { relays: LAN_RELAYS })
    expect(link).toMatch(/^https:\/\/192\.168\.1\.20:5173\/#[A-Z2-7]{104}$/)
    expect(parseShareLink(link, { relays: LAN_RELAYS })).toEqual({ address: ADDRESS, key: KEY, relays: LAN_RELAYS })
    // the fragment alone, and in lower case (as some scanners hand it over)
    expect(parseShareLink(link.slice(link.indexOf('#')).toLowerCase(), { relays: LAN_RELAYS })).toEqual({ address: ADDRESS, key: KEY, relays: LAN_RELAYS })
    // read by an app with other relays, the link names those
    expect(parseShareLink(link, { relays: [RELAY] })?.relays).toEqual([RELAY])
  })

  it('are a third as long as the long form, and fit a version-6 QR code instead of version 15', () => {
    const long = formatShareLink(base, { address: ADDRESS, key: KEY, relays: LAN_RELAYS, peer: PEER })
    const short = formatShortLink(base, { address: ADDRESS, key: KEY, relays: LAN_RELAYS }, { relays: LAN_RELAYS })
    expect(long.length).toBe(395)
    expect(short.length).toBe(131)
    expect(qrVersion(long)).toBe(15)
    expect(qrVersion(short)).toBe(6)
    // the base32 part goes in alphanumeric mode
    const segments = QRCode.create(short, { errorCorrectionLevel: 'M' }).segments as Array<{ mode: { id: string }, data: unknown }>
    expect(segments.at(-1)?.mode.id).toBe('Alphanumeric')
  })

  it('name relays the app knows by index, others by their text, and round-trip a peer id', () => {
    const stranger = '/dns4/relay.example.org/tcp/443/wss/p2p/12D3KooWLG74PGwVyP4VwU2gtPxsvHTtURTeHkZRMKsX2JRKovKD'
    const info = { address: ADDRESS, key: KEY, relays: [LAN_RELAYS[1], stranger], peer: PEER }
    const link = formatShortLink(base, info, { relays: LAN_RELAYS })
    expect(parseShareLink(link, { relays: LAN_RELAYS })).toEqual(info)
    // an index the reading app does not have is dropped; the text relay stays
    expect(parseShareLink(link, { relays: [] })?.relays).toEqual([stranger])
    const peerOnly = formatShortLink(base, { relays: [], peer: PEER, key: KEY })
    expect(parseShareLink(peerOnly)).toEqual({ relays: [], peer: PEER, key: KEY })
    const plain = formatShortLink(base, { address: ADDRESS, relays: [] })
    expect(parseShareLink(plain)).toEqual({ address: ADDRESS, relays: [] })
  })

  it('carry an address of another kind of CID whole', () => {
    const raw = '/kite/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy' // raw codec
    const link = formatShortLink(base, { address: raw, relays: [] })
    expect(parseShareLink(link)).toEqual({ address: raw, relays: [] })
  })

  it('refuse malformed ones with InvalidAddressError', () => {
    const link = formatShortLink(base, { address: ADDRESS, key: KEY, relays: [] })
    const fragment = link.slice(link.indexOf('#') + 1)
    expect(() => parseShareLink(`#${fragment.slice(0, -8)}`)).toThrow(InvalidAddressError) // cut short
    expect(() => parseShareLink(`#${fragment}AAAAAAAA`)).toThrow(InvalidAddressError) // bytes left over
    expect(() => parseShareLink(`#Q${fragment.slice(1)}`)).toThrow(/format/) // another version
    expect(() => parseShareLink(`#E${'A'.repeat(60)}`)).toThrow(/names no database/)
    expect(() => formatShortLink(base, { address: 'nope', relays: [] })).toThrow(InvalidAddressError)
    expect(() => formatShortLink(base, { address: ADDRESS, key: 'short', relays: [] })).toThrow(InvalidAddressError)
  })
})
