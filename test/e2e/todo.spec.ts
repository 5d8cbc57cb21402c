/**
 * The walking skeleton, end to end: two real Chromium contexts share a to-do list through the
 * real relay, connected by direct WebRTC.
 */
import { type Page } from '@playwright/test'
import { test, expect } from './fixtures.js'
import { parseShareLink } from '../../src/share/index.js'
import { addTodo, decodeQr, titles } from './helpers/demo.js'

/** The page's share link: the short form, whose fragment is uppercase base32. */
async function shareLink (page: Page): Promise<string> {
  const link = page.getByTestId('share-link')
  await expect(link).toHaveAttribute('href', /^http:\/\/127\.0\.0\.1:\d+\/#E[A-Z2-7]{100,}$/)
  return await link.getAttribute('href') as string
}

async function online (page: Page): Promise<void> {
  await expect(page.getByTestId('network-status')).toHaveText('online')
}

test('two browsers share a to-do list over direct WebRTC through the relay', async ({ browser }) => {
  const ctxA = await browser.newContext()
  const ctxB = await browser.newContext()
  const a = await ctxA.newPage()
  const b = await ctxB.newPage()

  await a.goto('/')
  for (const t of ['buy milk', 'write tests', 'ship it']) await addTodo(a, t)
  await a.getByTestId('share-button').click()
  await expect(a.getByTestId('qr').locator('svg')).toBeVisible()
  const link = await shareLink(a)
  expect(parseShareLink(link)?.address).toBe(await a.evaluate(() => window.todoDb?.address))
  // The QR code encodes exactly the share link: decode it from the rendered pixels.
  await expect.poll(async () => await decodeQr(a)).toBe(link)
  await a.getByTestId('share-close').click()
  await expect(a.getByTestId('share-panel')).toBeHidden()

  // B joins through the share link and sees A's todos, live.
  await b.goto(link)
  await expect(b.getByTestId('todo-item')).toHaveCount(3)
  expect(await titles(b)).toEqual(['buy milk', 'write tests', 'ship it'])

  // B toggles one; A sees it.
  await b.getByTestId('todo-item').filter({ hasText: 'write tests' }).getByTestId('todo-toggle').check()
  await expect(a.getByTestId('todo-item').filter({ hasText: 'write tests' }).getByTestId('todo-toggle')).toBeChecked()

  // A deletes one; B sees it.
  await a.getByTestId('todo-item').filter({ hasText: 'buy milk' }).getByTestId('todo-delete').click()
  await expect(b.getByTestId('todo-item')).toHaveCount(2)
  expect(await titles(b)).toEqual(['write tests', 'ship it'])

  // A edits a title; B sees it.
  await a.getByTestId('todo-title').filter({ hasText: 'ship it' }).dblclick()
  await a.getByTestId('todo-edit').fill('ship it today')
  await a.getByTestId('todo-edit').press('Enter')
  await expect(b.getByTestId('todo-title').filter({ hasText: 'ship it today' })).toHaveCount(1)

  // Both are connected by direct WebRTC, and count each other as a peer.
  await expect(a.getByTestId('connection-type')).toContainText('webrtc')
  await expect(b.getByTestId('connection-type')).toContainText('webrtc')
  await expect(a.getByTestId('peer-count')).toHaveText('1')
  await expect(b.getByTestId('peer-count')).toHaveText('1')
  const direct = await a.evaluate(() => window.todoDb?.peers().map(p => `${p.kind}/${p.transport}`))
  expect(direct).toEqual(['direct/webrtc'])

  // Reloading keeps the list (IndexedDB), and the state of each todo.
  await a.reload()
  await b.reload()
  for (const page of [a, b]) {
    await expect(page.getByTestId('todo-item')).toHaveCount(2)
    expect(await titles(page)).toEqual(['write tests', 'ship it today'])
    await expect(page.getByTestId('todo-item').filter({ hasText: 'write tests' }).getByTestId('todo-toggle')).toBeChecked()
  }

  // After the reload they find each other again and keep syncing.
  await addTodo(b, 'after reload')
  await expect(a.getByTestId('todo-title').filter({ hasText: 'after reload' })).toHaveCount(1)

  await ctxA.close()
  await ctxB.close()
})

test('a replica that was away catches up on what changed meanwhile', async ({ browser }) => {
  const ctxA = await browser.newContext()
  const a = await ctxA.newPage()
  await a.goto('/')
  await addTodo(a, 'first')
  const link = await shareLink(a)

  const ctxB = await browser.newContext()
  const b = await ctxB.newPage()
  await b.goto(link)
  await expect(b.getByTestId('todo-title').filter({ hasText: 'first' })).toHaveCount(1)

  // B goes away (page closed, its IndexedDB kept by the context); A changes things meanwhile.
  await b.close()
  await addTodo(a, 'while B was away')
  await a.getByTestId('todo-item').filter({ hasText: 'first' }).getByTestId('todo-toggle').check()

  // B comes back and catches up.
  const b2 = await ctxB.newPage()
  await b2.goto(link)
  await expect(b2.getByTestId('todo-title').filter({ hasText: 'while B was away' })).toHaveCount(1)
  await expect(b2.getByTestId('todo-item').filter({ hasText: 'first' }).getByTestId('todo-toggle')).toBeChecked()

  await ctxA.close()
  await ctxB.close()
})

test('a link with only a peer id and a relay is enough to join (address learned over pubsub)', async ({ browser }) => {
  const ctxA = await browser.newContext()
  const a = await ctxA.newPage()
  await a.goto('/')
  await addTodo(a, 'found by peer id')
  await online(a)
  const info = await a.evaluate(() => ({ peer: window.todoDb?.peerId, relays: window.todoDb?.relays, address: window.todoDb?.address }))
  expect(info.peer).toBeTruthy()
  const key = parseShareLink(await shareLink(a))?.key as string
  // a link of the long form, as the demo made them before short ones: still opens the list
  const peerOnly = `/#peer=${info.peer as string}&key=${key}&relay=${(info.relays as string[])[0]}`

  const ctxB = await browser.newContext()
  const b = await ctxB.newPage()
  await b.goto(peerOnly)
  await expect(b.getByTestId('todo-title').filter({ hasText: 'found by peer id' })).toHaveCount(1)
  expect(await b.evaluate(() => window.todoDb?.address)).toBe(info.address)

  await ctxA.close()
  await ctxB.close()
})

test('a page keeps its peer id across reloads; a second tab of the same origin gets its own', async ({ browser }) => {
  const ctx = await browser.newContext()
  const a = await ctx.newPage()
  await a.goto('/')
  await online(a)
  const first = await a.evaluate(() => window.todoDb?.peerId)
  await a.reload()
  await online(a)
  expect(await a.evaluate(() => window.todoDb?.peerId)).toBe(first)
  const second = await ctx.newPage()
  await second.goto('/')
  await online(second)
  const other = await second.evaluate(() => window.todoDb?.peerId)
  expect(other).toBeTruthy()
  expect(other).not.toBe(first)
  await ctx.close()
})

test('each page sees who is here and which todo each is editing (presence)', async ({ browser }) => {
  const ctxA = await browser.newContext()
  const ctxB = await browser.newContext()
  await ctxA.addInitScript(() => { if (location.protocol.startsWith('http')) localStorage.setItem('kitedb-demo:name', 'Ada') })
  await ctxB.addInitScript(() => { if (location.protocol.startsWith('http')) localStorage.setItem('kitedb-demo:name', 'Bob') })
  const a = await ctxA.newPage()
  await a.goto('/')
  await addTodo(a, 'shared todo')
  const b = await ctxB.newPage()
  await b.goto(await shareLink(a))
  await expect(b.getByTestId('todo-item')).toHaveCount(1)
  await expect(a.getByTestId('presence')).toHaveText('Ada (you), Bob')
  await expect(b.getByTestId('presence')).toHaveText('Bob (you), Ada')
  await b.getByTestId('todo-title').filter({ hasText: 'shared todo' }).dblclick()
  await expect(a.getByTestId('todo-item').filter({ hasText: 'shared todo' }).getByTestId('todo-editor')).toHaveText('Bob editing')
  await b.getByTestId('todo-edit').press('Escape')
  await expect(a.getByTestId('todo-editor')).toHaveCount(0)
  await b.close()
  await expect(a.getByTestId('presence')).toHaveText('Ada (you)', { timeout: 15_000 })
  await ctxA.close()
  await ctxB.close()
})

test('the details panel shows the heads, the network, the peers and refused input', async ({ browser }) => {
  const ctx = await browser.newContext()
  const a = await ctx.newPage()
  await a.goto('/')
  await addTodo(a, 'inspect me')
  await online(a)
  await a.locator('#details-panel summary').click()
  const details = a.getByTestId('details')
  await expect(details).toContainText(/heads: 1 \(bafyrei/)
  await expect(details).toContainText('network: online')
  await expect(details).toContainText(/relay .*: reserved/)
  await expect(details).toContainText(/storage: \d+ KB used of \d+ MB/)
  await expect(details).toContainText('refused input')
  await expect(details).toContainText(/keepers: 2\n.*: kept/)
  await ctx.close()
})
