/**
 * Export a kept database as a CAR file (Content Addressable aRchive, CARv1, via @ipld/car), so any
 * IPFS node or pinning service can hold a copy: its manifest, every block and chunk as kept
 * (sealed ones stay sealed), and its snapshot's nodes, each under its own CID. The roots are the
 * kept heads (the manifest's CID when it has none). Blocks are streamed from LevelDB and written
 * with the writer's backpressure: memory stays bounded whatever the size.
 */
import { createWriteStream } from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { CarWriter } from '@ipld/car/writer'
import { NotFoundError } from '../errors.js'
import { type CID, parseCid } from '../crdt/index.js'
import { type KeepStore } from './store.js'

/** What `exportCar` wrote. */
export interface CarExport {
  /** the CAR's roots (the heads) */
  roots: string[]
  /** blocks written, manifest and snapshot nodes included */
  blocks: number
}

/**
 * Write database `db` (a manifest CID string) kept in `store` to the CAR file `file`. Rejects
 * with `NotFoundError` when it is not kept.
 */
export async function exportCar (store: KeepStore, db: string, file: string): Promise<CarExport> {
  const manifest = await store.manifest(db)
  const dbCid = parseCid(db)
  if (manifest === undefined || dbCid === undefined) throw new NotFoundError(`database ${db} is not kept in this store`)
  const state = await store.state(db)
  const roots: CID[] = state.heads.length > 0 ? state.heads : [dbCid]
  const { writer, out } = CarWriter.create(roots)
  let blocks = 0
  const writing = (async () => {
    try {
      await writer.put({ cid: dbCid, bytes: manifest })
      blocks++
      for await (const [cid, bytes] of store.blocks(db)) {
        await writer.put({ cid: parseCid(cid) as CID, bytes })
        blocks++
      }
      for await (const [cid, bytes] of store.snapshotNodes(db)) {
        await writer.put({ cid: parseCid(cid) as CID, bytes })
        blocks++
      }
    } finally {
      await writer.close()
    }
  })()
  await Promise.all([pipeline(Readable.from(out), createWriteStream(file)), writing])
  return { roots: roots.map(String), blocks }
}
