/**
 * `kitedb-relay`: the relay peers use to find each other (circuit-relay-v2 + gossipsub over
 * WebSockets). It stores nothing and never sees a database key.
 *
 *   kitedb-relay [--host 127.0.0.1] [--port 9091] [--key-file FILE] [--max-reservations 1024]
 *
 * Environment: KITEDB_RELAY_HOST, KITEDB_RELAY_PORT, KITEDB_RELAY_KEY_FILE. Prints the relay's
 * multiaddr on a line `relay multiaddr: <addr>`; stops cleanly on SIGINT/SIGTERM.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { createServer } from 'node:net'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { type PrivateKey } from '@libp2p/interface'
import { createRelayNode } from '../net/node.js'

/** Parsed command line of the relay. */
export interface RelayArgs {
  host: string
  port: number
  keyFile?: string
  maxReservations: number
}

/** Thrown for a bad command line or environment; the message is meant for the user. */
export class UsageError extends Error {}

const USAGE = 'usage: kitedb-relay [--host 127.0.0.1] [--port 9091] [--key-file FILE] [--max-reservations 1024]'

/** Parse argv (without `node script`) and env into `RelayArgs`. Throws `UsageError`. */
export function parseRelayArgs (argv: string[], env: Record<string, string | undefined> = {}): RelayArgs {
  const args: RelayArgs = {
    host: env.KITEDB_RELAY_HOST ?? '127.0.0.1',
    port: parsePort(env.KITEDB_RELAY_PORT ?? '9091', 'KITEDB_RELAY_PORT'),
    maxReservations: 1024,
    ...(env.KITEDB_RELAY_KEY_FILE !== undefined ? { keyFile: env.KITEDB_RELAY_KEY_FILE } : {})
  }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string
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
      case '--max-reservations': {
        const n = Number(value())
        if (!Number.isInteger(n) || n < 1) throw new UsageError('--max-reservations must be a positive integer')
        args.maxReservations = n
        break
      }
      case '--help': case '-h': throw new UsageError(USAGE)
      default: throw new UsageError(`unknown option ${flag}\n${USAGE}`)
    }
  }
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

/** Run the relay until SIGINT/SIGTERM. Returns the process exit code. */
export async function main (argv: string[], env: Record<string, string | undefined>): Promise<number> {
  let args: RelayArgs
  try {
    args = parseRelayArgs(argv, env)
    await assertPortFree(args.host, args.port)
  } catch (err) {
    if (err instanceof UsageError) { console.error(err.message); return 2 }
    throw err
  }
  const privateKey = args.keyFile !== undefined ? await loadOrCreateKey(args.keyFile) : undefined
  const node = await createRelayNode({ host: args.host, port: args.port, maxReservations: args.maxReservations, ...(privateKey !== undefined ? { privateKey } : {}) })
  for (const ma of node.getMultiaddrs()) console.log(`relay multiaddr: ${ma.toString()}`)
  console.log(`relay peer id: ${node.peerId.toString()}`)
  await new Promise<void>(resolve => {
    const stop = (): void => { resolve() }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await node.stop()
  console.log('relay stopped')
  return 0
}
