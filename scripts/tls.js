// The demo's local certificates for `npm start -- --https` (scripts/start.js): a certificate
// authority made once per checkout (a phone trusts it once), and a server certificate it signs
// for this machine's names — localhost, 127.0.0.1 and its LAN addresses — made again when those
// change. Both the demo (Vite) and the relays (wss) serve the server certificate.
//
//   DIR/ca.crt, DIR/ca.key          the authority (10 years; the key never leaves DIR)
//   DIR/server.crt, DIR/server.key  the server certificate (about 13 months, under Apple's 825-day
//                                   limit) with its chain: server, then authority
import { createHash, X509Certificate } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'

/** This machine's IPv4 addresses other than loopback. */
export function lanAddresses () {
  return Object.values(networkInterfaces()).flat().filter(i => i && i.family === 'IPv4' && !i.internal).map(i => i.address)
}

/**
 * The SPKI hash of a PEM certificate (base64 of the SHA-256 of its public key info), as Chromium's
 * `--ignore-certificate-errors-spki-list` takes it.
 */
export function spkiHash (pem) {
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(der).digest('base64')
}

/**
 * Make (or reuse) the authority and a server certificate in `dir` covering `ips` and `dnsNames`
 * (plus localhost and 127.0.0.1). Resolves with the paths `{caFile, certFile, keyFile}`, the
 * server certificate's `spki` hash, and whether anything was `made`.
 */
export async function ensureCertificates (dir, { ips = lanAddresses(), dnsNames = [] } = {}) {
  const { generate } = await import('selfsigned')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const caFile = join(dir, 'ca.crt')
  const caKeyFile = join(dir, 'ca.key')
  const certFile = join(dir, 'server.crt')
  const keyFile = join(dir, 'server.key')
  let made = false
  if (!existsSync(caFile) || !existsSync(caKeyFile)) {
    const notAfterDate = new Date()
    notAfterDate.setFullYear(notAfterDate.getFullYear() + 10)
    const ca = await generate([{ name: 'commonName', value: 'KiteDB demo local CA' }, { name: 'organizationName', value: 'KiteDB demo' }], {
      keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notAfterDate,
      extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }]
    })
    writeFileSync(caKeyFile, ca.private, { mode: 0o600 })
    writeFileSync(caFile, ca.cert)
    made = true
  }
  const names = { ips: [...new Set(['127.0.0.1', ...ips])], dns: [...new Set(['localhost', ...dnsNames])] }
  const ca = { cert: readFileSync(caFile, 'utf8'), key: readFileSync(caKeyFile, 'utf8') }
  if (made || !covers(certFile, keyFile, ca.cert, names)) {
    const notAfterDate = new Date(Date.now() + 397 * 86_400_000)
    const server = await generate([{ name: 'commonName', value: names.ips.at(-1) }], {
      keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notAfterDate, ca,
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [...names.dns.map(value => ({ type: 2, value })), ...names.ips.map(ip => ({ type: 7, ip }))] }
      ]
    })
    writeFileSync(keyFile, server.private, { mode: 0o600 })
    writeFileSync(certFile, server.cert.trimEnd() + '\n' + ca.cert)
    made = true
  }
  return { caFile, certFile, keyFile, spki: spkiHash(readFileSync(certFile, 'utf8')), made }
}

/** Whether the server certificate in `certFile` exists, was signed by `caPem`, is valid for a month more, and names every one of `names`. */
function covers (certFile, keyFile, caPem, names) {
  if (!existsSync(certFile) || !existsSync(keyFile)) return false
  try {
    const cert = new X509Certificate(readFileSync(certFile, 'utf8'))
    if (!cert.verify(new X509Certificate(caPem).publicKey)) return false
    if (Date.parse(cert.validTo) < Date.now() + 30 * 86_400_000) return false
    return names.ips.every(ip => cert.checkIP(ip) !== undefined) && names.dns.every(host => cert.checkHost(host) !== undefined)
  } catch {
    return false
  }
}
