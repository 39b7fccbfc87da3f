import t from 'tap'
import { decodeHtml, sniffCharset } from '../../src/theme/charset.ts'

const latin1 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'))

t.test('a <meta> charset after the first 1024 bytes still counts when the header has none', async t => {
  const script = `<script>${'var x = 1;\n'.repeat(200)}</script>`
  const page = `<!DOCTYPE html><html><head><title>Caf\u00e9</title>${script}<meta charset="iso-8859-1"></head><body><p>d\u00e9j\u00e0 vu</p></body></html>`
  const bytes = latin1(page)
  t.ok(page.indexOf('<meta') > 1024, 'the meta is past the standard prescan')
  t.equal(sniffCharset(bytes), 'iso-8859-1')
  t.match(decodeHtml(bytes), /<p>d\u00e9j\u00e0 vu<\/p>/, 'Latin-1 text decodes instead of becoming U+FFFD')
  t.equal(sniffCharset(bytes, 'text/html; charset=utf-8'), 'utf-8', 'a header charset still wins')
  const http = latin1(`<html><head>${script}<meta http-equiv="Content-Type" content="text/html; charset=windows-1252"></head><body>\u0080</body></html>`)
  t.equal(sniffCharset(http), 'windows-1252', 'the http-equiv form too')
  const inBody = latin1(`<html><head>${script}</head><body><p>x</p><meta charset="iso-8859-1"></body></html>`)
  t.equal(sniffCharset(inBody), 'utf-8', 'a meta in the body does not count')
  const split = latin1(`<html><head><title>${'x'.repeat(1000)}</title><meta charset="koi8-r"></head></html>`)
  t.equal(sniffCharset(split), 'koi8-r', 'a meta the 1024-byte boundary cuts in half')
})
