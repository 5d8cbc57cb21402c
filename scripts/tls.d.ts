/** Types of scripts/tls.js (the demo's local certificates), for the tests that use it. */
export function lanAddresses (): string[]
export function spkiHash (pem: string): string
export function ensureCertificates (dir: string, names?: { ips?: string[], dnsNames?: string[] }): Promise<{
  caFile: string
  certFile: string
  keyFile: string
  /** the server certificate's SPKI hash (base64 SHA-256), for Chromium's --ignore-certificate-errors-spki-list */
  spki: string
  made: boolean
}>
