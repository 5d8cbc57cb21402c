/**
 * Fuzzing the decoders of everything that arrives from the network or a link (issue 6): for random
 * bytes and for mutations of valid encodings, every decoder either returns a valid value or throws
 * a typed `KiteError` — never another error, never a hang — and invalid input changes no state.
 *
 * Inputs: `KITEDB_FUZZ_RUNS` per decoder and input kind (default 700: about 10,000 inputs in
 * `npm test`); `npm run fuzz` runs 100,000+.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { KiteError } from '../../src/errors.js'
import {
  cidOf, createManifest, decode, decodeBlock, decodeChunk, decodeManifest, encode, encodeBlock, encodeManifest, formatPublicKey, generateKey, generateSigner, parseAddress
} from '../../src/crdt/index.js'
import {
  Replica, Replicator, decodeBlocksRequest, decodeBlocksResponse, decodeHeadsMessage, decodeSnapshotNode, decodeSnapshotRequest,
  decodeSnapshotResponse, encodeBlocksRequest, encodeBlocksResponse, encodeHeadsMessage, encodeSnapshotNode, encodeSnapshotRequest,
  encodeSnapshotResponse, topicOf
} from '../../src/sync/index.js'
import { MemoryStorage } from '../../src/store/index.js'
import { decodeAnnouncement, encodeAnnouncement } from '../../src/db/announce.js'
import { parseShareLink } from '../../src/share/index.js'
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
const chunk = (big.chunks ?? [])[0] as { cid: ReturnType<typeof cidOf>, bytes: Uint8Array }
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
  ['announcement', encodeAnnouncement({ address: manifest.address, collections: ['todos'], relays: ['/ip4/127.0.0.1/tcp/1/ws'] }), decodeAnnouncement]
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
  ['snapshot covered list', covered.bytes, async b => await decodeSnapshotNode(b, cidOf(b))]
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
