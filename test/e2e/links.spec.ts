/**
 * Hostile links: a share link's `relay=` must not make the demo dial whatever it names. The demo
 * uses its configured relays; relays a link adds are dialled only when the user accepts them, and
 * only WebSocket addresses with a peer id are even offered.
 */
import { test, expect } from './fixtures.js'

const stranger = '/ip4/203.0.113.7/tcp/443/wss/p2p/12D3KooWLG74PGwVyP4VwU2gtPxsvHTtURTeHkZRMKsX2JRKovKD'
const notWebSocket = '/ip4/203.0.113.8/tcp/4001/p2p/12D3KooWQBwdJBtatW3z8dUh9vu6m7xsZTKbYKRUM3aKPg4DTRjM'

async function configuredRelays (page: import('@playwright/test').Page): Promise<string[]> {
  return await page.evaluate(async () => ((await (await fetch('/kitedb-config.json')).json()) as { relays: string[] }).relays)
}

test('a link\'s unknown relays are dialled only when the user accepts them; non-WebSocket ones never', async ({ browser }) => {
  const ctx = await browser.newContext()
  const a = await ctx.newPage()
  await a.goto('/')
  const configured = await configuredRelays(a)
  const address = await a.evaluate(async () => {
    const db = await window.kitedb.KiteDB.init(`links-${Date.now()}`, { storage: 'memory', access: { write: ['*'] } })
    const address = db.address
    await db.close()
    return address
  })
  const link = (relays: string[]): string => `/#db=${address}&${relays.map(r => `relay=${r}`).join('&')}`

  // declined: only the configured relays are used
  const b = await (await browser.newContext()).newPage()
  await b.goto(link([stranger, notWebSocket, ...configured]))
  await expect(b.getByTestId('relay-confirm')).toBeVisible()
  await expect(b.locator('#relay-confirm-list')).toHaveText(stranger) // the non-WebSocket one is not even offered
  await b.getByTestId('relay-confirm-no').click()
  await expect.poll(async () => await b.evaluate(() => window.todoDb?.relays)).toEqual(configured)

  // accepted: the stranger is added, and remembered for the next link
  const c = await (await browser.newContext()).newPage()
  await c.goto(link([stranger]))
  await c.getByTestId('relay-confirm-yes').click()
  await expect.poll(async () => await c.evaluate(() => window.todoDb?.relays)).toEqual([...configured, stranger])
  await c.goto('about:blank')
  await c.goto(link([stranger, notWebSocket]))
  await expect.poll(async () => await c.evaluate(() => window.todoDb?.relays)).toEqual([...configured, stranger])
  await expect(c.getByTestId('relay-confirm')).toBeHidden()
  expect(await c.evaluate(() => window.todoDb?.relays)).not.toContain(notWebSocket)
})
