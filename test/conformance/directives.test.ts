// Conformance probe: response and request directives (RFC 9111 §3, §3.5, §4.2.4, §5.2; RFC 5861; RFC 9213).
import { request as httpRequest } from 'node:http'
import t from 'tap'
import { httpDate, probe } from './probe.ts'

const etag = '"v1"'
/** A validator-bearing origin that answers a matching If-None-Match with 304. */
const revalidating = (cc: string, extra: Record<string, string> = {}) => (n: number, req: Record<string, string | string[] | undefined>) =>
  req['if-none-match'] === etag ? { status: 304, headers: { etag, 'cache-control': cc } } : { headers: { etag, 'cache-control': cc, ...extra } }

t.test('response directives', async t => {
  const p = await probe(t)
  const cached = async (path: string, headers: Record<string, string | string[]>, req: Record<string, string> = {}): Promise<boolean> => {
    p.route(path, () => ({ headers }))
    await p.get(path, req)
    await p.get(path)
    return p.hits(path) === 1
  }
  t.notOk(await cached('/no-store', { 'cache-control': 'no-store, max-age=3600' }), 'no-store: not stored (§5.2.2.5)')
  t.notOk(await cached('/no-store-upper', { 'cache-control': 'No-Store, max-age=3600' }), 'No-Store, any case: not stored')
  t.notOk(await cached('/no-store-line', { 'cache-control': ['max-age=3600', 'no-store'] }), 'no-store on a second line: not stored')
  t.notOk(await cached('/private', { 'cache-control': 'private, max-age=3600' }), 'private: not stored by a shared cache (§5.2.2.7)')
  t.notOk(await cached('/private-s-maxage', { 'cache-control': 'private, s-maxage=3600' }), 'private with s-maxage: not stored')
  p.route('/private-field', () => ({ headers: { 'cache-control': 'private="x-user", max-age=3600', 'x-user': 'alice' } }))
  await p.get('/private-field')
  const pf = await p.get('/private-field')
  t.equal(p.hits('/private-field'), 1, 'private="x-user": the rest of the response is stored')
  t.equal(pf.headers['x-user'], undefined, 'and X-User is not served from it')
  p.route('/no-cache-field', () => ({ headers: { 'cache-control': 'no-cache="x-user", max-age=3600', 'x-user': 'alice' } }))
  await p.get('/no-cache-field')
  const ncf = await p.get('/no-cache-field')
  t.equal(p.hits('/no-cache-field'), 1, 'no-cache="x-user": reused without revalidation (§5.2.2.4)')
  t.equal(ncf.headers['x-user'], undefined, 'without the named field')
  t.ok(await cached('/public', { 'cache-control': 'public, max-age=3600' }), 'public, max-age: stored')
  t.ok(await cached('/must-understand', { 'cache-control': 'must-understand, no-store, max-age=3600' }), 'must-understand overrides no-store for an understood status (§5.2.2.3)')

  p.route('/no-cache', revalidating('no-cache, max-age=3600'))
  await p.get('/no-cache')
  const nc = await p.get('/no-cache')
  t.equal(p.hits('/no-cache'), 2, 'no-cache: revalidated before every use (§5.2.2.4)')
  t.equal(p.seen('/no-cache')[1]['if-none-match'], etag, 'with a conditional request')
  t.equal(nc.status, 200, 'the client gets the stored 200')
  t.equal(nc.body, '/no-cache #1', 'with the stored body')
  await p.get('/no-cache')
  t.equal(p.hits('/no-cache'), 3, 'and again on the next use')
  p.route('/no-cache-upper', revalidating('NO-CACHE'))
  await p.twice('/no-cache-upper')
  t.equal(p.hits('/no-cache-upper'), 2, 'NO-CACHE, any case: revalidated')
  p.route('/max-age-0-validated', revalidating('max-age=0'))
  await p.twice('/max-age-0-validated')
  t.equal(p.seen('/max-age-0-validated')[1]['if-none-match'], etag, 'max-age=0 with an ETag: stored and revalidated')

  // §4.2.4, §5.2.2.2: an error from the origin must not be answered with the stale copy.
  p.route('/must-revalidate', (n) => n === 1 ? { headers: { etag, 'cache-control': 'max-age=60, must-revalidate', age: '60' } } : { status: 503, body: 'down' })
  await p.get('/must-revalidate')
  t.equal((await p.get('/must-revalidate')).status, 503, 'must-revalidate, stale, origin 503: the 503, never the stale copy')
  p.route('/proxy-revalidate', (n) => n === 1 ? { headers: { etag, 'cache-control': 'max-age=60, proxy-revalidate', age: '60' } } : { status: 503, body: 'down' })
  await p.get('/proxy-revalidate')
  t.equal((await p.get('/proxy-revalidate')).status, 503, 'proxy-revalidate: the same in a shared cache')
  p.route('/s-maxage-stale', (n) => n === 1 ? { headers: { etag, 'cache-control': 's-maxage=60', age: '60' } } : { status: 503, body: 'down' })
  await p.get('/s-maxage-stale')
  t.equal((await p.get('/s-maxage-stale')).status, 503, 's-maxage implies proxy-revalidate (§5.2.2.10)')
  p.route('/mr-fresh', (n) => ({ headers: { 'cache-control': 'max-age=3600, must-revalidate' }, body: `mr${n}` }))
  await p.twice('/mr-fresh')
  t.equal(p.hits('/mr-fresh'), 1, 'must-revalidate does not prevent reuse while fresh')
  p.route('/mr-revalidate', revalidating('max-age=60, must-revalidate', { age: '60' }))
  await p.get('/mr-revalidate')
  const mrr = await p.get('/mr-revalidate')
  t.equal(p.seen('/mr-revalidate')[1]['if-none-match'], etag, 'must-revalidate, stale: a conditional request')
  t.equal(mrr.body, '/mr-revalidate #1', 'a 304 makes the stored body usable')

  // RFC 5861
  p.route('/swr', (n) => ({ headers: { 'cache-control': 'max-age=1, stale-while-revalidate=3600', age: n === 1 ? '1' : '0' } }))
  await p.get('/swr')
  const swr = await p.get('/swr')
  t.equal(swr.body, '/swr #1', 'stale-while-revalidate: the stale response is served')
  t.equal(swr.headers['x-cache'], 'UPDATING', 'while it is refreshed')
  p.route('/sie', (n) => n === 1 ? { headers: { 'cache-control': 'max-age=1, stale-if-error=3600', age: '1' } } : { status: 500, body: 'error' })
  await p.get('/sie')
  const sie = await p.get('/sie')
  t.equal(sie.body, '/sie #1', 'stale-if-error: a 500 from the origin is answered with the stale response')
  t.equal(sie.headers['x-cache'], 'STALE', 'marked stale')
  // Documented departure: the site's staleIfError (1 h) treats an origin 5xx as "disconnected" (§4.2.4); docs/caching.md.
  p.route('/stale-on-500', (n) => n === 1 ? { headers: { 'cache-control': 'max-age=60', etag, age: '60' } } : { status: 500, body: 'error' })
  await p.get('/stale-on-500')
  t.equal((await p.get('/stale-on-500')).headers['x-cache'], 'STALE', 'departure (docs/caching.md, staleIfError 1 h): an origin 500 without stale-if-error is answered stale')
  p.route('/stale-no-grace', (n) => ({ headers: { 'cache-control': 'max-age=60', etag: `"g${n}"`, age: n === 1 ? '60' : '0' } }))
  await p.get('/stale-no-grace')
  const ng = await p.get('/stale-no-grace')
  t.equal(ng.body, '/stale-no-grace #2', 'a stale response is not served while the origin is fine (§4.2.4, grace 0 s)')
})

t.test('request directives (§5.2.1, §5.4)', async t => {
  const p = await probe(t)
  const route = (path: string): string => p.route(path, (n) => ({ headers: { 'cache-control': 'max-age=3600', etag: `"r${n}"` }, body: `${path} #${n}` }))
  const second = async (path: string, req: Record<string, string>): Promise<string> => {
    route(path)
    await p.get(path)
    return (await p.get(path, req)).body
  }
  t.equal(await second('/req-max-age-0', { 'cache-control': 'max-age=0' }), '/req-max-age-0 #2', 'max-age=0: not answered from the cache')
  t.equal(p.seen('/req-max-age-0')[1]['if-none-match'], '"r1"', 'but revalidated with the stored validator')
  t.equal(await second('/req-max-age-big', { 'cache-control': 'max-age=600' }), '/req-max-age-big #1', 'max-age=600 on a young entry: from the cache')
  t.equal(await second('/req-no-cache', { 'cache-control': 'no-cache' }), '/req-no-cache #2', 'no-cache: validated with the origin')
  t.equal(await second('/req-pragma', { pragma: 'no-cache' }), '/req-pragma #2', 'Pragma: no-cache without Cache-Control: the same (§5.4)')
  t.equal(await second('/req-pragma-cc', { pragma: 'no-cache', 'cache-control': 'max-age=600' }), '/req-pragma-cc #1', 'Pragma is ignored when Cache-Control is present')
  t.equal(await second('/req-min-fresh', { 'cache-control': 'min-fresh=7200' }), '/req-min-fresh #2', 'min-fresh beyond the remaining lifetime: not from the cache')
  t.equal(await second('/req-min-fresh-ok', { 'cache-control': 'min-fresh=60' }), '/req-min-fresh-ok #1', 'min-fresh within it: from the cache')
  t.equal(await second('/req-upper', { 'cache-control': 'NO-CACHE' }), '/req-upper #2', 'request directives are case-insensitive')
  p.route('/req-max-stale', (n) => ({ headers: { 'cache-control': 'max-age=60', etag: `"s${n}"`, age: n === 1 ? '60' : '0' } }))
  await p.get('/req-max-stale')
  t.equal((await p.get('/req-max-stale', { 'cache-control': 'max-stale=600' })).body, '/req-max-stale #1', 'max-stale=600: a stale response is acceptable')
  t.equal((await p.get('/req-max-stale', { 'cache-control': 'max-stale' })).body, '/req-max-stale #1', 'bare max-stale: any staleness')
  p.route('/req-max-stale-mr', (n) => ({ headers: { 'cache-control': 'max-age=60, must-revalidate', etag: `"m${n}"`, age: n === 1 ? '60' : '0' } }))
  await p.get('/req-max-stale-mr')
  t.equal((await p.get('/req-max-stale-mr', { 'cache-control': 'max-stale' })).body, '/req-max-stale-mr #2', 'max-stale does not override must-revalidate')
  p.route('/req-max-stale-short', (n) => ({ headers: { 'cache-control': 'max-age=60', etag: `"t${n}"`, age: n === 1 ? '600' : '0' } }))
  await p.get('/req-max-stale-short')
  t.equal((await p.get('/req-max-stale-short', { 'cache-control': 'max-stale=10' })).body, '/req-max-stale-short #2', 'stale beyond max-stale: not served')
  const oic = await p.get('/req-oic-none', { 'cache-control': 'only-if-cached' })
  t.equal(oic.status, 504, 'only-if-cached with nothing stored: 504 (§5.2.1.7)')
  t.equal(p.hits('/req-oic-none'), 0, 'and the origin is not asked')
  t.equal(await second('/req-oic', { 'cache-control': 'only-if-cached' }), '/req-oic #1', 'only-if-cached with a fresh entry: served from it')
  route('/req-no-store')
  await p.get('/req-no-store', { 'cache-control': 'no-store' })
  await p.get('/req-no-store')
  t.equal(p.hits('/req-no-store'), 2, 'no-store in the request: its response is not stored')
})

t.test('Authorization (§3.5), Set-Cookie, CDN-Cache-Control (RFC 9213), hop-by-hop fields (§3.1)', async t => {
  const p = await probe(t)
  const auth = { authorization: 'Basic dXNlcjpwYXNz' }
  const afterAuth = async (path: string, cc: string): Promise<number> => {
    p.route(path, () => ({ headers: { 'cache-control': cc } }))
    await p.get(path, auth)
    await p.get(path)
    return p.hits(path)
  }
  t.equal(await afterAuth('/auth', 'max-age=3600'), 2, 'an Authorization request\'s response with max-age only: not stored')
  t.equal(await afterAuth('/auth-public', 'public, max-age=3600'), 1, 'with public: stored')
  t.equal(await afterAuth('/auth-s-maxage', 's-maxage=3600'), 1, 'with s-maxage: stored')
  t.equal(await afterAuth('/auth-mr', 'max-age=3600, must-revalidate'), 1, 'with must-revalidate: stored')
  p.route('/auth-reuse', () => ({ headers: { 'cache-control': 'max-age=3600' } }))
  await p.get('/auth-reuse')
  await p.get('/auth-reuse', auth)
  t.equal(p.hits('/auth-reuse'), 2, 'a stored response without public is not used for an Authorization request')

  // Documented departure: RFC 9111 lets a cache store a response with Set-Cookie; Livery never shares one (docs/caching.md).
  p.route('/set-cookie', () => ({ headers: { 'cache-control': 'public, max-age=3600', 'set-cookie': 'sess=user1' } }))
  await p.get('/set-cookie')
  const sc = await p.get('/set-cookie')
  t.equal(p.hits('/set-cookie'), 2, 'departure (docs/caching.md): a response with Set-Cookie is never stored, so never replayed')
  t.equal(sc.headers['set-cookie'], 'sess=user1', 'each client gets its own cookie from the origin')
  p.route('/set-cookie-nc', () => ({ headers: { 'cache-control': 'max-age=3600, no-cache="set-cookie"', 'set-cookie': 'sess=user1' } }))
  await p.get('/set-cookie-nc')
  const scn = await p.get('/set-cookie-nc')
  t.equal(p.hits('/set-cookie-nc'), 1, 'no-cache="set-cookie": stored')
  t.equal(scn.headers['set-cookie'], undefined, 'without the cookie')

  const cdn = async (path: string, headers: Record<string, string>): Promise<number> => {
    p.route(path, () => ({ headers }))
    await p.twice(path)
    return p.hits(path)
  }
  t.equal(await cdn('/cdn', { 'cdn-cache-control': 'max-age=3600', 'cache-control': 'no-store' }), 1, 'CDN-Cache-Control max-age overrides Cache-Control no-store (RFC 9213 §2.2)')
  t.equal(await cdn('/cdn-no-store', { 'cdn-cache-control': 'no-store', 'cache-control': 'max-age=3600' }), 2, 'CDN-Cache-Control no-store overrides Cache-Control max-age')
  t.equal(await cdn('/cdn-private', { 'cdn-cache-control': 'private', 'cache-control': 'max-age=3600' }), 2, 'CDN-Cache-Control private: not stored')
  t.equal(await cdn('/cdn-expires', { 'cdn-cache-control': 'max-age=3600', expires: httpDate(-60) }), 1, 'CDN-Cache-Control overrides Expires')
  t.equal(await cdn('/cdn-zero', { 'cdn-cache-control': 'max-age=0', 'cache-control': 'max-age=3600' }), 2, 'CDN-Cache-Control max-age=0 overrides a longer Cache-Control')
  t.equal(await cdn('/cdn-invalid', { 'cdn-cache-control': 'max-age=3600, ,;=', 'cache-control': 'max-age=3600' }), 1, 'an invalid CDN-Cache-Control is ignored: Cache-Control applies')
  t.equal(await cdn('/cdn-upper', { 'CDN-Cache-Control': 'max-age=3600', 'cache-control': 'no-store' }), 1, 'the field name is case-insensitive')
  p.route('/cdn-forward', () => ({ headers: { 'cdn-cache-control': 'max-age=3600', 'cache-control': 'max-age=60' } }))
  const cf = await p.twice('/cdn-forward')
  t.equal(cf.headers['cache-control'], 'max-age=60', 'Cache-Control is sent on unchanged')
  t.equal(cf.headers['cdn-cache-control'], 'max-age=3600', 'CDN-Cache-Control is forwarded for a CDN in front (RFC 9213 §3)')

  p.route('/hop', () => ({ headers: { 'cache-control': 'max-age=3600', connection: 'x-hop', 'x-hop': 'secret', 'x-end': 'kept', 'keep-alive': 'timeout=99' } }))
  const miss = await p.get('/hop')
  const hit = await p.get('/hop')
  t.equal(p.hits('/hop'), 1, 'a response naming fields in Connection is stored')
  t.equal(miss.headers['x-hop'], undefined, 'a field named in Connection is not forwarded (RFC 9110 §7.6.1)')
  t.equal(hit.headers['x-hop'], undefined, 'nor stored (§3.1)')
  t.equal(hit.headers['x-end'], 'kept', 'end-to-end fields are stored')
  // (Node's server sends its own `Keep-Alive: timeout=5`, hence another value here.)
  t.not(hit.headers['keep-alive'], 'timeout=99', 'the origin\'s Keep-Alive is not replayed')
  p.route('/hop-req', () => ({ headers: { 'cache-control': 'max-age=3600' } }))
  // undici replaces a client's Connection header, so this one request goes out through node:http.
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(p.f.url + '/hop-req', { agent: false, headers: { host: p.f.host, connection: 'close, x-client-hop', 'x-client-hop': '1' } }, (res) => { res.resume(); res.on('end', resolve) })
    req.on('error', reject)
    req.end()
  })
  t.equal(p.seen('/hop-req')[0]['x-client-hop'], undefined, 'a request field named in Connection is not forwarded upstream')
})
