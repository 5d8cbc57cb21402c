import { chromium } from '@playwright/test'
import { mkdtempSync } from 'node:fs'
const dir = mkdtempSync('/tmp/q-')
const ctx = await chromium.launchPersistentContext(dir, { executablePath: '/usr/bin/chromium', args: ['--no-sandbox','--disable-gpu'] })
const page = ctx.pages()[0]
await page.goto('data:text/html,hi')
const http = await import('node:http')
const srv = http.createServer((q, r) => { r.setHeader('content-type','text/html'); r.end('<p>x</p>') }).listen(18181)
await page.goto('http://127.0.0.1:18181/')
const cdp = await ctx.newCDPSession(page)
console.log(await page.evaluate(async () => JSON.stringify(await navigator.storage.estimate())))
const r = await cdp.send('Storage.overrideQuotaForOrigin', { origin: 'http://127.0.0.1:18181', quotaSize: 50000 })
console.log('override', r)
console.log(await page.evaluate(async () => JSON.stringify(await navigator.storage.estimate())))
console.log(await page.evaluate(async () => {
  const req = indexedDB.open('t', 1); req.onupgradeneeded = () => req.result.createObjectStore('s')
  const db = await new Promise(r => { req.onsuccess = () => r(req.result) })
  try {
    for (let i = 0; i < 20; i++) {
      await new Promise((res, rej) => { const tx = db.transaction('s', 'readwrite'); tx.objectStore('s').put('x'.repeat(100000), i); tx.oncomplete = res; tx.onabort = () => rej(tx.error); tx.onerror = () => rej(tx.error) })
    }
    return 'no error; ' + JSON.stringify(await navigator.storage.estimate())
  } catch (e) { return 'error ' + e.name }
}))
await ctx.close(); srv.close()
