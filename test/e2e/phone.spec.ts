/**
 * Made for the phone that scans the QR code: at 360 × 740 the list and the share panel fit the
 * screen and work by touch (screenshots attached to the test's output), the link copies, and the
 * QR code read back from its pixels (jsQR) opens the same list on another phone.
 */
import { type Page } from '@playwright/test'
import { test, expect } from './fixtures.js'
import { addTodo, decodeQr, openShare } from './helpers/demo.js'

const phone = { viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

/** Whether nothing on the page is wider than the screen (no sideways scrolling). */
async function fitsWidth (page: Page): Promise<boolean> {
  return await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)
}

/** The box of `testId`'s element lies inside the 360 × 740 screen. */
async function expectOnScreen (page: Page, testId: string): Promise<void> {
  const box = await page.getByTestId(testId).boundingBox()
  expect(box, testId).not.toBeNull()
  const { x, y, width, height } = box as { x: number, y: number, width: number, height: number }
  expect(x, `${testId} left`).toBeGreaterThanOrEqual(0)
  expect(y, `${testId} top`).toBeGreaterThanOrEqual(0)
  expect(x + width, `${testId} right`).toBeLessThanOrEqual(360)
  expect(y + height, `${testId} bottom`).toBeLessThanOrEqual(740)
}

test('at 360 × 740 the list and the share panel fit and work by touch; the QR code read from its pixels opens the same list', async ({ browser }, testInfo) => {
  const ctxA = await browser.newContext({ ...phone, permissions: ['clipboard-read', 'clipboard-write'] })
  const a = await ctxA.newPage()
  await a.goto('/')
  await expect(a.getByTestId('list-name')).toHaveText('My list')
  for (const t of ['oat milk', 'a to-do with a rather long title, which has to wrap on a narrow phone screen without pushing anything off it', 'call Ana']) await addTodo(a, t)
  // A tap can miss while the list is still laying out (the page is busy under load), and `tap`,
  // unlike `check`, does not verify that it took: tap again only while the box shows unchecked, so
  // every tap that lands sets done (never clears it), and a lost update still fails the test.
  const toggle = a.getByTestId('todo-item').filter({ hasText: 'oat milk' }).getByTestId('todo-toggle')
  await expect(async () => {
    if (!await toggle.isChecked()) await toggle.tap()
    await expect(a.locator('li.done')).toHaveCount(1, { timeout: 3000 })
  }).toPass({ timeout: 15_000 })
  expect(await fitsWidth(a)).toBe(true)
  for (const id of ['lists-button', 'share-button', 'new-todo']) await expectOnScreen(a, id)
  for (const item of await a.getByTestId('todo-item').all()) {
    const del = await item.getByTestId('todo-delete').boundingBox()
    expect(del?.width).toBeGreaterThanOrEqual(40) // big enough for a finger
    expect((del?.x ?? 999) + (del?.width ?? 0)).toBeLessThanOrEqual(360)
  }
  await testInfo.attach('list at 360×740', { body: await a.screenshot(), contentType: 'image/png' })

  // The share panel: on demand, on screen, with a code big enough to scan and a link that copies.
  await expect(a.getByTestId('share-panel')).toBeHidden()
  await a.getByTestId('share-button').tap()
  const link = await openShare(a)
  for (const id of ['qr', 'copy-link', 'share-close']) await expectOnScreen(a, id)
  expect((await a.getByTestId('qr').locator('svg').boundingBox())?.width).toBeGreaterThanOrEqual(240)
  expect(await fitsWidth(a)).toBe(true)
  await a.getByTestId('copy-link').tap()
  await expect(a.getByTestId('copy-status')).toHaveText('Link copied ✓')
  expect(await a.evaluate(async () => await navigator.clipboard.readText())).toBe(link)
  // the system share sheet is offered only where the browser has one
  const hasWebShare = await a.evaluate(() => typeof navigator.share === 'function')
  await expect(a.getByTestId('web-share')).toBeVisible({ visible: hasWebShare })
  await testInfo.attach('share panel at 360×740', { body: await a.screenshot(), contentType: 'image/png' })

  // The code, read back from the screen's pixels, is the link, and opens the same list on another phone.
  const scanned = await decodeQr(a)
  expect(scanned).toBe(link)
  const ctxB = await browser.newContext(phone)
  const b = await ctxB.newPage()
  await b.goto(scanned as string)
  await expect(b.getByTestId('list-name')).toHaveText('My list')
  await expect(b.getByTestId('todo-item')).toHaveCount(3)
  expect(await b.evaluate(() => window.todoDb?.address)).toBe(await a.evaluate(() => window.todoDb?.address))
  expect(await fitsWidth(b)).toBe(true)
  await testInfo.attach('joined on a second phone', { body: await b.screenshot(), contentType: 'image/png' })

  await a.getByTestId('share-close').tap()
  await expect(a.getByTestId('share-panel')).toBeHidden()
  await ctxA.close()
  await ctxB.close()
})

test('where the browser has the Web Share API, "Share…" hands it the list\'s name and link', async ({ browser }) => {
  // Desktop Chromium on Linux has no share sheet: this page gets a recording navigator.share, to
  // check the demo's call (what a phone's share sheet would receive), not the sheet itself.
  const ctx = await browser.newContext(phone)
  await ctx.addInitScript(() => {
    Object.defineProperty(navigator, 'share', { value: async (data: ShareData) => { (window as unknown as { shared: ShareData[] }).shared = [data] } })
  })
  const page = await ctx.newPage()
  await page.goto('/')
  const link = await openShare(page)
  await page.getByTestId('web-share').tap()
  await expect.poll(async () => await page.evaluate(() => (window as unknown as { shared?: ShareData[] }).shared)).toEqual([{ title: 'To-do list: My list', text: 'Join my to-do list “My list”', url: link }])
  await ctx.close()
})
