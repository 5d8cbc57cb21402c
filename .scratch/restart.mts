import { generateKeyPair } from '@libp2p/crypto/keys'
import { createPeerNode, createRelayNode } from '/work/main/src/net/index.js'
const key = await generateKeyPair('Ed25519')
let relay = await createRelayNode({ port: 0, privateKey: key })
const addr = relay.getMultiaddrs()[0]!.toString()
const port = Number(addr.split('/')[4])
console.log('relay', addr)
const t0 = Date.now()
const a = await createPeerNode({ relays: [addr] })
console.log('a ready', Date.now() - t0, a.getMultiaddrs().map(String))
a.services.relays.addEventListener('change', () => console.log((Date.now()-t0), 'status', JSON.stringify(a.services.relays.status().map(s => [s.state, s.error, s.nextAttemptAt && s.nextAttemptAt - Date.now()]))))
await relay.stop()
console.log(Date.now()-t0, 'relay stopped')
await new Promise(r => setTimeout(r, 5000))
relay = await createRelayNode({ port, privateKey: key })
console.log(Date.now()-t0, 'relay restarted')
for (let i = 0; i < 30; i++) {
  await new Promise(r => setTimeout(r, 500))
  if (a.getMultiaddrs().some(m => m.toString().includes('webrtc'))) { console.log(Date.now()-t0, 'a has webrtc addr again', a.getMultiaddrs().map(String)); break }
}
await a.stop(); await relay.stop()
