/**
 * A secure origin on the LAN: `npm start -- --host 0.0.0.0 --https` serves the demo over HTTPS and
 * the relays over secure WebSockets with a certificate signed by its local authority. A browser
 * that trusts that certificate — Chromium given its SPKI hash, as a phone that installed the
 * authority would — opens the LAN URL, goes online through the wss relay, and a second context
 * joins from the QR code, which carries the https URL. A browser that does
 * not trust it is refused: the trust is the certificate's, not a blanket one.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from '@playwright/test'
import { test, expect } from './fixtures.js'
import { addTodo, closeShare, decodeQr, openShare } from './helpers/demo.js'
import { chromiumArgs, chromiumPath } from '../../playwright.config.js'
import { ensureCertificates, lanAddresses } from '../../scripts/tls.js'

const PORT = Number(process.env.KITEDB_E2E_HTTPS_PORT ?? 5774)
const RELAY_PORT = Number(process.env.KITEDB_E2E_HTTPS_RELAY_PORT ?? 9792)
const root = join(import.meta.dirname, '..', '..')
/**
 * `npm start --data-dir`: relay keys, what the relay keeps, and the certificates — made here first,
 * so the browser can be given the hash (the same directory wherever this file is loaded).
 */
const dataDir = join(tmpdir(), `kitedb-e2e-https-${PORT}`)
const tls = await ensureCertificates(join(dataDir, 'tls'), { ips: lanAddresses() })
test.use({ launchOptions: { executablePath: chromiumPath, args: [...chromiumArgs, `--ignore-certificate-errors-spki-list=${tls.spki}`] } })

let server: ChildProcess | undefined
test.afterAll(async () => {
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise(resolve => server?.once('exit', resolve))
    server.kill('SIGINT')
    await exited
  }
  rmSync(dataDir, { recursive: true, force: true })
})

/** Run `npm start -- --host 0.0.0.0 --https …` (the demo already built) until it prints its URL and relays. */
async function start (): Promise<{ url: string, relays: string[] }> {
  const child = spawn(process.execPath, [join(root, 'scripts', 'start.js'), '--host', '0.0.0.0', '--https', '--port', String(PORT),
    '--relay-port', String(RELAY_PORT), '--no-build', '--data-dir', dataDir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  server = child
  child.stderr?.on('data', (d: Buffer) => { process.stderr.write(`[npm start --https] ${d.toString()}`) })
  return await new Promise((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const url = /KiteDB demo:\s+(\S+)/.exec(out)?.[1]
      if (url !== undefined && out.includes('open the demo')) resolve({ url, relays: [...out.matchAll(/relay:\s+(\S+)/g)].map(m => m[1]) })
    })
    child.once('exit', code => { reject(new Error(`npm start exited (${code ?? 'signal'}): ${out}`)) })
  })
}

test('npm start --https: a browser that trusts the certificate opens the LAN URL over wss, and another joins from the QR code', async ({ browser }) => {
  test.setTimeout(120_000)
  const { url, relays } = await start()
  const lan = lanAddresses()[0]
  expect(url).toBe(`https://${lan ?? '127.0.0.1'}:${PORT}/`)
  expect(relays.length).toBeGreaterThan(0)
  for (const r of relays) expect(r).toMatch(new RegExp(`^/ip4/[\\d.]+/tcp/${RELAY_PORT}/tls/ws/p2p/12D3Koo`))

  const ctxA = await browser.newContext()
  const a = await ctxA.newPage()
  await a.goto(url)
  await expect(a.getByTestId('network-status')).toHaveText('online') // reserved on the relay, over wss
  expect(await a.evaluate(() => window.todoDb?.relays)).toEqual(relays)
  await addTodo(a, 'packed over https')
  // the authority a phone installs is served with the demo
  expect(await a.evaluate(async () => await (await fetch('/kitedb-ca.crt')).text())).toContain('-----BEGIN CERTIFICATE-----')

  const link = await openShare(a)
  expect(link.startsWith(`${url}#E`)).toBe(true)
  const scanned = await decodeQr(a)
  expect(scanned).toBe(link)
  await closeShare(a)

  // B, another context of the trusting browser, scans the code and sees A's to-do, live.
  const ctxB = await browser.newContext()
  const b = await ctxB.newPage()
  await b.goto(scanned as string)
  await expect(b.getByTestId('todo-title')).toHaveText(['packed over https'])
  await addTodo(b, 'and back')
  await expect(a.getByTestId('todo-title')).toHaveText(['packed over https', 'and back'])
  await expect(b.getByTestId('network-status')).toHaveText('online')

  // A browser without that trust is refused the page.
  const untrusting = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs })
  try {
    const page = await untrusting.newPage()
    await expect(page.goto(url)).rejects.toThrow(/ERR_CERT_AUTHORITY_INVALID/)
  } finally {
    await untrusting.close()
  }
  await ctxA.close()
  await ctxB.close()
})
