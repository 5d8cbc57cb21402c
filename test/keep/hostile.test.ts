/**
 * Bad input to a keeper, over real libp2p: every refusal has a reason, and nothing refused is
 * stored. Requests come from a raw peer speaking the keep protocol itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type CID, cidOf, createManifest, encode, encodeBlock, encodeManifest, formatPublicKey, generateKey, generateSigner, linkSigner
} from '../../src/crdt/index.js'
import { Libp2pTransport, createPeerNode, parseRelays } from '../../src/net/index.js'
import {
  KEEP_PROTOCOL, type KeepRequest, type KeepResponse, type PutResult, decodeKeepResponse, encodeHeadsMessage, encodeKeepRequest, topicOf
} from '../../src/sync/index.js'
import { type InProcessKeeper, keeperAndPeer } from './helpers.js'

let k: InProcessKeeper
let transport: Libp2pTransport
let close: () => Promise<void>

beforeAll(async () => {
  ({ keeper: k, transport, close } = await keeperAndPeer({ limits: { maxPerPeer: 64 }, network: { requestsPerSecond: 2000, requestBurst: 2000 } }))
})
afterAll(async () => { await close() })

async function ask (req: KeepRequest): Promise<KeepResponse> {
  const keeper = k.node?.peerId.toString() as string
  return decodeKeepResponse(await transport.request(keeper, KEEP_PROTOCOL, encodeKeepRequest(req), { timeoutMs: 10_000 }), req.t)
}

const block = async (db: string, options: Parameters<typeof encodeBlock>[1], parents: CID[] = []) =>
  await encodeBlock({ v: 1, db, parents, hlc: { t: Date.now(), c: 0, r: 'r' }, ops: [{ op: 'put', coll: 'todos', id: String(Math.random()), set: { title: 'x' } }] }, options)

describe('a keeper given bad input', () => {
  it('refuses to keep a database whose manifest cannot be had, with the reason', async () => {
    const { cid } = encodeManifest(createManifest('nobody serves this', ['*'], generateKey()))
    expect(await ask({ t: 'keep', db: cid.toString() })).toEqual({ error: { code: 'manifest-unavailable', message: expect.stringMatching(/manifest/) as unknown } })
    expect(await ask({ t: 'keep', db: cid.toString(), manifest: encode({ not: 'it' }) })).toEqual({ error: { code: 'refused', message: expect.stringMatching(/not the manifest/) as unknown } })
    expect(await ask({ t: 'state', db: cid.toString() })).toMatchObject({ state: { kept: false } })
  })

  it('keeps at most its per-peer number of databases for one peer asking for hundreds', async () => {
    const before = k.keeping?.store.total.databases as number
    const outcomes: string[] = []
    for (let i = 0; i < 300; i++) {
      const { bytes, cid } = encodeManifest(createManifest(`db ${i}`, ['*']))
      const r = await ask({ t: 'keep', db: cid.toString(), manifest: bytes })
      outcomes.push('ok' in r ? 'ok' : 'error' in r ? r.error.code : 'other')
    }
    expect(outcomes.filter(o => o === 'ok').length + before).toBe(64)
    expect(outcomes.filter(o => o === 'full')).toHaveLength(300 - (64 - before))
    expect(k.keeping?.store.total.databases).toBe(64)
  })

  it('refuses junk, oversize, foreign, unlisted-writer and forged blocks, and chunks nothing names, each with its reason; stores none', async () => {
    const k2 = k // the per-peer quota is spent above: use a fresh peer id for the kept databases below
    const other = await createPeerNode({ relays: [k2.addr], webrtc: false })
    const t2 = new Libp2pTransport(other, { relays: parseRelays([k2.addr]), directConnections: false })
    const keeper = k2.node?.peerId.toString() as string
    const ask2 = async (req: KeepRequest): Promise<KeepResponse> => decodeKeepResponse(await t2.request(keeper, KEEP_PROTOCOL, encodeKeepRequest(req), { timeoutMs: 10_000 }), req.t)
    try {
      const writer = generateSigner()
      const listedBytes = encodeManifest(createManifest('listed', [formatPublicKey(writer.publicKey)], generateKey()))
      const linkKey = generateKey()
      const linkBytes = encodeManifest(createManifest('link', ['*'], linkKey))
      for (const m of [listedBytes, linkBytes]) expect(await ask2({ t: 'keep', db: m.cid.toString(), manifest: m.bytes })).toEqual({ ok: true })
      const listed = listedBytes.cid.toString()
      const link = linkBytes.cid.toString()
      const bytesBefore = k2.keeping?.store.total.bytes as number

      const junk = new Uint8Array(300).fill(7)
      const oversize = encode({ v: 1, box: new Uint8Array(1024 * 1024 + 10) })
      const foreign = await block(link, { signer: writer, key: linkKey, link: linkSigner(linkKey) })
      const unlisted = await block(listed, { signer: generateSigner(), key: generateKey() })
      const plainInEncrypted = await block(listed, { signer: writer })
      const forged = await block(link, { signer: generateSigner(), key: generateKey() })
      const wrongLink = await block(link, { signer: generateSigner(), key: generateKey(), link: linkSigner(generateKey()) })
      const orphanChunk = encode({ v: 1, box: new Uint8Array(64).fill(1) })
      const put = async (db: string, blocks: Uint8Array[]): Promise<PutResult> => {
        const r = await ask2({ t: 'put', db, blocks })
        if (!('put' in r)) throw new Error(`not a put answer: ${JSON.stringify(r)}`)
        return r.put
      }
      const a = await put(listed, [junk, oversize, foreign.bytes, unlisted.bytes, plainInEncrypted.bytes, orphanChunk])
      expect(a.stored).toEqual([])
      const reasons = new Map(a.refused.map(r => [r.cid.toString(), r.reason]))
      expect(reasons.get(cidOf(junk).toString())).toMatch(/not dag-cbor|not a map/)
      expect(reasons.get(cidOf(oversize).toString())).toMatch(/over the 1048576-byte limit/)
      expect(reasons.get(foreign.cid.toString())).toMatch(/belongs to database/)
      expect(reasons.get(unlisted.cid.toString())).toMatch(/not on the write list/)
      expect(reasons.get(plainInEncrypted.cid.toString())).toMatch(/not encrypted/)
      expect(reasons.get(cidOf(orphanChunk).toString())).toMatch(/no block kept here names this chunk/)
      const b = await put(link, [forged.bytes, wrongLink.bytes])
      expect(b.stored).toEqual([])
      expect(b.refused.map(r => r.reason)).toEqual([expect.stringMatching(/no link signature/), expect.stringMatching(/link signature does not match/)])
      expect(k2.keeping?.store.total.bytes).toBe(bytesBefore)
      expect(await ask2({ t: 'has', db: link, cids: [forged.cid, wrongLink.cid] })).toEqual({ has: [false, false] })

      // A link holder's block is kept; the relay's gossip check refuses the forged one inline, passes the real one.
      const real = await block(link, { signer: generateSigner(), key: linkKey, link: linkSigner(linkKey) })
      expect((await put(link, [real.bytes])).stored.map(String)).toEqual([real.cid.toString()])
      const check = k2.keeping?.keeper as NonNullable<typeof k2.keeping>['keeper']
      expect(await check.checkGossip(topicOf(link), encodeHeadsMessage({ heads: [forged.cid], blocks: [forged.bytes] }), 'x')).toBe(false)
      expect(await check.checkGossip(topicOf(link), encodeHeadsMessage({ heads: [real.cid], blocks: [real.bytes] }), 'x')).toBe(true)
      // Topics of databases not kept here, and announcements, are not its to judge.
      expect(await check.checkGossip('/kitedb/1/announce/12D3KooWx', encode({ v: 1, anything: true }), 'x')).toBe(true)
      expect(await check.checkGossip(topicOf(encodeManifest(createManifest('elsewhere', ['*'])).cid.toString()), encodeHeadsMessage({ heads: [forged.cid], blocks: [forged.bytes] }), 'x')).toBe(true)
      // A put for a database not kept here is refused whole.
      expect(await ask2({ t: 'put', db: encodeManifest(createManifest('n', ['*'])).cid.toString(), blocks: [real.bytes] })).toMatchObject({ error: { code: 'not-kept' } })
      // A snapshot offer signed by someone without the link is refused.
      const root = cidOf(encode({ v: 1, t: 'root' }))
      const signer = generateSigner()
      const { signSnapshotRoot } = await import('../../src/sync/index.js')
      const signed = await signSnapshotRoot(root, signer)
      expect(await ask2({ t: 'snapshot', db: link, offer: { root, ...signed, heads: [real.cid], nodes: [root], blocks: 1 } })).toMatchObject({ error: { code: 'refused', message: expect.stringMatching(/link signature/) as unknown } })
    } finally {
      t2.close()
      await other.stop()
    }
  })
})
