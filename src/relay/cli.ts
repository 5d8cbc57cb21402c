/**
 * `kitedb-relay`: the relay peers use to find each other (circuit-relay-v2 + gossipsub over
 * WebSockets). It never sees a database key. With `--keep DIR` it also keeps (stores and serves)
 * replicas of the databases its peers ask it to keep, blind (docs/keepers.md).
 *
 *   kitedb-relay [--host 127.0.0.1] [--port 9091] [--key-file FILE] [--tls-cert FILE --tls-key FILE] [--record FILE] [--keep DIR [keep limits…]] [limits…]
 *   kitedb-relay export-car --keep DIR --db /kite/<cid> --out FILE
 *
 * Limits (see `USAGE` and `RelayNodeOptions`) protect the relay: reservations, connections,
 * streams, relayed bytes and time, per-peer gossip rates.
 * With `--tls-cert` and `--tls-key` (PEM files) it listens for secure WebSockets (`/tls/ws`), as
 * pages served over HTTPS need.
 * Environment: KITEDB_RELAY_HOST, KITEDB_RELAY_PORT, KITEDB_RELAY_KEY_FILE, KITEDB_RELAY_RECORD,
 * KITEDB_RELAY_TLS_CERT, KITEDB_RELAY_TLS_KEY.
 * Prints the relay's multiaddr on a line `relay multiaddr: <addr>`; stops cleanly on SIGINT/SIGTERM.
 */
import { createWriteStream } from 'node:fs'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { createServer } from 'node:net'
import { createSecureContext } from 'node:tls'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { type PrivateKey } from '@libp2p/interface'
import { createRelayNode, type RelayRecord } from '../net/node.js'
import { DEFAULT_KEEP_LIMITS, KeepStore, exportCar, resolveKeepLimits, type KeepLimits } from '../keep/index.js'
import { parseAddress } from '../crdt/index.js'
import { type Keeping, startKeeping } from './keep.js'

/** Parsed command line of the relay; units as in the flags (seconds, bytes, counts). */
export interface RelayArgs {
  host: string
  port: number
  keyFile?: string
  /** certificate (PEM, chain after it) for secure WebSockets (`--tls-cert`, `KITEDB_RELAY_TLS_CERT`); with `tlsKey` */
  tlsCert?: string
  /** its private key (PEM; `--tls-key`, `KITEDB_RELAY_TLS_KEY`) */
  tlsKey?: string
  /** append every forwarded payload to this file (`--record`, `KITEDB_RELAY_RECORD`) */
  record?: string
  maxReservations: number
  /** seconds */
  reservationTtl: number
  /** bytes per relayed connection */
  relayedDataLimit: number
  /** seconds per relayed connection */
  relayedDuration: number
  maxConnections: number
  /** new connections per second from one IP address */
  maxConnectionsPerIp: number
  maxPendingConnections: number
  maxStreamsPerConnection: number
  /** gossip messages per second one peer may publish on one topic */
  maxMessagesPerSecond: number
  /** keep what peers ask in this directory (`--keep`, `KITEDB_RELAY_KEEP`) */
  keep?: string
  /** bytes one kept database may take */
  keepQuota: number
  /** databases kept in all */
  keepMax: number
  /** bytes kept in all */
  keepTotal: number
  /** databases one peer may ask to keep */
  keepPerPeer: number
  /** days a kept database may stay idle before it is deleted */
  keepIdleDays: number
}

/** Thrown for a bad command line or environment; the message is meant for the user. */
export class UsageError extends Error {}

/** The numeric flags: field of `RelayArgs`, default, and what the usage says about it. */
const LIMIT_FLAGS: Record<string, [keyof RelayArgs, number, string]> = {
  '--max-reservations': ['maxReservations', 1024, 'concurrent relay reservations'],
  '--reservation-ttl': ['reservationTtl', 3600, 'seconds a reservation lasts before renewal'],
  '--relayed-data-limit': ['relayedDataLimit', 131072, 'bytes one relayed connection may carry (WebRTC signalling needs a few KiB)'],
  '--relayed-duration': ['relayedDuration', 120, 'seconds one relayed connection may stay open'],
  '--max-connections': ['maxConnections', 1024, 'open connections'],
  '--max-connections-per-ip': ['maxConnectionsPerIp', 50, 'new connections per second from one IP address'],
  '--max-pending-connections': ['maxPendingConnections', 64, 'connections being set up at once'],
  '--max-streams-per-connection': ['maxStreamsPerConnection', 256, 'streams open at once on one connection'],
  '--max-messages-per-second': ['maxMessagesPerSecond', 100, 'gossip messages one peer may publish per topic per second; a peer that keeps exceeding it is disconnected for a minute'],
  '--keep-quota': ['keepQuota', DEFAULT_KEEP_LIMITS.quotaBytes, 'with --keep: bytes one kept database may take'],
  '--keep-max': ['keepMax', DEFAULT_KEEP_LIMITS.maxDatabases, 'with --keep: databases kept in all'],
  '--keep-total': ['keepTotal', DEFAULT_KEEP_LIMITS.totalBytes, 'with --keep: bytes kept in all'],
  '--keep-per-peer': ['keepPerPeer', DEFAULT_KEEP_LIMITS.maxPerPeer, 'with --keep: databases one peer may ask to keep'],
  '--keep-idle-days': ['keepIdleDays', DEFAULT_KEEP_LIMITS.idleMs / 86_400_000, 'with --keep: a database nobody wrote to or read for this many days is deleted']
}

const USAGE = [
  'usage: kitedb-relay [--host 127.0.0.1] [--port 9091] [--key-file FILE] [--tls-cert FILE --tls-key FILE] [--record FILE] [--keep DIR] [limits]',
  '       kitedb-relay export-car --keep DIR --db /kite/<cid> --out FILE',
  '  --tls-cert FILE, --tls-key FILE   listen for secure WebSockets (wss, /tls/ws) with this certificate and key (PEM)',
  '  --record FILE   append every payload the relay forwards to FILE, one JSON line each (debugging)',
  '  --keep DIR      also keep (store and serve, blind: no key) the databases peers ask it to keep, in DIR (LevelDB)',
  'limits (positive integers):',
  ...Object.entries(LIMIT_FLAGS).map(([flag, [, def, what]]) => `  ${`${flag} ${def}`.padEnd(34)} ${what}`),
  'environment: KITEDB_RELAY_HOST, KITEDB_RELAY_PORT, KITEDB_RELAY_KEY_FILE, KITEDB_RELAY_RECORD, KITEDB_RELAY_KEEP, KITEDB_RELAY_TLS_CERT, KITEDB_RELAY_TLS_KEY'
].join('\n')

/** Parse argv (without `node script`) and env into `RelayArgs`. Throws `UsageError`. */
export function parseRelayArgs (argv: string[], env: Record<string, string | undefined> = {}): RelayArgs {
  const args = {
    host: env.KITEDB_RELAY_HOST ?? '127.0.0.1',
    port: parsePort(env.KITEDB_RELAY_PORT ?? '9091', 'KITEDB_RELAY_PORT'),
    ...(env.KITEDB_RELAY_KEY_FILE !== undefined ? { keyFile: env.KITEDB_RELAY_KEY_FILE } : {}),
    ...(env.KITEDB_RELAY_RECORD !== undefined && env.KITEDB_RELAY_RECORD !== '' ? { record: env.KITEDB_RELAY_RECORD } : {}),
    ...(env.KITEDB_RELAY_KEEP !== undefined && env.KITEDB_RELAY_KEEP !== '' ? { keep: env.KITEDB_RELAY_KEEP } : {}),
    ...(env.KITEDB_RELAY_TLS_CERT !== undefined && env.KITEDB_RELAY_TLS_CERT !== '' ? { tlsCert: env.KITEDB_RELAY_TLS_CERT } : {}),
    ...(env.KITEDB_RELAY_TLS_KEY !== undefined && env.KITEDB_RELAY_TLS_KEY !== '' ? { tlsKey: env.KITEDB_RELAY_TLS_KEY } : {}),
    ...Object.fromEntries(Object.values(LIMIT_FLAGS).map(([key, def]) => [key, def]))
  } as RelayArgs
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const [name, inline] = flag.includes('=') ? flag.split(/=(.*)/s) as [string, string] : [flag, undefined]
    const value = (): string => {
      const v = inline ?? argv[++i]
      if (v === undefined) throw new UsageError(`${name} needs a value\n${USAGE}`)
      return v
    }
    switch (name) {
      case '--host': args.host = value(); break
      case '--port': args.port = parsePort(value(), '--port'); break
      case '--key-file': args.keyFile = value(); break
      case '--record': args.record = value(); break
      case '--keep': args.keep = value(); break
      case '--tls-cert': args.tlsCert = value(); break
      case '--tls-key': args.tlsKey = value(); break
      case '--help': case '-h': throw new UsageError(USAGE)
      default: {
        const limit = LIMIT_FLAGS[name]
        if (limit === undefined) throw new UsageError(`unknown option ${flag}\n${USAGE}`)
        const n = Number(value())
        if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer`)
        if (name.startsWith('--keep-') && args.keep === undefined && !argv.some(a => a === '--keep' || a.startsWith('--keep='))) throw new UsageError(`${name} needs --keep DIR`)
        ;(args as unknown as Record<string, number>)[limit[0]] = n
      }
    }
  }
  if ((args.tlsCert === undefined) !== (args.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together')
  return args
}

function parsePort (text: string, what: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${what} must be a port number 0–65535, not "${text}"`)
  return n
}

/** Load the relay's Ed25519 key from `file`, creating it (mode 0600) when absent. */
export async function loadOrCreateKey (file: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`cannot read key file ${file}: ${(err as Error).message}`)
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, privateKeyToProtobuf(key), { mode: 0o600 })
  return key
}

/** Fail early, with a clear message, when the port is taken. */
export async function assertPortFree (host: string, port: number): Promise<void> {
  if (port === 0) return
  await new Promise<void>((resolve, reject) => {
    const server = createServer()
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE'
        ? new UsageError(`port ${port} on ${host} is already in use: stop the other process or choose another port (--port N or KITEDB_RELAY_PORT)`)
        : new UsageError(`cannot listen on ${host}:${port}: ${err.message}`))
    })
    server.listen(port, host, () => { server.close(() => { resolve() }) })
  })
}

/** An open record file: `record` appends one entry, `close` flushes and closes. */
export interface Recorder {
  record: (entry: RelayRecord) => void
  close: () => Promise<void>
}

/**
 * Open `file` for appending records, one JSON line per payload:
 * `{"time":"<ISO 8601>","kind":"gossip"|"circuit","topic"?,"from","via"?,"to"?,"size":<bytes>,"data":"<base64>"}`.
 * Bounded: while more than `maxPendingBytes` (default 16 MiB) wait to be written, entries are
 * dropped and counted (reported on stderr once, and at `close`). Creates the file's directory.
 */
export async function openRecorder (file: string, maxPendingBytes = 16 * 1024 * 1024): Promise<Recorder> {
  await mkdir(dirname(file), { recursive: true })
  const out = createWriteStream(file, { flags: 'a' })
  await new Promise<void>((resolve, reject) => { out.once('open', () => { resolve() }); out.once('error', reject) })
  let dropped = 0
  return {
    record: entry => {
      if (out.writableLength > maxPendingBytes) {
        if (dropped++ === 0) console.error(`record file ${file} is not keeping up: dropping entries`)
        return
      }
      out.write(JSON.stringify({
        time: new Date(entry.time).toISOString(),
        kind: entry.kind,
        ...(entry.topic !== undefined ? { topic: entry.topic } : {}),
        from: entry.from,
        ...(entry.via !== undefined ? { via: entry.via } : {}),
        ...(entry.to !== undefined ? { to: entry.to } : {}),
        size: entry.data.byteLength,
        data: Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength).toString('base64')
      }) + '\n')
    },
    close: async () => {
      if (dropped > 0) console.error(`record file ${file}: ${dropped} entries dropped`)
      await new Promise<void>(resolve => { out.end(resolve) })
    }
  }
}

/** The keep limits of the command line. */
export function keepLimitsOf (args: RelayArgs): Partial<KeepLimits> {
  return { quotaBytes: args.keepQuota, maxDatabases: args.keepMax, totalBytes: args.keepTotal, maxPerPeer: args.keepPerPeer, idleMs: args.keepIdleDays * 86_400_000 }
}

/**
 * `kitedb-relay export-car --keep DIR --db ADDRESS --out FILE`: write a kept database as a CAR
 * file (the keeper using DIR must be stopped: LevelDB lets one process open it). Returns the exit code.
 */
async function exportCommand (argv: string[]): Promise<number> {
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i += 2) flags.set(argv[i], argv[i + 1])
  const dir = flags.get('--keep')
  const db = flags.get('--db')
  const out = flags.get('--out')
  if (dir === undefined || db === undefined || out === undefined || [...flags.keys()].some(k => !['--keep', '--db', '--out'].includes(k))) {
    console.error(USAGE)
    return 2
  }
  let store: KeepStore
  try {
    store = await KeepStore.open(dir, resolveKeepLimits())
  } catch (err) {
    console.error(`cannot open ${dir} (is a keeper running on it? stop it first): ${(err as Error).message}`)
    return 1
  }
  try {
    const result = await exportCar(store, parseAddress(db).toString(), out)
    console.log(`wrote ${result.blocks} blocks to ${out} (roots: ${result.roots.join(', ')})`)
    return 0
  } catch (err) {
    console.error((err as Error).message)
    return 1
  } finally {
    await store.close()
  }
}

/** Run the relay until SIGINT/SIGTERM. Returns the process exit code. */
export async function main (argv: string[], env: Record<string, string | undefined>): Promise<number> {
  if (argv[0] === 'export-car') return await exportCommand(argv.slice(1))
  let args: RelayArgs
  try {
    args = parseRelayArgs(argv, env)
    await assertPortFree(args.host, args.port)
  } catch (err) {
    if (err instanceof UsageError) { console.error(err.message); return 2 }
    throw err
  }
  const privateKey = args.keyFile !== undefined ? await loadOrCreateKey(args.keyFile) : undefined
  let tls: { cert: string, key: string } | undefined
  if (args.tlsCert !== undefined && args.tlsKey !== undefined) {
    try {
      tls = { cert: await readFile(args.tlsCert, 'utf8'), key: await readFile(args.tlsKey, 'utf8') }
      createSecureContext(tls) // refuses a malformed or mismatched pair here, with its reason
    } catch (err) {
      console.error(`cannot use the TLS certificate ${args.tlsCert} and key ${args.tlsKey}: ${(err as Error).message}`)
      return 2
    }
  }
  let recorder: Recorder | undefined
  if (args.record !== undefined) {
    try {
      recorder = await openRecorder(args.record)
    } catch (err) {
      console.error(`cannot open record file ${args.record}: ${(err as Error).message}`)
      return 2
    }
  }
  const node = await createRelayNode({
    host: args.host,
    port: args.port,
    ...(privateKey !== undefined ? { privateKey } : {}),
    ...(tls !== undefined ? { tls } : {}),
    maxReservations: args.maxReservations,
    reservationTtlMs: args.reservationTtl * 1000,
    relayedDataLimit: args.relayedDataLimit,
    relayedDurationMs: args.relayedDuration * 1000,
    maxConnections: args.maxConnections,
    maxConnectionsPerSecondPerHost: args.maxConnectionsPerIp,
    maxPendingConnections: args.maxPendingConnections,
    maxStreamsPerConnection: args.maxStreamsPerConnection,
    limits: { messagesPerSecond: args.maxMessagesPerSecond, messageBurst: 2 * args.maxMessagesPerSecond },
    ...(recorder !== undefined ? { record: recorder.record } : {}),
    ...(args.keep !== undefined ? { gossipCheck: async (topic: string, data: Uint8Array, from: string) => await (keeping?.keeper.checkGossip(topic, data, from) ?? true) } : {})
  })
  let keeping: Keeping | undefined
  if (args.keep !== undefined) {
    try {
      keeping = await startKeeping(node, { dir: args.keep, limits: keepLimitsOf(args) })
    } catch (err) {
      console.error(`cannot keep in ${args.keep}: ${(err as Error).message}`)
      await node.stop()
      return 2
    }
  }
  // Listen for the signals before saying we are ready, so a stop right after is a clean one.
  const stopped = new Promise<void>(resolve => {
    const stop = (): void => { resolve() }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  for (const ma of node.getMultiaddrs()) console.log(`relay multiaddr: ${ma.toString()}`)
  if (args.record !== undefined) console.log(`recording forwarded payloads to ${args.record}`)
  if (keeping !== undefined) console.log(`keeping in ${args.keep as string} (${keeping.store.total.databases} databases, ${keeping.store.total.bytes} bytes)`)
  console.log(`relay peer id: ${node.peerId.toString()}`)
  await stopped
  await node.stop()
  await keeping?.close()
  await recorder?.close()
  console.log('relay stopped')
  return 0
}
