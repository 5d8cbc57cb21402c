/**
 * Real processes for the network fault tests: relays (`bin/kitedb-relay.js`) that can be killed and
 * restarted on the same key and port, the built demo served with a config naming them, and a
 * network namespace whose link can be taken down under a Chromium running inside it (as root:
 * `context.setOffline` does not cut WebRTC; a link taken down does).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { extname, join, normalize } from 'node:path'

const root = join(import.meta.dirname, '..', '..', '..')

/** A free TCP port on `host`. */
export async function freePort (host = '127.0.0.1'): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createNetServer()
    s.once('error', reject)
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number }
      s.close(() => { resolve(port) })
    })
  })
}

/** Relay processes started here and still running. */
const running = new Set<ChildProcess>()
let reaping = false

/**
 * Kill every relay process still running when this process ends, by exit or by SIGINT/SIGTERM
 * (a test or bench stopped by its time limit), so none outlives it holding a port.
 */
function reapOnExit (): void {
  if (reaping) return
  reaping = true
  const killAll = (): void => { for (const child of running) child.kill('SIGKILL') }
  process.once('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll()
      process.kill(process.pid, signal) // then as if unhandled: the default ends the process
    })
  }
}

/** A relay process with a fixed key file and port, so a restart keeps its multiaddr. */
export class RelayProcess {
  private child?: ChildProcess
  addr = ''
  /** the inspector's WebSocket URL, when started with `--inspect` among its node arguments */
  inspector?: string

  private constructor (readonly host: string, readonly port: number, readonly keyFile: string, readonly args: string[], readonly nodeArgs: string[]) {}

  /**
   * Start a relay on `host` (`port`, else a free one) with a new key, and `args` (e.g. `['--keep',
   * DIR]`); `nodeArgs` go to node itself (e.g. `['--inspect=127.0.0.1:0']` to profile it).
   */
  static async start (host: string, dir: string, args: string[] = [], port?: number, nodeArgs: string[] = []): Promise<RelayProcess> {
    const r = new RelayProcess(host, port ?? await freePort(host), join(dir, `relay-${Math.random().toString(36).slice(2)}.key`), args, nodeArgs)
    await r.restart()
    return r
  }

  /** Start it again (same key, same port). Resolves once it listens. */
  async restart (): Promise<void> {
    const child = spawn(process.execPath, [...this.nodeArgs, join(root, 'bin', 'kitedb-relay.js'), '--host', this.host, '--port', String(this.port), '--key-file', this.keyFile, ...this.args],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    running.add(child)
    child.once('exit', () => { running.delete(child) })
    reapOnExit()
    child.stderr?.on('data', (d: Buffer) => {
      this.inspector ??= /Debugger listening on (ws:\/\/\S+)/.exec(d.toString())?.[1]
      process.stderr.write(`[relay ${this.port}] ${d.toString()}`)
    })
    this.addr = await new Promise<string>((resolve, reject) => {
      let out = ''
      let addr = ''
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString()
        addr ||= /relay multiaddr: (\S+)/.exec(out)?.[1] ?? ''
        if (addr !== '' && out.includes('relay peer id:')) resolve(addr)
      })
      child.once('exit', code => { reject(new Error(`relay exited (${code ?? 'signal'}) before it was ready: ${out}`)) })
    })
  }

  /** The process id of the running relay. */
  get pid (): number { return this.child?.pid as number }

  /** Kill it (SIGKILL by default: no goodbye to its peers) and wait for the exit. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill(signal)
    await exited
  }
}

const MIME: Record<string, string> = {
  '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.json': 'application/json',
  '.wasm': 'application/wasm', '.png': 'image/png', '.webmanifest': 'application/manifest+json'
}

/**
 * Serve the built demo (demo-dist, built by `npm start`, Playwright's web server) with a config
 * naming `relays`, on `port` (else a free one): serving again on the same port is the same origin,
 * with the same storage and service worker.
 */
export async function serveDemo (host: string, relays: () => string[], port?: number): Promise<{ url: string, close: () => Promise<void> }> {
  const dist = join(root, 'demo-dist')
  if (!existsSync(join(dist, 'index.html'))) throw new Error('demo-dist is missing: it is built by `npm start` (the Playwright web server)')
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/kitedb-config.json') {
      res.setHeader('content-type', 'application/json')
      res.setHeader('cache-control', 'no-store')
      res.end(JSON.stringify({ relays: relays() }))
      return
    }
    const file = normalize(join(dist, path === '/' ? 'index.html' : path))
    if (!file.startsWith(dist) || !existsSync(file)) { res.statusCode = 404; res.end(); return }
    res.setHeader('content-type', MIME[extname(file)] ?? 'application/octet-stream')
    res.end(readFileSync(file))
  })
  const at = port ?? await freePort(host)
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(at, host, resolve) })
  return {
    url: `http://${host}:${at}/`,
    close: async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) }
  }
}

/** Whether this process may make network namespaces (root with `ip`). */
export function canMakeNetns (): boolean {
  if (process.getuid?.() !== 0) return false
  try { execFileSync('ip', ['-V'], { stdio: 'ignore' }); return true } catch { return false }
}

let netnsCount = 0

/**
 * A network namespace joined to this one by a veth pair: `hostIp` here, `nsIp` inside. A Chromium
 * started through `chromiumPath` runs inside; `cut()` takes the link down on its side (every
 * connection it has dies, and new ones fail at once), `heal()` brings it back.
 */
export class Netns {
  readonly name: string
  readonly hostIp: string
  readonly nsIp: string
  readonly chromiumPath: string
  private readonly dev: string
  private readonly peerDev: string
  private readonly dir: string

  constructor (chromium: string) {
    const n = (process.pid % 200) + netnsCount++
    this.name = `kitedb-e2e-${process.pid}-${netnsCount}`
    this.dev = `kth${process.pid % 10000}x${netnsCount}`
    this.peerDev = `ktn${process.pid % 10000}x${netnsCount}`
    this.hostIp = `10.231.${n}.1`
    this.nsIp = `10.231.${n}.2`
    const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: 'pipe' }) }
    this.close()
    ip('netns', 'add', this.name)
    ip('link', 'add', this.dev, 'type', 'veth', 'peer', 'name', this.peerDev)
    ip('link', 'set', this.peerDev, 'netns', this.name)
    ip('addr', 'add', `${this.hostIp}/24`, 'dev', this.dev)
    ip('link', 'set', this.dev, 'up')
    ip('netns', 'exec', this.name, 'ip', 'link', 'set', 'lo', 'up')
    ip('netns', 'exec', this.name, 'ip', 'addr', 'add', `${this.nsIp}/24`, 'dev', this.peerDev)
    this.heal()
    this.dir = mkdtempSync(join(tmpdir(), 'kitedb-netns-'))
    this.chromiumPath = join(this.dir, 'chromium')
    writeFileSync(this.chromiumPath, `#!/bin/sh\nexec ip netns exec ${this.name} ${chromium} "$@"\n`)
    chmodSync(this.chromiumPath, 0o755)
  }

  /** Take the namespace's link down. */
  cut (): void {
    execFileSync('ip', ['netns', 'exec', this.name, 'ip', 'link', 'set', this.peerDev, 'down'], { stdio: 'pipe' })
  }

  /** Bring the link back up, with its default route. */
  heal (): void {
    execFileSync('ip', ['netns', 'exec', this.name, 'ip', 'link', 'set', this.peerDev, 'up'], { stdio: 'pipe' })
    try { execFileSync('ip', ['netns', 'exec', this.name, 'ip', 'route', 'replace', 'default', 'via', this.hostIp], { stdio: 'pipe' }) } catch { /* the route came back with the link */ }
  }

  close (): void {
    try { execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' }) } catch { /* already gone */ }
    try { execFileSync('ip', ['link', 'del', this.dev], { stdio: 'ignore' }) } catch { /* went with the namespace */ }
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true })
  }
}
