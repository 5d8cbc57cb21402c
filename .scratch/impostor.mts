import { generateKeyPair } from '@libp2p/crypto/keys'
import { createPeerNode, createRelayNode } from '/work/main/src/net/index.js'
const relay = await createRelayNode({ port: 0 })
const addr = relay.getMultiaddrs()[0]!.toString()
const stranger = (await generateKeyPair('Ed25519')).publicKey.toString()
const impostor = addr.replace(relay.peerId.toString(), stranger)
const t0 = Date.now()
const a = await createPeerNode({ relays: [impostor], waitForRelay: false })
a.services.relays.addEventListener('change', () => console.log((Date.now()-t0), 'status', JSON.stringify(a.services.relays.status().map(s => [s.state, s.error]))))
await new Promise(r => setTimeout(r, 9000))
const t1 = Date.now()
await a.stop(); console.log('stopped a', Date.now()-t1); await relay.stop()
