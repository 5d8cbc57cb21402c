/**
 * Fuzzing the decoders of everything that arrives from the network or a link: for random bytes
 * and for mutations of valid encodings, every decoder either returns a valid value or throws a
 * typed `KiteError` — never another error, never a hang — and invalid input changes no state.
 * Correctly signed blocks with hostile contents (HLCs at and past their bounds, field names that
 * are property names of `Object.prototype`, at any depth) are fuzzed too: a replica refuses them
 * with a typed error, or applies them, and writes on either way.
 *
 * Inputs: `KITEDB_FUZZ_RUNS` per decoder and input kind (default 700: about 10,000 inputs in
 * `npm test`); `npm run fuzz` runs 100,000+.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { InvalidBlockError, KiteError } from '../../src/errors.js'
import {
  MAX_CLOCK_AHEAD_MS, MAX_HLC_COUNTER, MAX_HLC_TIME, RESERVED_KEYS, cidOf, createManifest, decode, decodeBlock, decodeChunk, decodeManifest, encode, encodeBlock,
  encodeManifest, formatPublicKey, generateKey, generateSigner, isValidHlcTime, parseAddress
} from '../../src/crdt/index.js'
import {
  Replica, Replicator, decodeBlocksRequest, decodeBlocksResponse, decodeHeadsMessage, decodeSnapshotNode, decodeSnapshotRequest,
  decodeSnapshotResponse, encodeBlocksRequest, encodeBlocksResponse, encodeHeadsMessage, encodeSnapshotNode, encodeSnapshotRequest,
  encodeSnapshotResponse, topicOf, decodeKeepRequest, decodeKeepResponse, encodeKeepRequest, encodeKeepResponse
} from '../../src/sync/index.js'
import { checkKeptNode } from '../../src/keep/index.js'
import { decodeManifest as manifestOf, decodeManifestAsync } from '../../src/crdt/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import { decodeAnnouncement, encodeAnnouncement } from '../../src/db/announce.js'
import { checkQuery } from '../../src/db/query.js'
import { formatShortLink, parseShareLink } from '../../src/share/index.js'
import { base32upper } from 'multiformats/bases/base32'
import { setLogLevel } from '../../src/log.js'
import { MemoryHub } from '../helpers/memory-transport.js'

const RUNS = Number(process.env.KITEDB_FUZZ_RUNS ?? 700)
const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'

const signer = generateSigner()
const key = generateKey()
const big = await encodeBlock({
  v: 1, db: DB, parents: [], hlc: { t: 5, c: 1, r: 'r' },
  ops: Array.from({ length: 3000 }, (_, i) => ({ op: 'put' as const, coll: 'c', id: `d${i}`, set: { text: 'x'.repeat(200), n: i, o: { a: [1, null, true] } } }))
}, { signer })
const smallOps = [{ op: 'put' as const, coll: 'c', id: 'a', set: { t: 'x' }, unset: ['u'], inc: { n: 2 } }, { op: 'del' as const, coll: 'c', id: 'b' }, { op: 'drop' as const, coll: 'z' }]
const block = await encodeBlock({ v: 1, db: DB, parents: [big.cid], hlc: { t: 9, c: 0, r: 'q' }, ops: smallOps }, { signer })
const sealed = await encodeBlock({ v: 1, db: DB, parents: [big.cid], hlc: { t: 9, c: 0, r: 'q' }, ops: smallOps }, { signer, key })
const manifest = encodeManifest(createManifest('todos', [formatPublicKey(signer.publicKey)], key, 1))
const chunk = (big.chunks ?? [])[0]
const stamp = (t: number, i: number): [number, number, string, string, number] => [t, 0, 'r', block.cid.toString(), i]
const page = await encodeSnapshotNode({
  kind: 'page',
  docs: Array.from({ length: 40 }, (_, i) => ({
    coll: 'c',
    id: `d${String(i).padStart(2, '0')}`,
    state: {
      f: { _id: { s: stamp(1, i), v: `d${String(i).padStart(2, '0')}` }, t: { s: stamp(2, i), v: { a: [1, null, 'x'] } }, u: { s: stamp(3, i), u: true }, n: { s: [0, 0, '', '', 0], u: true, inc: { [`${block.cid.toString()}:${i}`]: { n: 2, s: stamp(4, i) } } } },
      ...(i % 3 === 0 ? { tomb: stamp(5, i) } : {})
    }
  })),
  colls: [{ coll: 'c', state: { created: stamp(1, 0), dropped: stamp(0, 1) } }]
})
const covered = await encodeSnapshotNode({ kind: 'covered', cids: [block.cid, big.cid] })
const root = await encodeSnapshotNode({ kind: 'root', db: DB, heads: [block.cid], pages: [page.cid], covered: [covered.cid], docs: 40, blocks: 2 })
/** A short share link's bytes (its fragment is their base32), naming a peer and a known and an unknown relay. */
const appRelays = ['/ip4/127.0.0.1/tcp/9091/ws/p2p/12D3KooWMzFXrB3f3a1EtPxadvut2bgKNmARfjNUkTAESZJaQA5S']
const shortLink = formatShortLink('http://x/', {
  address: `/kite/${DB}`, key: 'q3XjJb6LJ4m5yNq7hPzY0xZ9C0dS5mW4s1F9nQe2aQw', peer: '12D3KooWGzis1nV2uwrSx7vhiArmubHSjvpdiT8uXNbWqu8LwMTS',
  relays: [appRelays[0], '/dns4/relay.example.org/tcp/443/wss/p2p/12D3KooWLG74PGwVyP4VwU2gtPxsvHTtURTeHkZRMKsX2JRKovKD']
}, { relays: appRelays })
const shortLinkBytes = base32upper.baseDecode(shortLink.slice(shortLink.indexOf('#') + 1))

/** Valid encodings to mutate, with the decoder that reads each (and a run divisor for large inputs). */
const decoders: Array<[string, Uint8Array, (bytes: Uint8Array) => unknown, number?]> = [
  ['block', block.bytes, async b => await decodeBlock(b)],
  ['encrypted block', sealed.bytes, async b => await decodeBlock(b, undefined, { key })],
  ['block with chunks', big.bytes, async b => await decodeBlock(b, big.cid), 5],
  ['chunk', chunk.bytes, b => decodeChunk(b, chunk.cid, DB), 5],
  ['manifest', manifest.bytes, b => decodeManifest(b, manifest.cid)],
  ['heads message', encodeHeadsMessage({ heads: [block.cid, big.cid], blocks: [block.bytes] }), decodeHeadsMessage],
  ['blocks request', encodeBlocksRequest({ db: DB, cids: [block.cid], have: [big.cid] }), decodeBlocksRequest],
  ['blocks response', encodeBlocksResponse({ blocks: [block.bytes, manifest.bytes] }), decodeBlocksResponse],
  ['snapshot request', encodeSnapshotRequest({ db: DB, blocks: 12 }), decodeSnapshotRequest],
  ['snapshot response', encodeSnapshotResponse({ root: root.cid, w: signer.publicKey, s: new Uint8Array(64) }), decodeSnapshotResponse],
  ['announcement', encodeAnnouncement({ address: manifest.address, collections: ['todos'], relays: ['/ip4/127.0.0.1/tcp/1/ws'] }), decodeAnnouncement],
  ['sealed announcement', encodeAnnouncement({ address: manifest.address, collections: ['todos'], relays: [] }, { key, peerId: 'P' }), b => decodeAnnouncement(b, { key, peerId: 'P' })],
  ['keep put request', encodeKeepRequest({ t: 'put', db: DB, blocks: [block.bytes, sealed.bytes] }), decodeKeepRequest],
  ['keep snapshot request', encodeKeepRequest({ t: 'snapshot', db: DB, offer: { root: root.cid, w: signer.publicKey, s: new Uint8Array(64), l: new Uint8Array(64), heads: [block.cid], nodes: [root.cid, page.cid], blocks: 2 } }), decodeKeepRequest],
  ['keep state response', encodeKeepResponse({ state: { kept: true, heads: [block.cid], missing: [big.cid], more: false, blocks: 3, snapshot: root.cid } }), b => decodeKeepResponse(b, 'state')],
  ['keep put response', encodeKeepResponse({ put: { stored: [block.cid], refused: [{ cid: big.cid, reason: 'no' }] } }), b => decodeKeepResponse(b, 'put')],
  ['keep refusal', encodeKeepResponse({ error: { code: 'full', message: 'quota' } }), b => decodeKeepResponse(b, 'has')],
  ['short share link', shortLinkBytes, b => parseShareLink(`http://x/#${base32upper.baseEncode(b)}`, { relays: appRelays })],
  ['a keeper\'s check of a sealed block', sealed.bytes, async b => await checkKeptNode(b, manifest.cid.toString(), manifestOf(manifest.bytes, manifest.cid))]
]

/**
 * Asynchronous decoders (snapshot nodes: a page's content is gzip). They are checked against the
 * bytes' own CID, so mutations reach the structure checks. The page's content is mutated too
 * (inside a valid node), so mutations reach its decompression and its content's checks.
 */
const innerPage = decode(page.bytes) as { z: Uint8Array }
const pageWith = (z: Uint8Array): Uint8Array => encode({ v: 1, t: 'page', z })
/** the page's content, JSON text */
const pageContent = new Uint8Array(await new Response(new Blob([innerPage.z as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer())
const asyncDecoders: Array<[string, Uint8Array, (bytes: Uint8Array) => Promise<unknown>]> = [
  ['snapshot root', root.bytes, async b => await decodeSnapshotNode(b, cidOf(b))],
  ['snapshot page', page.bytes, async b => await decodeSnapshotNode(b, cidOf(b))],
  ['snapshot page content (gzip)', innerPage.z, async z => await decodeSnapshotNode(pageWith(z), cidOf(pageWith(z)))],
  ['snapshot page content (JSON text)', pageContent, async c => {
    const node = pageWith(await collectGzip(c))
    await decodeSnapshotNode(node, cidOf(node))
  }],
  ['snapshot covered list', covered.bytes, async b => await decodeSnapshotNode(b, cidOf(b))],
  ['stored manifest (hashed by the platform)', manifest.bytes, async b => await decodeManifestAsync(b, cidOf(b))]
]

/** Random mutations of `valid`: flipped bytes, truncation, extension, spliced slices. */
function mutations (valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map(muts => {
      const b = Uint8Array.from(valid)
      for (const [i, v] of muts) b[i] = v
      return b
    }),
    fc.nat(valid.length).map(n => valid.slice(0, n)),
    fc.uint8Array({ minLength: 1, maxLength: 32 }).map(extra => Uint8Array.from([...valid, ...extra])),
    fc.tuple(fc.nat(valid.length), fc.nat(valid.length), fc.uint8Array({ maxLength: 16 })).map(([a, b, ins]) => {
      const [lo, hi] = a < b ? [a, b] : [b, a]
      return Uint8Array.from([...valid.slice(0, lo), ...ins, ...valid.slice(hi)])
    })
  )
}

/** Decode, asserting totality: a value, or a KiteError; and no hang (under 2 s even for 1 MiB). */
async function total (decode: (bytes: Uint8Array) => unknown, bytes: Uint8Array): Promise<void> {
  const t0 = performance.now()
  try {
    await decode(bytes)
  } catch (err) {
    if (!(err instanceof KiteError)) throw new Error(`not a typed error: ${String(err)}`, { cause: err })
  }
  const ms = performance.now() - t0
  if (ms > 2000) throw new Error(`decoder took ${ms.toFixed(0)} ms`)
}

/** gzip bytes (Node's CompressionStream). */
async function collectGzip (bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await new Response(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer())
}

describe('decoders are total', () => {
  for (const [name, valid, decode, divisor = 1] of decoders) {
    it(`${name}: random bytes and mutations give a value or a KiteError`, async () => {
      await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async bytes => { await total(decode, bytes) }), { numRuns: RUNS })
      await fc.assert(fc.asyncProperty(mutations(valid), async bytes => { await total(decode, bytes) }), { numRuns: Math.ceil(RUNS / divisor) })
    }, 600_000) // `npm run fuzz` decodes thousands of ~600 KB blocks
  }

  for (const [name, valid, decode] of asyncDecoders) {
    it(`${name}: random bytes and mutations give a value or a KiteError`, async () => {
      await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async bytes => { await total(decode, bytes) }), { numRuns: RUNS })
      await fc.assert(fc.asyncProperty(mutations(valid), async bytes => { await total(decode, bytes) }), { numRuns: RUNS })
    }, 600_000)
  }

  it('a page whose content inflates past 1 MiB is refused', async () => {
    const bomb = await collectGzip(new Uint8Array(8 * 1024 * 1024))
    await expect(decodeSnapshotNode(pageWith(bomb), cidOf(pageWith(bomb)))).rejects.toThrow(/over the 1048576-byte limit/)
  })

  it('deeply nested input is refused without exhausting the stack', async () => {
    const nested = new Uint8Array(200_000).fill(0x81) // [[[[…]]]] as dag-cbor
    for (const [, , decode] of decoders) await total(decode, nested)
    const deepJson = new TextEncoder().encode(`{"clocks":[],"colls":[],"docs":${'['.repeat(200_000)}`)
    const node = pageWith(await collectGzip(deepJson))
    await total(async () => await decodeSnapshotNode(node, cidOf(node)), node)
  })

  it('addresses and share links: any string gives a value or a KiteError', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 300 }), async s => {
      await total(() => parseAddress(s), new Uint8Array())
      await total(() => parseShareLink(`http://x/#${s}`), new Uint8Array())
      await total(() => parseShareLink(`http://x/#db=${s}&key=${s}&peer=${s}`), new Uint8Array())
    }), { numRuns: RUNS })
    // text in the short form's alphabet, either case
    await fc.assert(fc.asyncProperty(fc.stringMatching(/^[A-Za-z2-7]{40,200}$/), async s => {
      await total(() => parseShareLink(`http://x/#${s}`, { relays: appRelays }), new Uint8Array())
    }), { numRuns: RUNS })
  })
})

describe('invalid network input changes no state', () => {
  it('garbage and mutated messages on the topic leave a replica exactly as it was', async () => {
    setLogLevel('silent')
    try {
      const hub = new MemoryHub()
      const replica = await Replica.open(new MemoryStorage(), DB)
      await replica.receive(block.bytes) // some state to protect (its parent stays missing)
      const r = new Replicator(replica, hub.join('victim'), { republishMs: 60_000 })
      r.start()
      const evil = hub.join('evil')
      const topic = topicOf(DB)
      const before = JSON.stringify([await replica.heads(), await replica.missing(), await replica.storage.getDocs('c'), await replica.storage.getCollections()])
      const valid = encodeHeadsMessage({ heads: [block.cid], blocks: [block.bytes] })
      // Even the valid message, should a mutation leave it intact, carries a block the replica has.
      await fc.assert(fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 512 }), mutations(valid)), async bytes => {
        await evil.publish(topic, bytes)
      }), { numRuns: Math.min(RUNS, 500) })
      await new Promise(resolve => setTimeout(resolve, 50))
      const after = JSON.stringify([await replica.heads(), await replica.missing(), await replica.storage.getDocs('c'), await replica.storage.getCollections()])
      expect(after).toBe(before)
      r.stop()
    } finally {
      setLogLevel('warn')
    }
  })
})

describe('hostile blocks with valid signatures', () => {
  /** HLC components at, around and far past their bounds, as a hostile writer can sign them. */
  const hlcPart = fc.oneof(
    fc.constantFrom<unknown>(0, 1, MAX_HLC_COUNTER, MAX_HLC_COUNTER + 1, MAX_HLC_TIME, MAX_HLC_TIME + 1, 2 ** 53 - 1, 2 ** 53, 2 ** 64, -1, 0.5, 2n ** 60n, '1', null),
    fc.integer({ min: -10, max: Number.MAX_SAFE_INTEGER }),
    fc.integer({ min: -3, max: 3 }).map(days => Date.now() + MAX_CLOCK_AHEAD_MS + days * 1000)
  )
  /** Field names, poisonous ones often. */
  const name = fc.oneof(fc.constantFrom(...RESERVED_KEYS), fc.string({ maxLength: 8 }), fc.constantFrom('$x', 'a.b', '', '_id', 'then', 'toJSON'))
  /** `{[k]: v}` as an own property, `__proto__` included. */
  const field = (k: string, v: unknown): Record<string, unknown> => Object.defineProperty({}, k, { value: v, enumerable: true, configurable: true, writable: true })
  const nested = (k: string, depth: number): unknown => depth === 0 ? 1 : field(k, nested(k, depth - 1))
  const op = fc.tuple(fc.constantFrom('set', 'nested', 'inc', 'unset'), name, fc.integer({ min: 1, max: 3 })).map(([kind, k, depth]) =>
    kind === 'set'
      ? { op: 'put', coll: 'c', id: 'x', set: field(k, 1) }
      : kind === 'nested'
        ? { op: 'put', coll: 'c', id: 'x', set: { v: nested(k, depth) } }
        : kind === 'inc' ? { op: 'put', coll: 'c', id: 'x', inc: field(k, 1) } : { op: 'put', coll: 'c', id: 'x', unset: [k] })
  /** Whether every key the op writes is one a replica must accept: field names by their rules, nested keys unless reserved. */
  const acceptable = (o: Record<string, unknown>): boolean => {
    const fields: string[] = [...Object.keys(o.set ?? {}), ...Object.keys(o.inc ?? {}), ...(o.unset as string[] | undefined ?? [])]
    const nestedKeys: string[] = []
    const walk = (v: unknown): void => { if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) { nestedKeys.push(k); walk(x) } }
    for (const v of Object.values(o.set ?? {})) walk(v)
    return fields.every(k => k.length > 0 && k !== '_id' && !k.startsWith('$') && !k.includes('.') && !RESERVED_KEYS.has(k)) &&
      nestedKeys.every(k => !RESERVED_KEYS.has(k))
  }

  it('a replica refuses them with a typed error or applies them, never crashes, and keeps writing', async () => {
    setLogLevel('silent')
    try {
      await fc.assert(fc.asyncProperty(hlcPart, hlcPart, op, async (t, c, o) => {
        let body: Uint8Array
        try {
          body = encode({ db: DB, parents: [], hlc: [t, c, 'evil'], ops: [o] })
        } catch {
          return // not encodable as dag-cbor: nothing a peer can send
        }
        const bytes = encode({ v: 1, body, w: signer.publicKey, s: await signer.sign(body) })
        const replica = await Replica.open(new MemoryStorage(), DB)
        const now = Date.now()
        const outcome = await replica.receive(bytes).then(() => 'applied', (err: unknown) => err)
        if (outcome !== 'applied') expect(outcome).toBeInstanceOf(InvalidBlockError)
        const fine = isValidHlcTime(t, c) && (t as number) <= now + MAX_CLOCK_AHEAD_MS && acceptable(o)
        expect(outcome === 'applied', `t=${String(t)} c=${String(c)} ${JSON.stringify(o)}`).toBe(fine)
        const own = await replica.commit([{ op: 'put', coll: 'c', id: 'mine', set: { n: 1 } }])
        expect(own?.applied).toBe(true)
      }), { numRuns: RUNS })
    } finally {
      setLogLevel('warn')
    }
  })

  it('queries with any keys, poisonous ones included, compile or give a ValidationError', async () => {
    const key = fc.oneof(name, fc.constantFrom('$where', '$expr', '$and', '$or', '$regex', '$in', '$function', '$eq', '$gt', '$elemMatch', '$not', '$options'))
    const value = fc.letrec(tie => ({
      v: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 1 }), fc.constantFrom(/a+/, /(a)\1/, () => true), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(key, tie('v'), { maxKeys: 3 }))
    })).v
    const { compileQuery } = await import('../../src/db/planner.js')
    await fc.assert(fc.asyncProperty(fc.dictionary(key, value, { maxKeys: 4 }), async q => {
      await total(() => { checkQuery(q); compileQuery(q) }, new Uint8Array())
    }), { numRuns: RUNS })
  })
})
