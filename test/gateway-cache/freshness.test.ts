// RFC 9111 §4.2 (freshness) through the real Gateway and a real upstream.
import t from 'tap'
import { cacheFixture, text } from './fixture.ts'

t.test('§4.2.1 freshness lifetime: s-maxage > max-age > Expires', async t => {
  const now = (): string => new Date().toUTCString()
  const f = await cacheFixture(t, {
    '/max-age': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60' }).end(`v${n}`),
    '/s-maxage': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=0, s-maxage=60' }).end(`v${n}`),
    '/s-maxage-zero': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, s-maxage=0' }).end(`v${n}`),
    '/expires': (_q, res, n) => res.writeHead(200, { ...text, date: now(), expires: new Date(Date.now() + 60_000).toUTCString() }).end(`v${n}`),
    '/expires-past': (_q, res, n) => res.writeHead(200, { ...text, date: now(), expires: new Date(Date.now() - 60_000).toUTCString() }).end(`v${n}`),
    '/expires-invalid': (_q, res, n) => res.writeHead(200, { ...text, expires: '0' }).end(`v${n}`),
    '/expires-garbage': (_q, res, n) => res.writeHead(200, { ...text, expires: 'next tuesday' }).end(`v${n}`),
    '/max-age-over-expires': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', date: now(), expires: new Date(Date.now() - 60_000).toUTCString() }).end(`v${n}`),
    '/conflict': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, max-age=30' }).end(`v${n}`),
    '/max-age-junk': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=soon' }).end(`v${n}`),
    '/max-age-quoted': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age="60"' }).end(`v${n}`),
  })
  const fresh = async (p: string): Promise<boolean> => {
    const before = f.hits(p)
    await f.get(p)
    const r = await f.get(p)
    return r.headers['x-cache'] === 'HIT' && f.hits(p) === before + 1
  }
  t.ok(await fresh('/max-age'), 'max-age')
  t.ok(await fresh('/s-maxage'), 's-maxage overrides max-age=0 in a shared cache')
  t.notOk(await fresh('/s-maxage-zero'), 's-maxage=0 overrides max-age=60')
  t.ok(await fresh('/expires'), 'Expires in the future')
  t.notOk(await fresh('/expires-past'), 'Expires in the past is stale')
  t.notOk(await fresh('/expires-invalid'), 'an invalid Expires ("0") means already expired')
  t.notOk(await fresh('/expires-garbage'), 'an unparsable Expires means already expired')
  t.ok(await fresh('/max-age-over-expires'), 'max-age wins over a past Expires')
  t.notOk(await fresh('/conflict'), 'conflicting duplicate max-age: treated as stale (§4.2.1)')
  t.notOk(await fresh('/max-age-junk'), 'an invalid max-age is stale')
  t.notOk(await fresh('/max-age-quoted'), 'a quoted-string max-age is invalid (senders MUST NOT generate it, §5.2.2.1): stale')
})

t.test('§4.2.1 / RFC 9110 §5.6.7 parsing: only real HTTP-dates, directives outside quoted strings, lines combined', async t => {
  const imf = 'Thu, 01 Dec 2050 08:00:00 GMT'
  const variants: Record<string, string | string[]> = {
    'utc': 'Thu, 01 Dec 2050 08:00:00 UTC',
    'zone': 'Thu, 01 Dec 2050 08:00:00 +0000',
    'one-digit-hour': 'Thu, 01 Dec 2050 8:00:00 GMT',
    'dashes': 'Thu, 01-Dec-2050 08:00:00 GMT',
    'no-comma': 'Thu 01 Dec 2050 08:00:00 GMT',
    'extra-spaces': 'Thu,  01 Dec 2050 08:00:00 GMT',
    'lowercase': 'thu, 01 dec 2050 08:00:00 gmt',
    'zero': '0',
    'two-lines': [imf, imf],
    'two-values': `${imf}, ${imf}`,
  }
  const routes: Record<string, (q: unknown, res: import('node:http').ServerResponse, n: number) => void> = {}
  for (const [name, v] of Object.entries(variants)) {
    routes[`/expires-${name}`] = (_q, res, n) => { res.setHeader('expires', v); res.writeHead(200, { ...text, etag: '"e"' }).end(`v${n}`) }
  }
  const asctime = 'Thu Dec  1 08:00:00 2050'
  Object.assign(routes, {
    '/expires-imf': (_q: unknown, res: import('node:http').ServerResponse, n: number) => res.writeHead(200, { ...text, expires: imf }).end(`v${n}`),
    '/expires-asctime': (_q: unknown, res: import('node:http').ServerResponse, n: number) => res.writeHead(200, { ...text, expires: asctime }).end(`v${n}`),
    '/quoted-inside': (_q: unknown, res: import('node:http').ServerResponse, n: number) => res.writeHead(200, { ...text, etag: '"q"', 'cache-control': 'community="max-age=600, public"' }).end(`v${n}`),
    '/negative': (_q: unknown, res: import('node:http').ServerResponse, n: number) => res.writeHead(200, { ...text, etag: '"n"', 'cache-control': 'max-age=-600' }).end(`v${n}`),
    '/lines': (_q: unknown, res: import('node:http').ServerResponse, n: number) => { res.setHeader('cache-control', ['public', 'max-age=600']); res.writeHead(200, text).end(`v${n}`) },
    '/s-lines': (_q: unknown, res: import('node:http').ServerResponse, n: number) => { res.setHeader('cache-control', ['max-age=0', 's-maxage=600']); res.writeHead(200, text).end(`v${n}`) },
    '/s-lines-zero': (_q: unknown, res: import('node:http').ServerResponse, n: number) => { res.setHeader('cache-control', ['s-maxage=0', 'max-age=600']); res.writeHead(200, { ...text, etag: '"z"' }).end(`v${n}`) },
  })
  const f = await cacheFixture(t, routes as never)
  const fresh = async (p: string): Promise<boolean> => {
    const before = f.hits(p)
    await f.get(p)
    const r = await f.get(p)
    return r.headers['x-cache'] === 'HIT' && f.hits(p) === before + 1
  }
  for (const name of Object.keys(variants)) t.notOk(await fresh(`/expires-${name}`), `Expires ${JSON.stringify(variants[name])} is not an HTTP-date: already expired`)
  t.ok(await fresh('/expires-imf'), 'control: IMF-fixdate in the future')
  t.ok(await fresh('/expires-asctime'), 'control: asctime-date in the future')
  t.notOk(await fresh('/quoted-inside'), 'max-age inside a quoted string is not a directive')
  t.notOk(await fresh('/negative'), 'a negative max-age is stale')
  t.ok(await fresh('/lines'), 'Cache-Control lines are combined')
  t.ok(await fresh('/s-lines'), 's-maxage on another line still wins over max-age=0')
  t.notOk(await fresh('/s-lines-zero'), 's-maxage=0 on another line wins over max-age=600')
})

t.test('§4.2.3 incoming Age counts against the lifetime', async t => {
  const f = await cacheFixture(t, {
    '/aged-out': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '60' }).end(`v${n}`),
    '/aged': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', age: '30' }).end(`v${n}`),
    '/aged-junk': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: 'soon' }).end(`v${n}`),
    '/aged-list': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '70, 10' }).end(`v${n}`),
    '/date-old': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', date: new Date(Date.now() - 120_000).toUTCString() }).end(`v${n}`),
  })
  await f.get('/aged-out')
  await f.get('/aged-out')
  t.equal(f.hits('/aged-out'), 2, 'Age equal to max-age: stale on arrival')
  await f.get('/aged')
  const hit = await f.get('/aged')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.ok(Number(hit.headers.age) >= 30 && Number(hit.headers.age) < 40, `Age = incoming Age + resident time (${String(hit.headers.age)})`)
  await f.get('/aged-junk')
  t.equal((await f.get('/aged-junk')).headers['x-cache'], 'HIT', 'an unparsable Age is ignored')
  await f.get('/aged-list')
  await f.get('/aged-list')
  t.equal(f.hits('/aged-list'), 2, 'a list-valued Age uses its first member (70 > 60: stale)')
  await f.get('/date-old')
  await f.get('/date-old')
  t.equal(f.hits('/date-old'), 2, 'apparent age from Date counts too (Date 120 s ago, max-age=60)')
})

t.test('§4.2.2 heuristic freshness only for heuristically cacheable statuses', async t => {
  const lm = new Date(Date.now() - 10 * 24 * 3600 * 1000).toUTCString()
  const f = await cacheFixture(t, {
    '/200': (_q, res, n) => res.writeHead(200, { ...text, 'last-modified': lm }).end(`v${n}`),
    '/404': (_q, res, n) => res.writeHead(404, { ...text, 'last-modified': lm }).end(`v${n}`),
    '/302': (_q, res, n) => res.writeHead(302, { ...text, location: '/200', 'last-modified': lm }).end(`v${n}`),
    '/201': (_q, res, n) => res.writeHead(201, { ...text, 'last-modified': lm }).end(`v${n}`),
  }, { sendDate: true })
  for (const [p, ok] of [['/200', true], ['/404', true], ['/302', false], ['/201', false]] as const) {
    await f.get(p)
    const r = await f.get(p)
    t.equal(r.headers['x-cache'] === 'HIT', ok, `${p}: heuristic ${ok ? 'applies' : 'does not apply'}`)
  }
  const e = f.entry('/200')
  t.ok(e !== undefined && e.meta.freshUntil - e.meta.responseTime <= 24 * 3600 * 1000 + 1, 'heuristic lifetime is capped (10 % of 10 days > 24 h)')
})

t.test('site defaultTtl caches responses without freshness; max-age=1 expires', async t => {
  const f = await cacheFixture(t, {
    '/bare': (_q, res, n) => res.writeHead(200, text).end(`b${n}`),
    '/short': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=1' }).end(`s${n}`),
    '/explicit-zero': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=0' }).end(`z${n}`),
  }, { site: { defaultTtl: '1s' } })
  await f.get('/bare')
  await f.get('/short')
  t.equal((await f.get('/bare')).headers['x-cache'], 'HIT', 'defaultTtl makes a bare response fresh')
  t.equal((await f.get('/short')).headers['x-cache'], 'HIT', 'fresh within max-age=1')
  await f.get('/explicit-zero')
  await f.get('/explicit-zero')
  t.equal(f.hits('/explicit-zero'), 2, 'defaultTtl never overrides explicit freshness (max-age=0)')
  // Both at once: waiting for one first, the other's 1 s entry can expire out
  // of the store before its own wait starts looking for it.
  await Promise.all([f.untilStale('/bare'), f.untilStale('/short')])
  const b = await f.get('/bare')
  t.equal(b.body, 'b2', 'defaultTtl expired: fetched again')
  t.equal(b.headers['x-cache'], 'MISS')
  const s = await f.get('/short')
  t.equal(s.body, 's2', 'max-age=1 expired: fetched again')
})

t.test('§5.2.1 request directives: max-age, min-fresh, max-stale, no-cache, only-if-cached', async t => {
  const f = await cacheFixture(t, {
    '/p': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', age: '100' }).end(`v${n}`),
    '/gone': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '60', etag: '"g"' }).end(`g${n}`),
  }, { site: { keep: '60s' } })
  await f.get('/p')
  t.equal((await f.get('/p', { 'cache-control': 'max-age=200' })).headers['x-cache'], 'HIT', 'max-age above the current age: hit')
  t.equal((await f.get('/p', { 'cache-control': 'max-age=50' })).body, 'v2', 'max-age below the current age: refetched')
  t.equal((await f.get('/p', { 'cache-control': 'min-fresh=9999' })).body, 'v3', 'min-fresh beyond the remaining lifetime: refetched')
  t.equal((await f.get('/p', { 'cache-control': 'no-cache' })).body, 'v4', 'no-cache: not served without going upstream')
  t.equal((await f.get('/p', { pragma: 'no-cache' })).body, 'v5', 'Pragma: no-cache without Cache-Control')
  await f.get('/gone')
  const oic = await f.get('/nothing', { 'cache-control': 'only-if-cached' })
  t.equal(oic.status, 504, 'only-if-cached with nothing stored: 504')
  t.equal(f.hits('/nothing'), 0)
  const ms = await f.get('/gone', { 'cache-control': 'max-stale=120' })
  t.equal(ms.body, 'g1', 'max-stale accepts a stale entry')
  t.equal(ms.headers['x-cache'], 'STALE')
  t.equal(f.hits('/gone'), 1)
})
