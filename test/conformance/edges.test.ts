// Conformance probe: the less travelled paths of RFC 9111 (argument forms, HEAD on stale entries, 304 details, RFC 5861 windows, RFC 9213 over private).
import t from 'tap'
import { httpDate, probe } from './probe.ts'

t.test('argument forms and combinations (§5.2)', async t => {
  const p = await probe(t)
  const second = async (path: string, headers: Record<string, string | string[]>): Promise<{ hits: number, headers: Record<string, unknown> }> => {
    p.route(path, () => ({ headers }))
    await p.get(path)
    const r = await p.get(path)
    return { hits: p.hits(path), headers: r.headers }
  }
  const ncToken = await second('/no-cache-token', { 'cache-control': 'max-age=3600, no-cache=x-user', 'x-user': 'alice' })
  t.equal(ncToken.hits, 1, 'no-cache=x-user (token form, §5.2.2.4 "ought to accept"): the rest is reused')
  t.equal(ncToken.headers['x-user'], undefined, 'without the named field')
  const ncList = await second('/no-cache-list', { 'cache-control': 'no-cache="x-a, x-b", max-age=3600', 'x-a': '1', 'x-b': '2', 'x-c': '3' })
  t.ok(ncList.headers['x-a'] === undefined && ncList.headers['x-b'] === undefined, 'no-cache="x-a, x-b": both fields withheld')
  t.equal(ncList.headers['x-c'], '3', 'other fields kept')
  const pvToken = await second('/private-token', { 'cache-control': 'private=x-user, max-age=3600', 'x-user': 'alice' })
  t.equal(pvToken.hits, 1, 'private=x-user (token form): the rest is stored')
  t.equal(pvToken.headers['x-user'], undefined, 'without the named field')
  t.equal((await second('/no-cache-no-validator', { 'cache-control': 'no-cache, max-age=3600' })).hits, 2, 'no-cache without a validator: fetched every time')
  t.equal((await second('/trailing-comma', { 'cache-control': 'max-age=3600,' })).hits, 1, 'an empty list element is ignored')
  t.equal((await second('/tab', { 'cache-control': 'public,\tmax-age=3600' })).hits, 1, 'a tab is whitespace')
  t.equal((await second('/invalid-max-age-expires', { 'cache-control': 'max-age=abc', expires: httpDate(3600) })).hits, 2, 'an invalid max-age is not replaced by Expires (§5.2.2.1: stale)')
  t.equal((await second('/public-only', { 'cache-control': 'public', 'last-modified': httpDate(-86400) })).hits, 1, 'public with Last-Modified: heuristically fresh')
  t.equal((await second('/cdn-over-private', { 'cdn-cache-control': 'max-age=3600', 'cache-control': 'private' })).hits, 1, 'CDN-Cache-Control max-age replaces a Cache-Control private for this cache (RFC 9213 §2.2)')
  t.equal((await second('/cdn-s-maxage', { 'cdn-cache-control': 's-maxage=3600', 'cache-control': 'max-age=0' })).hits, 1, 'CDN-Cache-Control s-maxage')
  t.equal((await second('/cdn-no-cache', { 'cdn-cache-control': 'no-cache', 'cache-control': 'max-age=3600' })).hits, 2, 'CDN-Cache-Control no-cache: not reused without validation')
})

t.test('HEAD, 304 details, RFC 5861 windows', async t => {
  const p = await probe(t)
  const etag = '"h"'
  p.route('/head-stale', (n, req) => req['if-none-match'] === etag
    ? { status: 304, headers: { etag, 'cache-control': 'max-age=3600' } }
    : { headers: { etag, 'cache-control': 'max-age=60', age: n === 1 ? '60' : '0' } })
  await p.get('/head-stale')
  const head = await p.get('/head-stale', {}, 'HEAD')
  t.equal(p.hits('/head-stale'), 2, 'HEAD on a stale entry is validated with the origin')
  t.equal(head.status, 200, 'and answered 200')
  t.equal(head.body, '', 'without a body')
  t.equal((await p.get('/head-stale')).body, '/head-stale #1', 'the stored GET body is intact after it')
  t.equal((await p.get('/head-stale', { 'if-none-match': etag }, 'HEAD')).status, 304, 'a conditional HEAD matching the stored ETag: 304')

  p.route('/304-cookie', (n, req) => req['if-none-match'] === etag
    ? { status: 304, headers: { etag, 'cache-control': 'max-age=3600', 'set-cookie': 'sess=one' } }
    : { headers: { etag, 'cache-control': 'max-age=60', age: '60' } })
  await p.get('/304-cookie')
  await p.get('/304-cookie')
  const after = await p.get('/304-cookie')
  t.equal(p.hits('/304-cookie'), 2, 'a 304 with Set-Cookie freshens the entry')
  t.equal(after.headers['set-cookie'], undefined, 'but its cookie is not stored for others')

  p.route('/304-type', (n, req) => req['if-none-match'] === etag
    ? { status: 304, headers: { etag, 'cache-control': 'max-age=3600', 'content-type': 'text/html' } }
    : { headers: { etag, 'cache-control': 'max-age=60', age: '60' } })
  await p.get('/304-type')
  t.equal((await p.get('/304-type')).headers['content-type'], 'text/html', 'a 304\'s Content-Type replaces the stored one (§3.2: all but framing fields)')

  p.route('/swr-over', (n) => ({ headers: { 'cache-control': 'max-age=1, stale-while-revalidate=10', age: n === 1 ? '100' : '0', etag: `"s${n}"` } }))
  await p.get('/swr-over')
  const swrOver = await p.get('/swr-over')
  t.equal(swrOver.body, '/swr-over #2', 'beyond the stale-while-revalidate window: not served stale')
  p.route('/swr-mr', (n) => ({ headers: { 'cache-control': 'max-age=1, stale-while-revalidate=3600, no-cache', age: n === 1 ? '1' : '0', etag: `"m${n}"` } }))
  await p.get('/swr-mr')
  t.equal((await p.get('/swr-mr')).body, '/swr-mr #2', 'no-cache wins over stale-while-revalidate')

  p.route('/stale-age', (n) => ({ headers: { 'cache-control': 'max-age=1, stale-while-revalidate=3600', age: n === 1 ? '30' : '0' } }))
  await p.get('/stale-age')
  const sa = await p.get('/stale-age')
  t.ok(Number(sa.headers.age) >= 30, 'a stale response carries its Age too (§5.1)')
})

t.test('authorization, invalidation edges', async t => {
  const p = await probe(t)
  const auth = { authorization: 'Bearer x' }
  p.route('/auth-served', () => ({ headers: { 'cache-control': 's-maxage=3600' } }))
  await p.get('/auth-served')
  await p.get('/auth-served', auth)
  t.equal(p.hits('/auth-served'), 1, 'an entry with s-maxage answers an Authorization request (§3.5)')
  p.route('/auth-private', () => ({ headers: { 'cache-control': 'public, private, max-age=3600' } }))
  await p.get('/auth-private', auth)
  await p.get('/auth-private')
  t.equal(p.hits('/auth-private'), 2, 'private wins over public')

  p.route('/inv-abs', () => ({ headers: { 'cache-control': 'max-age=3600' } }))
  p.route('/inv-abs-trigger', () => ({ headers: { location: `http://${p.f.host}/inv-abs` } }))
  await p.get('/inv-abs')
  await p.get('/inv-abs-trigger', {}, 'POST')
  await p.get('/inv-abs')
  t.equal(p.hits('/inv-abs'), 2, 'an absolute Location on the same origin is invalidated')
  p.route('/inv-query', () => ({ headers: { 'cache-control': 'max-age=3600' } }))
  await p.get('/inv-query?a=1')
  await p.get('/inv-query?a=1', {}, 'PUT')
  await p.get('/inv-query?a=1')
  t.equal(p.hits('/inv-query'), 3, 'the request URL with its query is invalidated')
  p.route('/inv-vary', (n, _req, method) => ({ headers: method === 'GET' ? { 'cache-control': 'max-age=3600', vary: 'accept-language' } : {} }))
  await p.get('/inv-vary', { 'accept-language': 'en' })
  await p.get('/inv-vary', { 'accept-language': 'de' })
  await p.get('/inv-vary', {}, 'DELETE')
  await p.get('/inv-vary', { 'accept-language': 'en' })
  await p.get('/inv-vary', { 'accept-language': 'de' })
  t.equal(p.hits('/inv-vary'), 5, 'every Vary variant is invalidated')
})

t.test('documented departures (docs/caching.md, "Deliberate departures from RFC 9111")', async t => {
  const p = await probe(t)
  p.route('/vary-cookie', (n) => ({ headers: { 'cache-control': 'max-age=3600', vary: 'cookie' }, body: `/vary-cookie #${n}` }))
  await p.get('/vary-cookie', { cookie: '_ga=1' })
  t.equal((await p.get('/vary-cookie', { cookie: '_ga=2' })).body, '/vary-cookie #1', 'departure: Vary: Cookie ignores cookies that are not session cookies (every visitor would be a variant)')
  p.route('/session', () => ({ headers: { 'cache-control': 'public, max-age=3600' } }))
  await p.get('/session')
  await p.get('/session', { cookie: 'wordpress_logged_in_abc=1' })
  t.equal(p.hits('/session'), 2, 'departure: a request with a session cookie (sites[].passCookies) passes the cache')
  p.route('/multi-range', () => ({ headers: { 'cache-control': 'max-age=3600' }, body: '0123456789' }))
  await p.get('/multi-range')
  const mr = await p.get('/multi-range', { range: 'bytes=0-1,5-6' })
  t.equal(mr.status, 200, 'several ranges: the whole 200 (RFC 9110 §14.2 lets a server ignore Range)')
  p.route('/304-encoding', (n, req) => req['if-none-match'] === '"e"'
    ? { status: 304, headers: { etag: '"e"', 'cache-control': 'max-age=3600', 'content-encoding': 'br' } }
    : { headers: { etag: '"e"', 'cache-control': 'max-age=60', age: '60' } })
  await p.get('/304-encoding')
  t.equal((await p.get('/304-encoding')).headers['content-encoding'], undefined, 'departure: a 304 does not change Content-Encoding, which describes the stored bytes')
})

t.test('more request and Age edges (§4.3.2, §5.1, §5.2.1, §5.2.2.10)', async t => {
  const p = await probe(t)
  const etag = '"q"'
  const staleRoute = (path: string, cc = 'max-age=60'): string => p.route(path, (n, req) => req['if-none-match'] === etag
    ? { status: 304, headers: { etag, 'cache-control': 'max-age=3600' } }
    : { headers: { etag, 'cache-control': cc, age: n === 1 ? '60' : '0' } })

  staleRoute('/cond-stale')
  await p.get('/cond-stale')
  const cs = await p.get('/cond-stale', { 'if-none-match': etag })
  t.equal(p.hits('/cond-stale'), 2, 'a client conditional on a stale entry is validated with the origin first (§4.3.2)')
  t.equal(cs.status, 304, 'and then answered 304 from the freshened entry')

  staleRoute('/oic-stale')
  await p.get('/oic-stale')
  t.equal((await p.get('/oic-stale', { 'cache-control': 'only-if-cached' })).status, 504, 'only-if-cached with only a stale entry: 504')
  t.equal(p.hits('/oic-stale'), 1, 'and the origin is not asked')
  t.equal((await p.get('/oic-stale', { 'cache-control': 'only-if-cached, max-stale' })).status, 200, 'only-if-cached with max-stale: the stale entry')

  staleRoute('/max-stale-s-maxage', 's-maxage=60')
  await p.get('/max-stale-s-maxage')
  await p.get('/max-stale-s-maxage', { 'cache-control': 'max-stale' })
  t.equal(p.hits('/max-stale-s-maxage'), 2, 'max-stale does not reach past s-maxage, which implies proxy-revalidate (§5.2.2.10)')

  staleRoute('/max-stale-junk')
  await p.get('/max-stale-junk')
  await p.get('/max-stale-junk', { 'cache-control': 'max-stale=abc' })
  t.equal(p.hits('/max-stale-junk'), 2, 'an invalid max-stale allows no staleness')

  staleRoute('/revalidated-age')
  await p.get('/revalidated-age')
  const ra = await p.get('/revalidated-age')
  t.ok(ra.headers.age === undefined || Number(ra.headers.age) < 60, 'a response just validated does not carry the stale Age')

  p.route('/age-list', () => ({ headers: { 'cache-control': 'max-age=60', age: '30, 90' } }))
  await p.twice('/age-list')
  t.equal(p.hits('/age-list'), 1, 'Age: 30, 90: the first value (30) counts, still fresh')
  p.route('/age-negative', () => ({ headers: { 'cache-control': 'max-age=60', age: '-100' } }))
  await p.get('/age-negative')
  const an = await p.get('/age-negative')
  t.equal(p.hits('/age-negative'), 1, 'a negative Age is invalid and ignored')
  t.ok(Number(an.headers.age) < 60, 'and does not become the Age sent on')

  p.route('/unknown-method', (n, _req, method) => ({ headers: method === 'GET' ? { 'cache-control': 'max-age=3600' } : {} }))
  await p.get('/unknown-method')
  await p.get('/unknown-method', {}, 'REPORT')
  await p.get('/unknown-method')
  t.equal(p.hits('/unknown-method'), 3, 'a non-error response to a method of unknown safety invalidates (§4.4)')
})

t.test('clock skew, forwarded Age, Pragma on responses, must-understand (§4.2.3, §5.1, §5.4, §5.2.2.3)', async t => {
  const p = await probe(t)
  const hits = async (path: string, headers: Record<string, string>, status = 200, req: Record<string, string> = {}): Promise<number> => {
    p.route(path, () => ({ status, headers }))
    await p.get(path)
    await p.get(path, req)
    return p.hits(path)
  }
  t.equal(await hits('/date-future', { 'cache-control': 'max-age=3600', date: httpDate(600) }), 1, 'a Date in the future gives no negative age: fresh')
  t.equal(await hits('/expires-equals-date', { date: httpDate(0), expires: httpDate(0) }), 2, 'Expires equal to Date: stale')
  t.equal(await hits('/pragma-response', { 'cache-control': 'max-age=3600', pragma: 'no-cache' }), 1, 'Pragma: no-cache on a response has no meaning for caching (§5.4)')
  t.equal(await hits('/must-understand-unknown', { 'cache-control': 'must-understand, no-store, max-age=3600' }, 299), 2, 'must-understand with a status this cache does not implement: not stored')
  t.equal(await hits('/req-max-age-old', { 'cache-control': 'max-age=7200', age: '4000' }, 200, { 'cache-control': 'max-age=3600' }), 2, 'request max-age=3600 against an entry aged 4000 s: not from the cache')
  p.route('/age-forward', () => ({ headers: { 'cache-control': 'max-age=3600', age: '100' } }))
  const fwd = await p.get('/age-forward')
  t.ok(Number(fwd.headers.age) >= 100, 'the origin\'s Age is passed on with the first response')
  p.route('/head-then-get', (n, _req, method) => ({ headers: { 'cache-control': 'max-age=3600' }, body: method === 'HEAD' ? '' : 'full body' }))
  await p.get('/head-then-get', {}, 'HEAD')
  const hg = await p.get('/head-then-get')
  t.equal(hg.body, 'full body', 'a GET after a HEAD on an empty cache gets the body')
  t.equal(p.hits('/head-then-get'), 1, 'from the entry the HEAD filled by fetching GET (docs/caching.md: HEAD misses fetch GET)')
})

t.test('stored Date, Vary on revalidation, a changed Vary (§4.1, §4.3.1, RFC 9110 §6.6.1)', async t => {
  const p = await probe(t)
  const date = httpDate(-120)
  p.route('/stored-date', () => ({ headers: { 'cache-control': 'max-age=3600', date } }))
  await p.get('/stored-date')
  t.equal((await p.get('/stored-date')).headers.date, date, 'a hit carries the origin\'s Date, not the time of the hit')

  p.route('/vary-reval', (n, req) => req['if-none-match'] === '"v"'
    ? { status: 304, headers: { etag: '"v"', 'cache-control': 'max-age=3600', vary: 'accept-language' } }
    : { headers: { etag: '"v"', 'cache-control': 'max-age=60', vary: 'accept-language', age: '60' } })
  await p.get('/vary-reval', { 'accept-language': 'fr' })
  const vr = await p.get('/vary-reval', { 'accept-language': 'fr' })
  t.equal(p.seen('/vary-reval')[1]['accept-language'], 'fr', 'the revalidation carries the Vary-named request header')
  t.equal(p.seen('/vary-reval')[1]['if-none-match'], '"v"', 'with the variant\'s validator')
  t.equal(vr.body, '/vary-reval #1', 'and the 304 serves that variant')

  p.route('/client-validator', (n, req) => n === 1
    ? { headers: { etag: '"mine"', 'cache-control': 'max-age=60', age: '60' } }
    : req['if-none-match'] === '"mine"' ? { status: 304, headers: { etag: '"mine"', 'cache-control': 'max-age=3600' } } : { headers: { etag: '"new"' } })
  await p.get('/client-validator')
  const cv = await p.get('/client-validator', { 'if-none-match': '"theirs"' })
  t.equal(p.seen('/client-validator')[1]['if-none-match'], '"mine"', 'revalidating, the cache sends its own validator, not the client\'s (§4.3.1)')
  t.equal(cv.status, 200, 'and the client, whose ETag did not match, gets the full response')

  p.route('/vary-change', (n) => ({ headers: n === 1 ? { 'cache-control': 'max-age=60', age: '60', etag: '"a"', vary: 'x-a' } : { 'cache-control': 'max-age=3600' }, body: `/vary-change #${n}` }))
  await p.get('/vary-change', { 'x-a': '1' })
  await p.get('/vary-change', { 'x-a': '1' })
  t.equal((await p.get('/vary-change', { 'x-a': '2' })).body, '/vary-change #2', 'a response that drops Vary is used for every request after it')
})

t.test('ranges against stale and no-cache entries (RFC 9110 §14, RFC 9111 §4.3)', async t => {
  const p = await probe(t)
  const body = '0123456789'
  const route = (path: string, cc: string): string => p.route(path, (n, req) => {
    if (req['if-none-match'] === '"r"') return { status: 304, headers: { etag: '"r"', 'cache-control': cc } }
    if (req.range !== undefined) return { status: 206, headers: { etag: '"r"', 'content-range': 'bytes 0-3/10' }, body: body.slice(0, 4) }
    return { headers: { etag: '"r"', 'cache-control': cc, age: n === 1 ? '60' : '0' }, body }
  })
  route('/range-stale', 'max-age=60')
  await p.get('/range-stale')
  const rs = await p.get('/range-stale', { range: 'bytes=0-3' })
  t.equal(rs.status, 206, 'a Range request on a stale entry: 206')
  t.equal(rs.body, '0123', 'with the right bytes')
  t.equal((await p.get('/range-stale')).body, body, 'and the stored response is still the complete one')
  route('/range-no-cache', 'no-cache')
  await p.get('/range-no-cache')
  const rn = await p.get('/range-no-cache', { range: 'bytes=2-5' })
  t.equal(rn.body, '2345', 'a Range request on a no-cache entry: validated, then the bytes asked for')
})
