/**
 * What libp2p 3 needs from the JavaScript runtime, supplied where Node 20 lacks it:
 * `Promise.withResolvers` (Node 22+) and a global `WebSocket` for dialling ws:// (Node 22+; on
 * Node 20 taken from the `ws` package that @libp2p/websockets already depends on, with errors
 * nobody listens to ignored rather than thrown). Browsers
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
    const Base = (ws.WebSocket ?? ws.default?.WebSocket) as new (...args: unknown[]) => { on: (event: string, fn: () => void) => void }
    // `ws` sockets are EventEmitters: an 'error' with no listener is thrown, and crashes the
    // process. @libp2p/websockets stops listening when a dial is aborted (a timeout), while the
    // socket lives on; a server that later resets it must not take the process down. Browsers'
    // WebSockets (EventTargets) never throw for an unheard error.
    g.WebSocket = class WebSocket extends Base {
      constructor (...args: unknown[]) {
        super(...args)
        this.on('error', () => {})
      }
    }
  }
}
