import { createServer } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createPeerNode, createRelayNode } from '/work/main/src/net/index.js'
const mk = async (o = {}) => { const r = await createRelayNode({ port: 0, ...o }); return { r, addr: r.getMultiaddrs()[0]!.toString() } }
const good = await mk(); const other = await mk(); const full = await mk({ maxReservations: 1 })
const stranger = (await generateKeyPair('Ed25519')).publicKey.toString()
const impostor = other.addr.replace(other.r.peerId.toString(), stranger)
const silent = createServer(() => {}); await new Promise<void>(r => silent.listen(0, '127.0.0.1', r))
const silentAddr = `/ip4/127.0.0.1/tcp/${(silent.address() as any).port}/ws/p2p/${stranger}`
const squatter = await createPeerNode({ relays: [full.addr] })
const t0 = Date.now()
const a = await createPeerNode({ relays: [silentAddr, impostor, full.addr, good.addr], waitForRelay: false })
a.services.relays.addEventListener('change', () => console.log((Date.now()-t0), 'status', JSON.stringify(a.services.relays.status().map(s => [s.state, s.error?.slice(0,40)]))))
await new Promise(r => setTimeout(r, 9000))
const t1 = Date.now()
await a.stop(); console.log('stopped a', Date.now()-t1); await squatter.stop(); console.log('stopped sq', Date.now()-t1); for (const x of [good, other, full]) await x.r.stop(); silent.close()
console.log('done', Date.now()-t1)
