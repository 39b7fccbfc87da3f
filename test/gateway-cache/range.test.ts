// RFC 9110 §14 byte ranges: answered from a complete cached 200; an upstream 206 is passed through and never stored.
import t from 'tap'
import { cacheFixture, text } from './fixture.ts'

const body = '0123456789abcdefghij' // 20 bytes
const lm = 'Tue, 01 Jan 2030 00:00:00 GMT'

t.test('a cached 200 answers single Range requests with 206 / 416; several ranges get the whole', async t => {
  const f = await cacheFixture(t, {
    '/r': (_q, res) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', etag: '"r1"', 'last-modified': lm, date: 'Wed, 01 Jan 2031 00:00:00 GMT' }).end(body),
  })
  await f.get('/r')
  const full = await f.get('/r')
  t.equal(full.headers['accept-ranges'], 'bytes', 'the stored 200 advertises ranges')
  const cases: Array<[string, number, string, string | undefined]> = [
    ['bytes=0-4', 206, '01234', 'bytes 0-4/20'],
    ['bytes=15-', 206, 'fghij', 'bytes 15-19/20'],
    ['bytes=-3', 206, 'hij', 'bytes 17-19/20'],
    ['bytes=10-100', 206, 'abcdefghij', 'bytes 10-19/20'],
    ['bytes=-50', 206, body, 'bytes 0-19/20'],
    ['BYTES=2-2', 206, '2', 'bytes 2-2/20'],
    ['bytes=20-', 416, '', 'bytes */20'],
    ['bytes=-0', 416, '', 'bytes */20'],
    ['bytes=0-1,5-6', 200, body, undefined],
    ['bytes=5-2', 200, body, undefined],
    ['items=0-1', 200, body, undefined],
  ]
  for (const [range, status, want, cr] of cases) {
    const r = await f.get('/r', { range })
    t.equal(r.status, status, `${range}: ${status}`)
    t.equal(r.body, want, `${range}: body`)
    t.equal(r.headers['content-range'], cr, `${range}: Content-Range`)
    if (status === 206) t.equal(r.headers['content-length'], String(want.length), `${range}: Content-Length of the part`)
    t.equal(r.headers['x-cache'], 'HIT', `${range}: from the cache`)
  }
  const head = await f.get('/r', { range: 'bytes=0-4' }, 'HEAD')
  t.equal(head.status, 200, 'HEAD ignores Range')
  t.equal((await f.get('/r', { range: 'bytes=0-4', 'if-range': '"r1"' })).status, 206, 'If-Range with the current strong ETag')
  t.equal((await f.get('/r', { range: 'bytes=0-4', 'if-range': '"old"' })).body, body, 'If-Range with another ETag: the whole')
  t.equal((await f.get('/r', { range: 'bytes=0-4', 'if-range': 'W/"r1"' })).status, 200, 'a weak ETag never matches If-Range')
  t.equal((await f.get('/r', { range: 'bytes=0-4', 'if-range': lm })).status, 206, 'If-Range with the Last-Modified date')
  t.equal((await f.get('/r', { range: 'bytes=0-4', 'if-range': 'Mon, 01 Jan 2029 00:00:00 GMT' })).status, 200, 'If-Range with another date')
  t.equal((await f.get('/r', { range: 'bytes=0-4', 'if-none-match': '"r1"' })).status, 304, 'If-None-Match is evaluated before Range')
  t.equal(f.hits('/r'), 1)
})

t.test('a Range request with nothing stored goes upstream; the 206 is passed through, never stored', async t => {
  const seen: Array<string | undefined> = []
  const f = await cacheFixture(t, {
    '/p': (req, res) => {
      seen.push(req.headers.range)
      if (req.headers.range === 'bytes=0-4') {
        res.writeHead(206, { ...text, 'cache-control': 'max-age=600', 'content-range': 'bytes 0-4/20' }).end(body.slice(0, 5))
        return
      }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(body)
    },
    '/unsolicited': (_q, res) => res.writeHead(206, { ...text, 'cache-control': 'max-age=600', 'content-range': 'bytes 0-4/20' }).end(body.slice(0, 5)),
  })
  const part = await f.get('/p', { range: 'bytes=0-4' })
  t.equal(part.status, 206, 'the origin\'s 206 is passed on')
  t.equal(part.body, '01234')
  t.equal(seen[0], 'bytes=0-4', 'with the client\'s Range')
  const whole = await f.get('/p')
  t.equal(whole.status, 200, 'the next full request is not answered with the part')
  t.equal(whole.body, body)
  t.equal(whole.headers['x-cache'], 'MISS')
  t.equal((await f.get('/p', { range: 'bytes=5-9' })).body, '56789', 'once the whole is stored, ranges come from it')
  t.equal(f.hits('/p'), 2)
  await f.get('/unsolicited')
  const again = await f.get('/unsolicited')
  t.not(again.headers['x-cache'], 'HIT', 'an unsolicited 206 is never stored as the whole')
  t.equal(f.hits('/unsolicited'), 2)
})
