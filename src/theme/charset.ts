/**
 * Decoding content pages to text. Order follows the HTML encoding sniffing
 * algorithm in brief: BOM, then the Content-Type charset, then a `<meta>`
 * in the first 1024 bytes, then UTF-8 (what CMSs send in practice).
 */

function labelFromContentType (ct: string | undefined): string | undefined {
  if (ct === undefined) return undefined
  const m = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(ct)
  return m?.[1]
}

const metaRe = /<meta[^>]+?charset\s*=\s*["']?\s*([\w.:-]+)/i

export function sniffCharset (body: Uint8Array, contentType?: string): string {
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return 'utf-8'
  if (body[0] === 0xfe && body[1] === 0xff) return 'utf-16be'
  if (body[0] === 0xff && body[1] === 0xfe) return 'utf-16le'
  const fromHeader = labelFromContentType(contentType)
  if (fromHeader !== undefined && usable(fromHeader)) return fromHeader.toLowerCase()
  const head = Buffer.from(body.buffer, body.byteOffset, Math.min(body.byteLength, 1024)).toString('latin1')
  const m = metaRe.exec(head)
  // A meta cannot truthfully declare UTF-16: the bytes it was read from were ASCII (HTML spec §13.2.3.2).
  if (m !== null && usable(m[1])) return /^utf-16/i.test(m[1]) ? 'utf-8' : m[1].toLowerCase()
  return 'utf-8'
}

function usable (label: string): boolean {
  try { new TextDecoder(label); return true } catch { return false }
}

/** Bytes → text; undecodable sequences become U+FFFD instead of failing. */
export function decodeHtml (body: Uint8Array, contentType?: string): string {
  const label = sniffCharset(body, contentType)
  if (label === 'utf-8' || label === 'utf8') {
    const s = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')
    return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s
  }
  return new TextDecoder(label).decode(body)
}
