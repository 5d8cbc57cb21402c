#!/usr/bin/env node
// `npm start`: starts the relay (bin/kitedb-relay.js) and serves the built demo, prints the demo
// URL and the relay multiaddr; Ctrl-C stops both.
//
//   npm start -- [--port 5173] [--relay-port 9091] [--relays 1] [--host 127.0.0.1] [--https] [--no-build]
//                [--data-dir .kitedb] [--relay-record FILE] [--keep DIR | --no-keep]
// `--relays N` starts N relays on consecutive ports from --relay-port (keys DATA/relay.key,
// DATA/relay-2.key, …); the demo reserves on all of them and its share links name them all.
// The relays keep (`kitedb-relay --keep`, docs/keepers.md) what the demo asks them to, so devices
// that are never online together sync: the first in DATA/keep (or --keep DIR), the others in
// DIR-2, DIR-3…; `--no-keep` turns keeping off.
// `--https` serves the demo over HTTPS and the relays over secure WebSockets (wss), with a server
// certificate signed by a local authority in DATA/tls (scripts/tls.js; trust DATA/tls/ca.crt on a
// phone once, README "Try the demo"); the demo serves that authority at /kitedb-ca.crt.
// DATA is `--data-dir` (default .kitedb in the checkout).
// Environment: PORT / KITEDB_DEMO_PORT, KITEDB_RELAY_PORT, KITEDB_RELAYS_COUNT, KITEDB_HOST; relays inherit
// the environment, so KITEDB_RELAY_RECORD=FILE works as --relay-record FILE does (`kitedb-relay --record`).
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { existsSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { fileURLToPath } from 'node:url'
import { dirname, join, resolve } from 'node:path'
import { ensureCertificates, lanAddresses } from './tls.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const USAGE = 'usage: npm start -- [--port 5173] [--relay-port 9091] [--relays 1] [--host 127.0.0.1] [--https] [--no-build] [--data-dir .kitedb] [--relay-record FILE] [--keep DIR | --no-keep]'

function parseArgs (argv, env) {
  const args = {
    port: Number(env.KITEDB_DEMO_PORT ?? env.PORT ?? 5173),
    relayPort: Number(env.KITEDB_RELAY_PORT ?? 9091),
    relays: Number(env.KITEDB_RELAYS_COUNT ?? 1),
    host: env.KITEDB_HOST ?? '127.0.0.1',
    build: true,
    https: false,
    dataDir: join(root, '.kitedb')
  }
  let keep = ''
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--port') args.port = Number(argv[++i])
    else if (a === '--relay-port') args.relayPort = Number(argv[++i])
    else if (a === '--relays') args.relays = Number(argv[++i])
    else if (a === '--host') args.host = argv[++i]
    else if (a === '--no-build') args.build = false
    else if (a === '--https') args.https = true
    else if (a === '--data-dir' && argv[i + 1] !== undefined) args.dataDir = resolve(argv[++i])
    else if (a === '--relay-record' && argv[i + 1] !== undefined) args.relayRecord = argv[++i]
    else if (a === '--keep' && argv[i + 1] !== undefined) keep = argv[++i]
    else if (a === '--no-keep') keep = undefined
    else { console.error(`unknown option ${a}\n${USAGE}`); process.exit(2) }
  }
  args.keep = keep === '' ? join(args.dataDir, 'keep') : keep
  if (!Number.isInteger(args.relays) || args.relays < 1 || args.relays > 16) { console.error('--relays must be a number of relays from 1 to 16'); process.exit(2) }
  for (const [k, v] of [['--port', args.port], ['--relay-port', args.relayPort], ['--relay-port (plus --relays)', args.relayPort + args.relays - 1]]) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) { console.error(`${k} must be a port number 1–65535`); process.exit(2) }
  }
  return args
}

function assertPortFree (host, port, what) {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', (err) => {
      console.error(err.code === 'EADDRINUSE'
        ? `${what} port ${port} on ${host} is already in use: stop the other process or pick another (${what === 'demo' ? '--port N or PORT' : '--relay-port N or KITEDB_RELAY_PORT'})`
        : `cannot listen on ${host}:${port}: ${err.message}`)
      process.exit(1)
    })
    server.listen(port, host, () => server.close(resolve))
  })
}

/** Start relay number `n` (0-based): port relayPort + n, its own key file; the first records when asked. */
function startRelay (args, n) {
  return new Promise((resolve, reject) => {
    const keyFile = join(args.dataDir, n === 0 ? 'relay.key' : `relay-${n + 1}.key`)
    const record = args.relayRecord !== undefined ? ['--record', n === 0 ? args.relayRecord : `${args.relayRecord}.${n + 1}`] : []
    const keep = args.keep !== undefined ? ['--keep', n === 0 ? args.keep : `${args.keep}-${n + 1}`] : []
    const tls = args.tls !== undefined ? ['--tls-cert', args.tls.certFile, '--tls-key', args.tls.keyFile] : []
    const child = spawn(process.execPath, [join(root, 'bin', 'kitedb-relay.js'), '--host', args.host, '--port', String(args.relayPort + n),
      '--key-file', keyFile, ...tls, ...record, ...keep],
    { stdio: ['ignore', 'pipe', 'inherit'] })
    const addrs = []
    let buffered = ''
    child.stdout.on('data', (chunk) => {
      buffered += chunk.toString()
      let nl
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        const m = /^relay multiaddr: (\S+)/.exec(line)
        if (m) addrs.push(m[1])
        else if (line.startsWith('relay peer id:')) resolve({ child, addrs })
        else if (line.length > 0) console.log(`[relay${n === 0 ? '' : ` ${n + 1}`}] ${line}`)
      }
    })
    child.once('exit', (code) => reject(new Error(`the relay exited (code ${code}) before it was ready`)))
  })
}

const args = parseArgs(process.argv.slice(2), process.env)
await assertPortFree(args.host, args.port, 'demo')
for (let n = 0; n < args.relays; n++) await assertPortFree(args.host, args.relayPort + n, 'relay')

// Listening on every interface (to reach phones): show, and put in share links, this machine's LAN address.
const wildcard = args.host === '0.0.0.0' || args.host === '::'
const lan = lanAddresses()[0]
if (args.https) {
  const names = wildcard ? { ips: lanAddresses() } : isIP(args.host) !== 0 ? { ips: [args.host] } : { ips: [], dnsNames: [args.host] }
  args.tls = await ensureCertificates(join(args.dataDir, 'tls'), names)
  if (args.tls.made) console.log(`made a certificate for this machine in ${join(args.dataDir, 'tls')}`)
  process.env.KITEDB_TLS_CA = args.tls.caFile
}

const vite = await import('vite')
if (args.build || !existsSync(join(root, 'demo-dist', 'index.html'))) {
  console.log('building the demo…')
  await vite.build({ configFile: join(root, 'vite.config.ts'), root: join(root, 'demo'), logLevel: 'warn' })
}

const relays = []
try {
  for (let n = 0; n < args.relays; n++) relays.push(await startRelay(args, n))
} catch (err) {
  console.error(err.message)
  for (const r of relays) r.child.kill('SIGINT')
  process.exit(1)
}
process.env.KITEDB_RELAYS = relays.flatMap(r => r.addrs).join(' ')
const url = `${args.https ? 'https' : 'http'}://${wildcard ? (lan ?? '127.0.0.1') : args.host}:${args.port}/`
if (wildcard && lan !== undefined) process.env.KITEDB_SHARE_BASE = url
const https = args.tls !== undefined ? { cert: readFileSync(args.tls.certFile), key: readFileSync(args.tls.keyFile) } : undefined
const server = await vite.preview({ configFile: join(root, 'vite.config.ts'), root: join(root, 'demo'), preview: { port: args.port, host: args.host, strictPort: true, ...(https !== undefined ? { https } : {}) } })
console.log(`KiteDB demo:   ${url}`)
for (const a of relays.flatMap(r => r.addrs)) console.log(`relay:         ${a}`)
if (args.tls !== undefined) {
  console.log(`certificate:   ${args.tls.certFile}, signed by the local authority ${args.tls.caFile}`)
  console.log(`               a phone trusts it once it trusts that authority: ${url}kitedb-ca.crt (README, "Try the demo")`)
  console.log(`               Chromium without installing it: --ignore-certificate-errors-spki-list=${args.tls.spki}`)
}
console.log('open the demo in one browser, then its share link (or QR) in another; Ctrl-C stops both')

let stopping = false
async function stop (code) {
  if (stopping) return
  stopping = true
  await new Promise((resolve) => server.httpServer.close(() => resolve()))
  await Promise.all(relays.map(async ({ child }) => {
    if (child.exitCode !== null) return
    child.removeAllListeners('exit')
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGINT')
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
    if (child.exitCode === null) child.kill('SIGKILL')
  }))
  console.log('stopped')
  process.exit(code)
}
process.on('SIGINT', () => { void stop(0) })
process.on('SIGTERM', () => { void stop(0) })
for (const { child } of relays) child.once('exit', (code) => { console.error(`a relay exited unexpectedly (code ${code})`); void stop(1) })
