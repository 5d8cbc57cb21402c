/**
 * QR codes for share links, rendered with the `qrcode` package, loaded the first time one is drawn
 * (an app that shows none never loads it).
 */
type QRCodeModule = typeof import('qrcode')

let qrcode: Promise<QRCodeModule> | undefined
async function library (): Promise<QRCodeModule> {
  qrcode ??= import('qrcode').then(m => (m as unknown as { default?: QRCodeModule }).default ?? m)
  return await qrcode
}

/**
 * Render `text` (a share link) as an SVG document string, `sizePx` wide, with error correction
 * level M. Rejects if the text is too long for a QR code (about 2,300 bytes at level M).
 */
export async function renderQrSvg (text: string, sizePx = 256): Promise<string> {
  return await (await library()).toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2, width: sizePx })
}

/** Render `text` as a PNG data URL (`data:image/png;base64,…`), `sizePx` wide. */
export async function renderQrDataUrl (text: string, sizePx = 256): Promise<string> {
  return await (await library()).toDataURL(text, { errorCorrectionLevel: 'M', margin: 2, width: sizePx })
}
