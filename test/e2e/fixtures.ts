/**
 * Playwright's `test`, extended: every page of every context the test opens through `browser`
 * (and the default `page`) is watched, and an uncaught page error fails the test. A failed test's
 * report also carries its pages' errors and their last console errors.
 */
import { test as base, expect, type BrowserContext } from '@playwright/test'

export const test = base.extend<{ failOnPageErrors: undefined }>({
  failOnPageErrors: [async ({ browser }, use, testInfo) => {
    const errors: string[] = []
    /** console errors: not failures by themselves, but shown with a failed test's report */
    const logged: string[] = []
    const watch = (context: BrowserContext): void => {
      const onPage = (page: import('@playwright/test').Page): void => {
        page.on('pageerror', err => { errors.push(`${page.url()}: ${err.message}`) })
        page.on('console', msg => { if (msg.type() === 'error') logged.push(`${page.url()}: ${msg.text()}`) })
      }
      for (const page of context.pages()) onPage(page)
      context.on('page', onPage)
    }
    for (const context of browser.contexts()) watch(context)
    const newContext = browser.newContext.bind(browser)
    browser.newContext = async (...args) => {
      const context = await newContext(...args)
      watch(context)
      return context
    }
    try {
      await use(undefined)
    } finally {
      browser.newContext = newContext
      // shown even when the test failed first: a page error is often the reason
      if (testInfo.status !== testInfo.expectedStatus) {
        for (const [name, lines] of [['page errors', errors], ['console errors', logged.slice(-20)]] as const) {
          if (lines.length > 0) await testInfo.attach(name, { body: lines.join('\n'), contentType: 'text/plain' })
        }
      }
    }
    expect(errors, 'uncaught page errors').toEqual([])
  }, { auto: true }]
})

export { expect }
