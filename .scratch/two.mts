import { createPeerNode, createRelayNode } from '/work/main/src/net/index.js'
const mk = async (o = {}) => { const r = await createRelayNode({ port: 0, ...o }); return { r, addr: r.getMultiaddrs()[0]!.toString() } }
const r1 = await mk(); const r2 = await mk()
const t0 = Date.now()
const a = await createPeerNode({ relays: [r1.addr, r2.addr], waitForRelay: false })
a.services.relays.addEventListener('change', () => console.log((Date.now()-t0), 'status', JSON.stringify(a.services.relays.status().map(s => [s.state, s.error?.slice(0,80)]))))
await new Promise(r => setTimeout(r, 5000))
console.log(a.getMultiaddrs().map(String))
await a.stop(); await r1.r.stop(); await r2.r.stop()
