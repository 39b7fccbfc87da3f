/**
 * Decoding content pages to text. Order follows the HTML encoding sniffing
 * algorithm in brief: BOM, then the Content-Type charset, then a `<meta>`
 * in the first 1024 bytes, then UTF-8 (what CMSs send in practice).
 *
 * One departure, after libxml2 (Diazo's parser): a `<meta>` charset later in
 * the head than the standard's 1024-byte prescan still counts, since CMS pages
 * with long head scripts put it there and a Latin-1 page would otherwise come
 * out as U+FFFD. The search ends at `<body` (and after 1 MiB).
 */

function labelFromContentType (ct: string | undefined): string | undefined {
  if (ct === undefined) return undefined
  const m = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(ct)
  return m?.[1]
}

const metaRe = /<meta[^>]+?charset\s*=\s*["']?\s*([\w.:-]+)/i
const bodyRe = /<body[\s>]/i
/** The HTML standard's prescan length, and how far a later `<meta>` is looked for. */
const prescan = 1024
const laterLimit = 1024 * 1024

export function sniffCharset (body: Uint8Array, contentType?: string): string {
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) return 'utf-8'
  if (body[0] === 0xfe && body[1] === 0xff) return 'utf-16be'
  if (body[0] === 0xff && body[1] === 0xfe) return 'utf-16le'
  const fromHeader = labelFromContentType(contentType)
  if (fromHeader !== undefined && usable(fromHeader)) return fromHeader.toLowerCase()
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  let m = metaRe.exec(bytes.toString('latin1', 0, Math.min(bytes.byteLength, prescan)))
  if (m === null && bytes.byteLength > prescan) {
    // From a little before the prescan's end, so a tag it cut in half is found whole.
    const rest = bytes.toString('latin1', prescan - 256, Math.min(bytes.byteLength, laterLimit))
    const bodyAt = rest.search(bodyRe)
    m = metaRe.exec(bodyAt < 0 ? rest : rest.slice(0, bodyAt))
  }
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
