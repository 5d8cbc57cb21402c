/** Share links and QR codes. */
export * from './link.js'
export * from './qr.js'
