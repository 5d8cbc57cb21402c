/** `npm start` (scripts/start.js): refuses a port in use with a clear message, before building anything. */
import { describe, expect, it } from 'vitest'
import { spawnSync } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'

const START = join(import.meta.dirname, '..', '..', 'scripts', 'start.js')

async function occupy (): Promise<{ server: Server, port: number }> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as { port: number }).port }
}

describe('npm start', () => {
  it('explains a demo port in use', async () => {
    const { server, port } = await occupy()
    try {
      const res = spawnSync(process.execPath, [START, '--port', String(port), '--relay-port', '1'], { encoding: 'utf8' })
      expect(res.status).toBe(1)
      expect(res.stderr).toContain(`demo port ${port} on 127.0.0.1 is already in use`)
    } finally { server.close() }
  })

  it('explains a relay port in use', async () => {
    const { server, port } = await occupy()
    const free = await occupy()
    free.server.close()
    try {
      const res = spawnSync(process.execPath, [START, '--port', String(free.port), '--relay-port', String(port)], { encoding: 'utf8' })
      expect(res.status).toBe(1)
      expect(res.stderr).toContain(`relay port ${port} on 127.0.0.1 is already in use`)
    } finally { server.close() }
  })

  it('rejects unknown options and bad ports', () => {
    expect(spawnSync(process.execPath, [START, '--nope'], { encoding: 'utf8' }).stderr).toContain('usage: npm start')
    expect(spawnSync(process.execPath, [START, '--relay-record'], { encoding: 'utf8' }).stderr).toContain('[--relay-record FILE]')
    expect(spawnSync(process.execPath, [START, '--port', 'abc'], { encoding: 'utf8' }).stderr).toContain('--port must be a port number')
  })
})
