/** Share links and QR codes. */
export * from './link.js'
export { formatShortLink, type ShortLinkOptions } from './short-link.js'
export * from './qr.js'
