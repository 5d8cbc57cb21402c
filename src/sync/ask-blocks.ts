/**
 * Asking a peer for blocks over `/kitedb/1/blocks` (docs/design.md, "Replication"): the request,
 * the budget of its answer on a relayed circuit, whether an answer was complete, and the hashing
 * of what came back. What is asked, of whom and when is the caller's (`Fetcher`,
 * `SnapshotJoiner`, `AuditRunner`); the answering side is `serve-blocks.ts`.
 */
import { MAX_BLOCK_BYTES, cidOfAsync } from '../crdt/index.js'
import { type PeerConnection, type Transport } from './transport.js'
import { type BlocksRequest, BLOCKS_PROTOCOL, MAX_MESSAGE_BYTES, decodeBlocksResponse, encodeBlocksRequest } from './wire.js'

/**
 * An answer shorter than this was not cut short by the message budget (the responder stops
 * before a block that would take it over `MAX_MESSAGE_BYTES`): what it lacks, the peer lacks.
 */
const COMPLETE_ANSWER_BYTES = MAX_MESSAGE_BYTES - MAX_BLOCK_BYTES - 1024
/** What a request over a circuit leaves unasked for, bytes. */
const CIRCUIT_RESERVE_BYTES = 16 * 1024
/** The budget of a request over a circuit not opened yet, bytes (relays allow 128 KiB per circuit by default). */
const UNKNOWN_CIRCUIT_BYTES = 48 * 1024

/** A blocks answer: the nodes it carries (unverified), and its size in bytes. */
export interface BlocksAnswer {
  blocks: Uint8Array[]
  size: number
}

/**
 * Ask `peer` for blocks with `request`, waiting at most `timeoutMs`. Rejects with
 * `NetworkError`/`TimeoutError` when the peer fails, `InvalidMessageError` for a malformed answer.
 */
export async function askBlocks (transport: Transport, peer: string, request: BlocksRequest, timeoutMs: number): Promise<BlocksAnswer> {
  const bytes = await transport.request(peer, BLOCKS_PROTOCOL, encodeBlocksRequest(request), { timeoutMs })
  return { blocks: decodeBlocksResponse(bytes).blocks, size: bytes.byteLength }
}

/** Whether an answer of `size` bytes was complete: not cut short by the message budget, so what it lacks, the peer lacks. */
export function isComplete (size: number): boolean {
  return size < COMPLETE_ANSWER_BYTES
}

/** The nodes of an answer by the CID string they hash to (hashed by the platform: `cidOfAsync`). */
export async function byCid (blocks: Uint8Array[]): Promise<Map<string, Uint8Array>> {
  const hashed = await Promise.all(blocks.map(async b => (await cidOfAsync(b)).toString()))
  const out = new Map<string, Uint8Array>()
  blocks.forEach((b, i) => { out.set(hashed[i], b) })
  return out
}

/**
 * The response budget of a block request: none on a direct connection; on a relayed circuit, what
 * it may still carry less `CIRCUIT_RESERVE_BYTES` (room for the request, pings and signalling),
 * so the answer never makes the relay cut the circuit; with no circuit open yet (a request opens
 * one), `UNKNOWN_CIRCUIT_BYTES`. The transport replaces a spent circuit by a new one. A block
 * bigger than any circuit's budget waits for a direct connection, or a peer reached without a
 * relay (a keeper).
 */
export function responseBudget (connection: PeerConnection): { max?: number } {
  if (connection.kind === 'direct') return {}
  const left = connection.kind === 'relayed' ? connection.remainingBytes : undefined
  return { max: left === undefined ? UNKNOWN_CIRCUIT_BYTES : Math.max(4096, left - CIRCUIT_RESERVE_BYTES) }
}
