// RFC 9111 §4.4 (invalidation) through the real Gateway and a real upstream.
import t from 'tap'
import { cacheFixture, text } from './fixture.ts'

t.test('§4.4 unsafe methods invalidate the URL and its same-host Location / Content-Location', async t => {
  const f = await cacheFixture(t, {
    '/page': (req, res, n) => {
      if (req.method === 'GET' || req.method === 'HEAD') { res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(`p${n}`); return }
      res.writeHead(req.method === 'DELETE' && req.headers['x-fail'] !== undefined ? 500 : 200, {
        ...text, location: '/loc', 'content-location': `http://${f.host}/cloc`,
      }).end('done')
    },
    '/loc': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(`l${n}`),
    '/cloc': (_q, res, n) => res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(`c${n}`),
    '/elsewhere': (req, res, n) => {
      if (req.method === 'GET') { res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(`e${n}`); return }
      res.writeHead(201, { ...text, location: 'http://other.test/loc', 'content-location': 'http://other.test/cloc' }).end('created')
    },
  })
  const warm = async (): Promise<void> => {
    for (const p of ['/page', '/loc', '/cloc']) {
      await f.get(p)
      t.equal((await f.get(p)).headers['x-cache'], 'HIT', `${p} cached`)
    }
  }
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'MKCOL']) {
    await warm()
    const r = await f.get('/page', {}, method)
    t.equal(r.headers['x-cache'], 'BYPASS', `${method} is forwarded`)
    for (const p of ['/page', '/loc', '/cloc']) {
      t.equal((await f.get(p)).headers['x-cache'], 'MISS', `${method}: ${p} was invalidated`)
    }
  }

  await warm()
  await f.get('/page', { 'x-fail': '1' }, 'DELETE')
  t.equal((await f.get('/page')).headers['x-cache'], 'HIT', 'an error response invalidates nothing')
  await f.get('/page', {}, 'OPTIONS')
  t.equal((await f.get('/page')).headers['x-cache'], 'HIT', 'a safe method invalidates nothing')

  // The same paths cached under another host must survive a Location pointing there.
  await f.get('/loc', { host: 'other.test' })
  await f.get('/cloc', { host: 'other.test' })
  await f.get('/elsewhere')
  await f.get('/elsewhere', {}, 'POST')
  t.equal((await f.get('/elsewhere')).headers['x-cache'], 'MISS', 'the request URL itself is invalidated')
  t.equal((await f.get('/loc', { host: 'other.test' })).headers['x-cache'], 'HIT', 'a Location on another host is not invalidated')
  t.equal((await f.get('/cloc', { host: 'other.test' })).headers['x-cache'], 'HIT', 'nor a Content-Location on another host')
})

t.test('§4.4 invalidation reaches every Vary variant', async t => {
  const f = await cacheFixture(t, {
    '/v': (req, res, n) => {
      if (req.method === 'POST') { res.writeHead(204).end(); return }
      res.writeHead(200, { ...text, 'cache-control': 'max-age=600', vary: 'accept-language' }).end(`${String(req.headers['accept-language'])}${n}`)
    },
  })
  for (const lang of ['en', 'fr']) {
    await f.get('/v', { 'accept-language': lang })
    t.equal((await f.get('/v', { 'accept-language': lang })).headers['x-cache'], 'HIT')
  }
  await f.get('/v', {}, 'POST')
  for (const lang of ['en', 'fr']) t.equal((await f.get('/v', { 'accept-language': lang })).headers['x-cache'], 'MISS', `${lang} variant invalidated`)
})
