import { describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, stat } from 'node:fs/promises'
import { connect } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UsageError, loadOrCreateKey, parseRelayArgs } from '../../src/relay/cli.js'

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'kitedb-relay.js')

/** Run the relay command until `until` matches its output (then SIGINT) or it exits. */
async function run (args: string[], until?: RegExp): Promise<{ code: number | null, out: string, err: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let stopping = false
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`relay did not finish: ${out} ${err}`)) }, 20_000)
    child.stdout.on('data', d => {
      out += String(d)
      if (until?.test(out) === true && !stopping) { stopping = true; child.kill('SIGINT') } // once: a second SIGINT kills
    })
    child.stderr.on('data', d => { err += String(d) })
    child.on('exit', code => { clearTimeout(timer); resolve({ code, out, err }) })
  })
}

describe('kitedb-relay', () => {
  const defaults = {
    host: '127.0.0.1',
    port: 9091,
    maxReservations: 1024,
    reservationTtl: 3600,
    relayedDataLimit: 131072,
    relayedDuration: 120,
    maxConnections: 1024,
    maxConnectionsPerIp: 50,
    maxPendingConnections: 64,
    maxStreamsPerConnection: 256,
    maxMessagesPerSecond: 100,
    keepQuota: 256 * 1024 * 1024,
    keepMax: 10_000,
    keepTotal: 16 * 1024 ** 3,
    keepPerPeer: 64,
    keepIdleDays: 90
  }

  it('parses flags and environment, with defaults', () => {
    expect(parseRelayArgs([], {})).toEqual(defaults)
    expect(parseRelayArgs(['--port', '1234', '--host=0.0.0.0', '--key-file', 'k'], {})).toEqual({ ...defaults, host: '0.0.0.0', port: 1234, keyFile: 'k' })
    expect(parseRelayArgs([], { KITEDB_RELAY_PORT: '7000', KITEDB_RELAY_HOST: '::1' })).toMatchObject({ port: 7000, host: '::1' })
    expect(() => parseRelayArgs(['--port', 'x'], {})).toThrow(UsageError)
    expect(() => parseRelayArgs(['--port', '70000'], {})).toThrow(UsageError)
    expect(() => parseRelayArgs(['--nope'], {})).toThrow(/unknown option/)
    expect(() => parseRelayArgs(['--port'], {})).toThrow(/needs a value/)
  })

  it('parses the limit flags and the record file', () => {
    expect(parseRelayArgs([
      '--max-reservations', '10', '--reservation-ttl=60', '--relayed-data-limit', '65536', '--relayed-duration', '30',
      '--max-connections', '100', '--max-connections-per-ip', '5', '--max-pending-connections', '8',
      '--max-streams-per-connection', '32', '--max-messages-per-second', '20', '--record', 'out.jsonl'
    ], {})).toEqual({
      host: '127.0.0.1',
      port: 9091,
      record: 'out.jsonl',
      maxReservations: 10,
      reservationTtl: 60,
      relayedDataLimit: 65536,
      relayedDuration: 30,
      maxConnections: 100,
      maxConnectionsPerIp: 5,
      maxPendingConnections: 8,
      maxStreamsPerConnection: 32,
      maxMessagesPerSecond: 20,
      keepQuota: 256 * 1024 * 1024,
      keepMax: 10_000,
      keepTotal: 16 * 1024 ** 3,
      keepPerPeer: 64,
      keepIdleDays: 90
    })
    expect(parseRelayArgs([], { KITEDB_RELAY_RECORD: '/tmp/r.jsonl' }).record).toBe('/tmp/r.jsonl')
    expect(parseRelayArgs([], { KITEDB_RELAY_RECORD: '' }).record).toBeUndefined()
    expect(() => parseRelayArgs(['--max-connections', '0'], {})).toThrow(/--max-connections must be a positive integer/)
    expect(() => parseRelayArgs(['--relayed-duration', '1.5'], {})).toThrow(UsageError)
    expect(() => parseRelayArgs(['--record'], {})).toThrow(/needs a value/)
  })

  it('parses --keep and its limits, which need --keep', () => {
    expect(parseRelayArgs(['--keep', '/tmp/k', '--keep-quota', '1000', '--keep-max', '5', '--keep-total', '9000', '--keep-per-peer', '2', '--keep-idle-days', '7'], {}))
      .toMatchObject({ keep: '/tmp/k', keepQuota: 1000, keepMax: 5, keepTotal: 9000, keepPerPeer: 2, keepIdleDays: 7 })
    expect(parseRelayArgs([], { KITEDB_RELAY_KEEP: '/tmp/e' }).keep).toBe('/tmp/e')
    expect(() => parseRelayArgs(['--keep-quota', '10'], {})).toThrow(/needs --keep DIR/)
    expect(() => parseRelayArgs(['--keep'], {})).toThrow(/needs a value/)
  })

  it('keeps in the directory given with --keep, and exports a kept database as a CAR file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kitedb-'))
    const res = await run(['--port', '0', '--keep', join(dir, 'keep')], /relay peer id/)
    expect(res.code).toBe(0)
    expect(res.out).toContain(`keeping in ${join(dir, 'keep')} (0 databases, 0 bytes)`)
    const missing = await run(['export-car', '--keep', join(dir, 'keep'), '--db', '/kite/bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4', '--out', join(dir, 'x.car')])
    expect(missing.code).toBe(1)
    expect(missing.err).toMatch(/is not kept/)
  })

  it('lists every limit with its default in --help', () => {
    const help = (() => { try { parseRelayArgs(['--help']) } catch (err) { return (err as Error).message } return '' })()
    for (const [flag, def] of [['--record FILE', ''], ['--keep DIR', ''], ['--keep-quota', '268435456'], ['--keep-idle-days', '90'], ['--max-reservations', '1024'], ['--relayed-data-limit', '131072'], ['--max-messages-per-second', '100']]) {
      expect(help).toContain(`${flag} ${def}`.trim())
    }
  })

  it('records forwarded payloads to the file given with --record', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'kitedb-')), 'record.jsonl')
    const res = await run(['--port', '0', '--record', file], /relay peer id/)
    expect(res.code).toBe(0)
    expect(res.out).toContain(`recording forwarded payloads to ${file}`)
    expect((await stat(file)).isFile()).toBe(true)
  })

  it('keeps its identity in a key file', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'kitedb-')), 'sub', 'relay.key')
    const k1 = await loadOrCreateKey(file)
    const k2 = await loadOrCreateKey(file)
    expect(k2.equals(k1)).toBe(true)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
  })

  it('prints its multiaddr, stops cleanly on SIGINT, and explains a port in use', async () => {
    const first = spawn(process.execPath, [BIN, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const addr = await new Promise<string>((resolve, reject) => {
      let out = ''
      first.stdout.on('data', d => {
        out += String(d)
        const m = /relay multiaddr: (\S+)/.exec(out)
        if (m !== null) resolve(m[1])
      })
      first.on('exit', code => { reject(new Error(`exited ${code}`)) })
    })
    expect(addr).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/12D3Koo/)
    const port = /tcp\/(\d+)/.exec(addr)?.[1] as string
    const clash = await run(['--port', port])
    expect(clash.code).toBe(2)
    expect(clash.err).toMatch(new RegExp(`port ${port} on 127.0.0.1 is already in use`))
    const stopped = new Promise<number | null>(resolve => first.on('exit', resolve))
    first.kill('SIGINT')
    expect(await stopped).toBe(0)
  })

  it('parses --tls-cert and --tls-key, which go together', () => {
    expect(parseRelayArgs(['--tls-cert', 'c.pem', '--tls-key', 'k.pem'], {})).toMatchObject({ tlsCert: 'c.pem', tlsKey: 'k.pem' })
    expect(parseRelayArgs([], { KITEDB_RELAY_TLS_CERT: 'c', KITEDB_RELAY_TLS_KEY: 'k' })).toMatchObject({ tlsCert: 'c', tlsKey: 'k' })
    expect(() => parseRelayArgs(['--tls-cert', 'c.pem'], {})).toThrow(/go together/)
  })

  it('serves secure WebSockets (/tls/ws) with --tls-cert and --tls-key, and refuses a bad pair', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kitedb-tls-'))
    const { ensureCertificates } = await import('../../scripts/tls.js')
    const tls = await ensureCertificates(dir, { ips: [] })
    const child = spawn(process.execPath, [BIN, '--port', '0', '--tls-cert', tls.certFile, '--tls-key', tls.keyFile], { stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const addr = await new Promise<string>((resolve, reject) => {
        let out = ''
        child.stdout.on('data', d => {
          out += String(d)
          const m = /relay multiaddr: (\S+)/.exec(out)
          if (m !== null) resolve(m[1])
        })
        child.on('exit', code => { reject(new Error(`exited ${code}`)) })
      })
      expect(addr).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/tls\/ws\/p2p\/12D3Koo/)
      // a TLS client that trusts the local authority (and nothing else) completes the handshake
      const port = Number(/tcp\/(\d+)/.exec(addr)?.[1])
      const authorized = await new Promise<boolean>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca: readFileSync(tls.caFile) }, () => { resolve(socket.authorized); socket.end() })
        socket.on('error', reject)
      })
      expect(authorized).toBe(true)
    } finally {
      child.kill('SIGINT')
    }
    const bad = await run(['--port', '0', '--tls-cert', tls.caFile, '--tls-key', tls.keyFile])
    expect(bad.code).toBe(2)
    expect(bad.err).toMatch(/cannot use the TLS certificate/)
  })

  it('refuses unknown options with usage and exit code 2', async () => {
    const res = await run(['--bogus'])
    expect(res.code).toBe(2)
    expect(res.err).toContain('usage: kitedb-relay')
  })
})
