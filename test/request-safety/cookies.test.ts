// Cookie rules and Authorization on the request side (issue 11, item 9):
// session cookies pass the cache, other cookies neither pass nor vary the
// key, and a request with Authorization is only answered from an entry
// whose response allowed it (RFC 9111 §3.5).
import t from 'tap'
import { startSafetyGateway } from './fixture.ts'
import { parseConfig } from '../../src/config/load.ts'

const sessionCookies = [
  'wordpress_logged_in_0123abcd=admin%7C1700000000',
  'wp-postpass_0123abcd=%24P%24B',
  'comment_author_0123abcd=Alice',
  '__ac="YWRtaW4="',
  'auth_tkt=abc!userid_type:int',
  'SESS0123abcd=xyz',
  'SSESS0123abcd=xyz',
]

t.test('cookie rules', async t => {
  const f = await startSafetyGateway(t, {
    sites: [
      { name: 'cms', hosts: ['cms.test'] },
      { name: 'custom', hosts: ['custom.test'], passCookies: ['mysession', 'app_*'] },
    ],
  })

  t.test('a session cookie of WordPress, Plone or Drupal passes: upstream, not stored', async t => {
    const first = await f.get('cms.test', '/page')
    t.equal(first.headers['x-cache'], 'MISS')
    await f.untilStored('cms', 'cms.test', '/page')
    for (const cookie of sessionCookies) {
      const before = f.received.length
      const res = await f.get('cms.test', '/page', { cookie: `_ga=GA1.2.3; ${cookie}` })
      t.equal(res.headers['x-cache'], 'BYPASS', `${cookie.split('=')[0]}: passes the cache`)
      t.equal(f.received.length, before + 1, `${cookie.split('=')[0]}: went upstream`)
      t.equal(res.seen?.headers.cookie, `_ga=GA1.2.3; ${cookie}`, 'with the Cookie header as sent')
    }
    const anon = await f.get('cms.test', '/page')
    t.equal(anon.headers['x-cache'], 'HIT')
    t.equal(anon.seen?.n, first.seen?.n, 'anonymous visitors still get the anonymous page')

    const logged = await f.get('cms.test', '/first-logged-in', { cookie: sessionCookies[0] })
    t.equal(logged.headers['x-cache'], 'BYPASS')
    const next = await f.get('cms.test', '/first-logged-in')
    t.equal(next.headers['x-cache'], 'MISS', 'the logged-in answer was not stored')
    t.not(next.seen?.n, logged.seen?.n)
  })

  t.test('other cookies neither pass nor vary the key, and are forwarded', async t => {
    const first = await f.get('cms.test', '/analytics', { cookie: '_ga=GA1.2.3; _gid=GA1.2.4' })
    t.equal(first.headers['x-cache'], 'MISS', 'an analytics cookie does not pass')
    t.equal(first.seen?.headers.cookie, '_ga=GA1.2.3; _gid=GA1.2.4', 'and reaches the upstream as sent')
    await f.untilStored('cms', 'cms.test', '/analytics')
    const other = await f.get('cms.test', '/analytics', { cookie: '_ga=GA9.9.9' })
    t.equal(other.headers['x-cache'], 'HIT', 'another analytics cookie gets the same entry')
    const none = await f.get('cms.test', '/analytics')
    t.equal(none.headers['x-cache'], 'HIT', 'so does no cookie at all')
    t.equal(none.seen?.n, first.seen?.n)

    const v1 = await f.get('cms.test', '/vary-cookie', { cookie: '_ga=1' })
    t.equal(v1.headers['x-cache'], 'MISS')
    t.equal(v1.seen?.headers.cookie, '_ga=1')
    await f.untilStored('cms', 'cms.test', '/vary-cookie')
    // The variant is committed after its Vary marker; the hit below proves it is there.
    const v2 = await f.get('cms.test', '/vary-cookie', { cookie: '_ga=2' })
    t.equal(v2.headers['x-cache'], 'HIT', 'Vary: Cookie is keyed without the ignored cookies')
    const v3 = await f.get('cms.test', '/vary-cookie')
    t.equal(v3.headers['x-cache'], 'HIT')
    t.equal(v3.seen?.n, v1.seen?.n)
  })

  t.test('a site replaces the default patterns', async t => {
    await f.get('custom.test', '/c')
    await f.untilStored('custom', 'custom.test', '/c')
    const wp = await f.get('custom.test', '/c', { cookie: sessionCookies[0] })
    t.equal(wp.headers['x-cache'], 'HIT', 'the WordPress pattern is gone from this site')
    for (const cookie of ['mysession=1', 'app_user=2', 'x=1; app_=3']) {
      const res = await f.get('custom.test', '/c', { cookie })
      t.equal(res.headers['x-cache'], 'BYPASS', `${cookie} passes`)
    }
    for (const cookie of ['mysession_x=1', 'xapp_user=2', 'MYSESSION=1']) {
      const res = await f.get('custom.test', '/c', { cookie })
      t.equal(res.headers['x-cache'], 'HIT', `${cookie} does not match (whole names, case-sensitive)`)
    }
  })

  t.test('Authorization (RFC 9111 §3.5)', async t => {
    const anon = await f.get('cms.test', '/auth-plain')
    t.equal(anon.headers['x-cache'], 'MISS')
    await f.untilStored('cms', 'cms.test', '/auth-plain')
    const auth = { authorization: 'Basic YWxpY2U6c2VjcmV0' }
    const a1 = await f.get('cms.test', '/auth-plain', auth)
    t.not(a1.headers['x-cache'], 'HIT', 'an entry that did not allow it never answers a request with Authorization')
    t.equal(a1.seen?.headers.authorization, auth.authorization, 'the request went upstream')
    const a2 = await f.get('cms.test', '/auth-plain', auth)
    t.not(a2.headers['x-cache'], 'HIT', 'and the response to it was not stored')
    t.equal((await f.get('cms.test', '/auth-plain')).seen?.n, anon.seen?.n, 'the anonymous entry is still there for anonymous requests')
    for (const path of ['/auth-public', '/auth-smaxage', '/auth-mr']) {
      const r1 = await f.get('cms.test', path, auth)
      t.equal(r1.headers['x-cache'], 'MISS', `${path}: a miss`)
      await f.untilStored('cms', 'cms.test', path)
      const r2 = await f.get('cms.test', path, auth)
      t.equal(r2.headers['x-cache'], 'HIT', `${path}: the response allowed sharing, so it answers requests with Authorization`)
    }
  })
})

t.test('passCookies: the default list, and a bad pattern is refused with the key named', async t => {
  const base = { listen: { port: 0 }, cache: { directory: '/tmp/livery-unused' } }
  const config = parseConfig({ ...base, sites: [{ name: 's', upstream: 'http://127.0.0.1:1' }] }, {}, '/tmp')
  t.same(config.sites[0].passCookies, ['wordpress_logged_in_*', 'wp-postpass_*', 'comment_author_*', '__ac', 'auth_tkt', 'SESS*', 'SSESS*'])
  t.throws(() => parseConfig({ ...base, sites: [{ name: 's', upstream: 'http://127.0.0.1:1', passCookies: ['a b'] }] }, {}, '/tmp'), /sites\[0\]\.passCookies/)
  const env = parseConfig({ ...base, sites: [{ name: 's', upstream: 'http://127.0.0.1:1' }] }, { LIVERY_SITES_0_PASS_COOKIES: 'sid,app_*' }, '/tmp')
  t.same(env.sites[0].passCookies, ['sid', 'app_*'], 'a comma-separated list from the environment')
})
