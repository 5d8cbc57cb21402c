/**
 * What libp2p 3 needs from the JavaScript runtime, supplied where Node 20 lacks it:
 * `Promise.withResolvers` (Node 22+) and a global `WebSocket` for dialling ws:// (Node 22+; on
 * Node 20 taken from the `ws` package that @libp2p/websockets already depends on). Browsers
 * have both, so nothing is loaded there.
 */
export async function ensureRuntime (): Promise<void> {
  const P = Promise as unknown as { withResolvers?: unknown }
  if (typeof P.withResolvers !== 'function') {
    P.withResolvers = function withResolvers<T> () {
      let resolve!: (value: T | PromiseLike<T>) => void
      let reject!: (reason?: unknown) => void
      const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  }
  const g = globalThis as { WebSocket?: unknown }
  if (typeof g.WebSocket !== 'function') {
    const specifier = 'ws' // a variable, so bundlers leave this Node-only import alone
    const ws = await import(/* @vite-ignore */ specifier) as { WebSocket: unknown, default?: { WebSocket?: unknown } }
    g.WebSocket = ws.WebSocket ?? ws.default?.WebSocket
  }
}
