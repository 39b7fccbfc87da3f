// Conformance probe: freshness (RFC 9111 §4.2, §5.1, §5.3; RFC 9110 §5.6.7, §6.6.1), one check per path.
import t from 'tap'
import { coarseNow } from '../../src/clock.ts'
import { until } from '../gateway-cache/fixture.ts'
import { httpDate, probe } from './probe.ts'

const fresh = 'the second request is answered from the cache'
const stale = 'the second request goes to the origin'

t.test('freshness lifetime', async t => {
  const p = await probe(t)
  const cached = async (path: string, headers: Record<string, string | string[]>, status = 200): Promise<boolean> => {
    p.route(path, () => ({ status, headers }))
    await p.twice(path)
    return p.hits(path) === 1
  }

  // §5.2.2.1 max-age
  t.ok(await cached('/max-age', { 'cache-control': 'max-age=3600' }), `max-age=3600: ${fresh}`)
  t.notOk(await cached('/max-age-0', { 'cache-control': 'max-age=0' }), `max-age=0: ${stale}`)
  t.ok(await cached('/max-age-upper', { 'cache-control': 'MAX-AGE=3600' }), `directive names are case-insensitive (§5.2): ${fresh}`)
  t.ok(await cached('/max-age-space', { 'cache-control': ' max-age=3600 ' }), `surrounding whitespace is ignored: ${fresh}`)
  t.ok(await cached('/max-age-list', { 'cache-control': 'foo, max-age=3600, bar=baz' }), `unknown directives are ignored (§5.2.3): ${fresh}`)
  t.ok(await cached('/max-age-lines', { 'cache-control': ['foo', 'max-age=3600'] }), `several Cache-Control lines are combined: ${fresh}`)
  t.notOk(await cached('/max-age-neg', { 'cache-control': 'max-age=-1' }), `negative max-age is invalid, so stale (§1.2.2): ${stale}`)
  t.notOk(await cached('/max-age-junk', { 'cache-control': 'max-age=abc' }), `non-numeric max-age is stale: ${stale}`)
  t.notOk(await cached('/max-age-quoted-in-string', { 'cache-control': 'foo="max-age=3600"' }), `max-age inside a quoted string is no directive: ${stale}`)
  // §4.2.1: "either the first occurrence should be used or the response should be considered stale": Livery takes stale.
  t.notOk(await cached('/max-age-dup', { 'cache-control': 'max-age=3600, max-age=1' }), `conflicting duplicate max-age: stale, one of the two choices §4.2.1 gives: ${stale}`)
  t.ok(await cached('/max-age-dup-same', { 'cache-control': 'max-age=3600, max-age=3600' }), `an identical duplicate is no conflict: ${fresh}`)
  // Documented departure: §5.2 asks recipients to accept the quoted form, Livery treats it as invalid (docs/caching.md).
  t.notOk(await cached('/max-age-quoted', { 'cache-control': 'max-age="3600"' }), `departure (docs/caching.md): quoted max-age="3600" is invalid, stale: ${stale}`)
  p.route('/max-age-big', () => ({ headers: { 'cache-control': 'max-age=99999999999' } }))
  await p.twice('/max-age-big')
  t.equal(p.hits('/max-age-big'), 1, `max-age beyond 2^31 s (§1.2.2): ${fresh}`)
  const big = p.f.entry('/max-age-big')
  t.ok(big !== undefined && Math.abs(big.meta.freshUntil - big.meta.responseTime - 2147483648 * 1000) < 5000, 'and its lifetime is 2147483648 s')

  // §5.2.2.10 s-maxage
  t.ok(await cached('/s-maxage', { 'cache-control': 's-maxage=3600, max-age=0' }), `s-maxage overrides max-age in a shared cache: ${fresh}`)
  t.notOk(await cached('/s-maxage-0', { 'cache-control': 's-maxage=0, max-age=3600' }), `s-maxage=0 with max-age=3600: ${stale}`)
  t.ok(await cached('/s-maxage-lines', { 'cache-control': ['max-age=0', 's-maxage=3600'] }), `s-maxage on another line still wins: ${fresh}`)
  t.ok(await cached('/s-maxage-expires', { 'cache-control': 's-maxage=3600', expires: httpDate(-3600) }), `s-maxage overrides a past Expires: ${fresh}`)

  // §5.3 Expires
  t.ok(await cached('/expires', { expires: httpDate(3600) }), `an Expires an hour ahead: ${fresh}`)
  t.notOk(await cached('/expires-past', { expires: httpDate(-3600) }), `an Expires in the past: ${stale}`)
  t.notOk(await cached('/expires-zero', { expires: '0' }), `Expires: 0 is invalid, already expired: ${stale}`)
  t.notOk(await cached('/expires-junk', { expires: 'soon' }), `Expires: soon: ${stale}`)
  const ahead = new Date(Date.now() + 3600_000)
  const rfc850 = ahead.toUTCString().replace(/^(\w{3}), (\d\d) (\w{3}) (\d{4})/, (_m, _d, dd: string, mon: string, y: string) => {
    return `${['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'][ahead.getUTCDay()]}, ${dd}-${mon}-${y.slice(2)}`
  })
  t.ok(await cached('/expires-rfc850', { expires: rfc850 }), `an obsolete RFC 850 date is accepted (RFC 9110 §5.6.7): ${fresh}`)
  const [, mon, dd, time, yyyy] = /^\w{3}, (\d\d) (\w{3}) (\d{4}) (\S+)/.exec(ahead.toUTCString())!.reduce<string[]>((a, v, i) => { a[[0, 2, 1, 4, 3][i]] = v; return a }, [])
  const asctime = `${ahead.toUTCString().slice(0, 3)} ${mon} ${String(Number(dd)).padStart(2, ' ')} ${time} ${yyyy}`
  t.ok(await cached('/expires-asctime', { expires: asctime }), `an asctime date is accepted: ${fresh}`)
  t.notOk(await cached('/expires-tz', { expires: ahead.toUTCString().replace('GMT', 'CET') }), `a zone other than GMT is invalid: ${stale}`)
  t.notOk(await cached('/expires-dash', { expires: ahead.toUTCString().replace(/ (\w{3}) (\d{4})/, '-$1-$2') }), `dashes in an IMF-fixdate are invalid: ${stale}`)
  t.notOk(await cached('/expires-nocomma', { expires: ahead.toUTCString().replace(',', '') }), `a missing comma is invalid: ${stale}`)
  t.notOk(await cached('/expires-spaces', { expires: ahead.toUTCString().replace(' ', '  ') }), `extra spaces are invalid: ${stale}`)
  t.notOk(await cached('/expires-hour', { expires: ahead.toUTCString().replace(/ 0(\d):/, ' $1:').replace(/ (\d\d):(\d\d):(\d\d) /, ' 1:$2:$3 ') }), `a 1-digit hour is invalid: ${stale}`)
  t.notOk(await cached('/expires-two', { expires: [httpDate(3600), httpDate(7200)] }), `two Expires lines mean already expired: ${stale}`)
  t.ok(await cached('/expires-max-age', { 'cache-control': 'max-age=3600', expires: httpDate(-3600) }), `max-age overrides a past Expires: ${fresh}`)
  t.notOk(await cached('/expires-max-age-0', { 'cache-control': 'max-age=0', expires: httpDate(3600) }), `max-age=0 overrides a future Expires: ${stale}`)
  // An origin clock 600 s ahead: Expires is 300 s before its Date, so the lifetime is 0 (§4.2.1), not 300 s of our clock.
  t.notOk(await cached('/expires-date', { date: httpDate(600), expires: httpDate(300) }), `Expires counts from the origin's Date, not the local clock: ${stale}`)

  // §4.2.2 heuristics
  const lm = httpDate(-10 * 86400)
  t.ok(await cached('/heuristic', { 'last-modified': lm }), `Last-Modified 10 days ago, no explicit freshness: heuristically fresh: ${fresh}`)
  const h = p.f.entry('/heuristic')
  t.ok(h !== undefined && Math.abs(h.meta.freshUntil - h.meta.responseTime - 86400_000) < 5000, 'with 10 % of the interval (a day)')
  p.route('/heuristic-2d', () => ({ headers: { 'last-modified': httpDate(-2 * 86400) } }))
  await p.twice('/heuristic-2d')
  const h2 = p.f.entry('/heuristic-2d')
  t.ok(h2 !== undefined && Math.abs(h2.meta.freshUntil - h2.meta.responseTime - 0.2 * 86400_000) < 5000, 'Last-Modified 2 days ago: 10 % of it, 4.8 h')
  t.notOk(await cached('/heuristic-aged', { 'last-modified': httpDate(-2 * 86400), age: String(5 * 3600) }), `an Age above the heuristic lifetime: ${stale}`)
  t.ok(await cached('/heuristic-date', { 'last-modified': httpDate(-3 * 86400), date: httpDate(-3600) }), `the interval runs from Last-Modified to Date: ${fresh}`)
  t.notOk(await cached('/heuristic-future', { 'last-modified': httpDate(600) }), `a Last-Modified after Date gives no heuristic: ${stale}`)
  for (const status of [203, 204, 300, 301, 308, 404, 405, 410, 414, 501]) {
    t.ok(await cached(`/heuristic-${status}`, { 'last-modified': lm }, status), `${status} is heuristically cacheable (RFC 9110 §15.1): ${fresh}`)
  }
  for (const status of [299, 302, 303, 307, 400, 403, 500, 502, 503]) {
    t.notOk(await cached(`/no-heuristic-${status}`, { 'last-modified': lm }, status), `${status} is not heuristically cacheable: ${stale}`)
  }
  for (const status of [299, 302, 400, 403, 500, 503, 599]) {
    t.ok(await cached(`/explicit-${status}`, { 'cache-control': 'max-age=3600' }, status), `${status} with max-age is cacheable (§3): ${fresh}`)
  }
  t.ok(await cached('/explicit-expires-500', { expires: httpDate(3600) }, 500), `500 with Expires is cacheable: ${fresh}`)
  t.ok(await cached('/public-heuristic-500', { 'cache-control': 'public', 'last-modified': lm }, 500), `public allows heuristic freshness for any status (§4.2.2): ${fresh}`)
  t.notOk(await cached('/nothing', {}), `no freshness and no validator: not stored: ${stale}`)
})

t.test('Age and Date (§4.2.3, §5.1)', async t => {
  const p = await probe(t)
  p.route('/age', () => ({ headers: { 'cache-control': 'max-age=3600' } }))
  const first = await p.get('/age')
  const hit = await p.get('/age')
  t.equal(hit.headers['x-cache'], 'HIT', 'a hit')
  t.match(hit.headers.age, /^[0-9]+$/, 'a hit carries Age')
  t.equal(first.headers.age, undefined, 'a response straight from the origin without Age gets none')
  t.ok(hit.headers.date !== undefined, 'a stored response without Date is given one (RFC 9110 §6.6.1)')
  const e = p.f.entry('/age')!
  await until(() => coarseNow() - e.meta.responseTime >= 1_100, 10_000, 'a second of the gateway clock')
  t.ok(Number((await p.get('/age')).headers.age) >= 1, 'Age increases while the entry is stored')

  p.route('/age-in', () => ({ headers: { 'cache-control': 'max-age=3600', age: '1000' } }))
  await p.get('/age-in')
  const ageIn = await p.get('/age-in')
  t.ok(Number(ageIn.headers.age) >= 1000, 'an incoming Age is honoured in the Age sent on')
  t.equal(p.hits('/age-in'), 1, 'and Age below the lifetime: still fresh')

  p.route('/age-over', () => ({ headers: { 'cache-control': 'max-age=60', age: '120' } }))
  await p.twice('/age-over')
  t.equal(p.hits('/age-over'), 2, 'Age above the lifetime: stale (no stored reuse)')

  p.route('/age-junk', () => ({ headers: { 'cache-control': 'max-age=3600', age: 'abc' } }))
  await p.twice('/age-junk')
  t.equal(p.hits('/age-junk'), 1, 'an invalid Age is ignored')

  p.route('/date-old', () => ({ headers: { 'cache-control': 'max-age=60', date: httpDate(-120) } }))
  await p.twice('/date-old')
  t.equal(p.hits('/date-old'), 2, 'a Date 120 s old with max-age=60: apparent age makes it stale')
  p.route('/date-old-ok', () => ({ headers: { 'cache-control': 'max-age=3600', date: httpDate(-120) } }))
  await p.get('/date-old-ok')
  const dated = await p.get('/date-old-ok')
  t.equal(p.hits('/date-old-ok'), 1, 'a Date 120 s old with max-age=3600: still fresh')
  t.ok(Number(dated.headers.age) >= 119, 'and its Age counts from Date (apparent age)')
  p.route('/date-junk', () => ({ headers: { 'cache-control': 'max-age=3600', date: 'yesterday' } }))
  await p.twice('/date-junk')
  t.equal(p.hits('/date-junk'), 1, 'an invalid Date is replaced by the time received')
})
