/**
 * In the browser: two Chromium contexts share an encrypted to-do list through the real
 * relays, which record every payload they forward (gossip and relayed-connection bytes). No todo
 * title appears in the record, and a third browser holding the link without its key reads nothing.
 * A plain database written on the same relay is the control: its document does appear in the
 * record, so the check can fail.
 */
import { readFileSync } from 'node:fs'
import { type Page } from '@playwright/test'
import { test, expect } from './fixtures.js'
import { relayRecordPath } from '../../playwright.config.js'
import { formatShareLink, parseShareLink, type ShareInfo } from '../../src/share/index.js'
import { addTodo } from './helpers/demo.js'

interface RecordLine { time: string, kind: string, topic?: string, size: number, data: string }

/** Payloads the relay recorded since `since`, decoded to text (binary bytes as Latin-1). */
function recordedSince (since: number): RecordLine[] {
  let text = ''
  // `npm start -- --relays 2` (the web server): the second relay records to `<path>.2`
  for (const path of [relayRecordPath, `${relayRecordPath}.2`]) {
    try { text += readFileSync(path, 'utf8') } catch { /* one relay only: no such file */ }
  }
  return text.split('\n').filter(l => l.length > 0).map(l => JSON.parse(l) as RecordLine).filter(l => Date.parse(l.time) >= since)
}
const payload = (l: RecordLine): string => Buffer.from(l.data, 'base64').toString('latin1')

test('an encrypted list: the relay never sees a title, and the link without its key reads nothing', async ({ browser }) => {
  const since = Date.now() - 1000
  const marker = `m${Date.now().toString(36)}`
  const titles = [`buy oat milk ${marker}`, `call the plumber ${marker}`, `from B ${marker}`]
  const ctxA = await browser.newContext()
  const ctxB = await browser.newContext()
  const ctxC = await browser.newContext()
  const a = await ctxA.newPage()
  const b = await ctxB.newPage()
  const c = await ctxC.newPage()

  await a.goto('/')
  await addTodo(a, titles[0])
  await addTodo(a, titles[1])
  const link = (page: Page) => page.getByTestId('share-link')
  await expect(link(a)).toHaveAttribute('href', /#E[A-Z2-7]{100,}$/)
  const href = await link(a).getAttribute('href') as string
  expect(parseShareLink(href)?.key).toMatch(/^[\w-]{43}$/)
  expect(await a.evaluate(() => window.todoDb?.encrypted)).toBe(true)

  // B joins with the full link, reads and writes.
  await b.goto(href)
  for (const t of titles.slice(0, 2)) await expect(b.getByTestId('todo-title').filter({ hasText: t })).toHaveCount(1)
  await addTodo(b, titles[2])
  await expect(a.getByTestId('todo-title').filter({ hasText: titles[2] })).toHaveCount(1)
  await a.getByTestId('todo-toggle').first().check()
  await expect(b.locator('li.done')).toHaveCount(1)

  // C holds the link without the key: it learns the list is encrypted and shows nothing.
  const info = parseShareLink(href) as ShareInfo
  await c.goto(formatShareLink(href, { ...info, key: undefined }))
  await expect(c.locator('#error')).toContainText(/encrypted/)
  await c.waitForTimeout(1500)
  await expect(c.getByTestId('todo-item')).toHaveCount(0)
  expect(await c.evaluate(async () => (await (await window.todoDb?.initCollection('todos'))?.find({}))?.length)).toBe(0)

  // Control: a plain (unencrypted) database through the same relay does show up in the record.
  const control = `plain-control-${marker}`
  await a.evaluate(async ({ control, relays }) => {
    const db = await window.kitedb.KiteDB.init(`control-${control}`, { relays, storage: 'memory', encrypt: false, access: { write: ['*'] } })
    await db.whenOnline()
    const other = await window.kitedb.KiteDB.open(db.address, { relays, storage: 'memory', node: 'control-reader' })
    await other.whenOnline()
    await (await db.initCollection('c')).insertOne({ _id: 'x', title: control })
    const seen = await other.initCollection('c')
    for (let i = 0; i < 100 && (await seen.findById('x')) === undefined; i++) await new Promise(resolve => setTimeout(resolve, 100))
  }, { control, relays: await a.evaluate(() => window.todoDb?.relays ?? []) })

  await expect.poll(() => recordedSince(since).some(l => payload(l).includes(control)), { timeout: 15_000 }).toBe(true)
  const lines = recordedSince(since)
  expect(lines.filter(l => l.kind === 'gossip').length).toBeGreaterThan(0)
  for (const t of titles) {
    expect(lines.filter(l => payload(l).includes(t)).length, `records containing "${t}"`).toBe(0)
  }
  expect(lines.filter(l => payload(l).includes(marker) && !payload(l).includes(control)).length).toBe(0)

  for (const ctx of [ctxA, ctxB, ctxC]) await ctx.close()
})
