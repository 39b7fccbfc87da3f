// RFC 9111 §4.1 (Vary), §5.1 (Age), X-Cache and the access log's cache status, through the real Gateway.
import t from 'tap'
import { cacheFixture, text, until } from './fixture.ts'

t.test('§4.1 Vary: one entry per variant; Vary: * never matches', async t => {
  const f = await cacheFixture(t, {
    '/v': (req, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', vary: 'Accept-Language, Accept-Encoding' })
      .end(`${String(req.headers['accept-language'])}|${String(req.headers['accept-encoding'])}|${n}`),
    '/star': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', vary: '*' }).end(`s${n}`),
    '/star-list': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', vary: 'accept, *' }).end(`s${n}`),
  })
  const en = { 'accept-language': 'en', 'accept-encoding': 'identity' }
  const fr = { 'accept-language': 'fr', 'accept-encoding': 'identity' }
  t.equal((await f.get('/v', en)).body, 'en|identity|1')
  t.equal((await f.get('/v', fr)).body, 'fr|identity|2', 'another value: another variant')
  const enHit = await f.get('/v', en)
  t.equal(enHit.headers['x-cache'], 'HIT')
  t.equal(enHit.body, 'en|identity|1')
  t.equal((await f.get('/v', fr)).headers['x-cache'], 'HIT', 'both variants are kept')
  t.equal((await f.get('/v', { 'accept-language': 'en' })).body, 'en|undefined|3', 'an absent header is its own variant')
  t.equal((await f.get('/v', { 'accept-language': 'en', 'accept-encoding': 'gzip' })).body, 'en|gzip|4', 'every listed field counts')
  t.equal(f.hits('/v'), 4)
  for (const p of ['/star', '/star-list']) {
    await f.get(p)
    const r = await f.get(p)
    t.equal(r.headers['x-cache'], 'MISS', `${p}: Vary containing * never matches`)
    t.equal(f.hits(p), 2)
  }
})

t.test('§5.1 Age on every response served from the cache', async t => {
  const f = await cacheFixture(t, {
    '/a': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600', age: '7', etag: '"a"' }).end(`a${n}`),
    '/stale': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, stale-while-revalidate=600', age: '60' }).end(`s${n}`),
  })
  const miss = await f.get('/a')
  t.equal(miss.headers['x-cache'], 'MISS')
  const hit = await f.get('/a')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.ok(Number(hit.headers.age) >= 7, `HIT carries Age ≥ the incoming 7 (${String(hit.headers.age)})`)
  t.match(hit.headers.age, /^\d+$/, 'Age is whole seconds')
  t.equal((await f.get('/a', {}, 'HEAD')).headers.age !== undefined, true, 'HEAD hit carries Age')
  const nm = await f.get('/a', { 'if-none-match': '"a"' })
  t.equal(nm.status, 304)
  t.ok(Number(nm.headers.age) >= 7, '304 from the cache carries Age')
  await f.get('/stale')
  const st = await f.get('/stale')
  t.equal(st.headers['x-cache'], 'UPDATING')
  t.ok(Number(st.headers.age) >= 60, `a stale response carries its Age (${String(st.headers.age)})`)
})

t.test('X-Cache values and the access log\'s cache status agree', async t => {
  let failing = false
  const f = await cacheFixture(t, {
    '/hit': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(`h${n}`),
    '/bypass': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(`b${n}`),
    '/updating': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=60, stale-while-revalidate=600', age: '60' }).end(`u${n}`),
    '/revalidated': (req, res, n) => {
      if (req.headers['if-none-match'] === '"r"') { res.writeHead(304, { etag: '"r"', 'cache-control': 'max-age=600' }).end(); return }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '60', etag: '"r"' }).end(`r${n}`)
    },
    '/stale': (_q, res, n) => {
      if (failing) { res.writeHead(502, text).end('bad gateway'); return }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=60, stale-if-error=600', age: '60' }).end(`s${n}`)
    },
  }, { site: { keep: '60s' } })
  const cases: Array<[path: string, method: string, want: string]> = []
  const check = async (path: string, want: string, method = 'GET'): Promise<void> => {
    const r = await f.get(path, {}, method)
    t.equal(r.headers['x-cache'], want, `${method} ${path}: X-Cache ${want}`)
    cases.push([path, method, want])
  }
  await check('/hit', 'MISS')
  await check('/hit', 'HIT')
  await check('/bypass', 'BYPASS', 'POST')
  await check('/updating', 'MISS')
  await check('/updating', 'UPDATING')
  await check('/revalidated', 'MISS')
  await check('/revalidated', 'REVALIDATED')
  await check('/stale', 'MISS')
  failing = true
  await check('/stale', 'STALE')
  for (const path of ['/hit', '/bypass', '/updating', '/revalidated', '/stale']) {
    const want = cases.filter(c => c[0] === path)
    // The refresh behind UPDATING logs its own line; only client requests are compared.
    const lines = (await f.accessLines(path, want.length)).filter(l => l.method !== undefined).slice(0, want.length)
    t.same(lines.map(l => [l.method, l.cache]), want.map(c => [c[1], c[2]]), `${path}: the access log records the same cache status`)
  }
  await until(() => f.hits('/updating') === 2, 20_000, 'the background refresh')
})
