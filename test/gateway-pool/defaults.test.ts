/**
 * The gateway as a new user runs it: `livery serve` with one site and every
 * other setting at its default, including the default process count (one per
 * core). Each promise the defaults make is checked across those processes:
 * no stale page the origin did not allow, no shared Set-Cookie, session
 * cookies pass, pages without freshness are not shared, a bad Host never
 * reaches the cache, concurrent cold misses make one upstream request, and
 * the gateway is ready.
 */
import t from 'tap'
import type { ServerResponse } from 'node:http'
import { availableParallelism } from 'node:os'
import { startCliGateway } from '../helpers/cli-gateway.ts'
import { countingUpstream, until } from '../gateway-tiers/helpers.ts'
import { metricValue } from './fixture.ts'

const text = { 'content-type': 'text/plain' }

t.test('livery serve on its defaults', async t => {
  const processes = availableParallelism()
  const held: Array<() => void> = []
  const up = await countingUpstream(t, {
    // Stale on arrival (Age equals max-age), no validators, no stale-while-revalidate.
    '/expired': (_q, res: ServerResponse, n) => { res.writeHead(200, { ...text, 'cache-control': 'max-age=60', age: '60' }).end(`e${n}`) },
    '/cookie': (_q, res: ServerResponse, n) => { res.writeHead(200, { ...text, 'cache-control': 'public, max-age=600', 'set-cookie': `sess=user${n}` }).end(`c${n}`) },
    '/no-headers': (_q, res: ServerResponse, n) => { res.writeHead(200, text).end(`nonce-${n}`) },
    '/account': (_q, res: ServerResponse, n) => { res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(`a${n}`) },
    '/cold': (_q, res: ServerResponse, n) => { held.push(() => { res.writeHead(200, { ...text, 'cache-control': 'max-age=600' }).end(`cold${n}`) }) },
  })
  const dir = t.testdir({})
  const gw = await startCliGateway(t, dir, 'defaults', [
    'listen: { host: 127.0.0.1, port: 0 }',
    'sites:',
    `  - { name: site, hosts: ["*"], upstream: ${JSON.stringify(up.url)} }`,
  ], processes)
  t.equal(gw.workers.length, processes, `one process per core (${processes})`)
  t.equal((await gw.request('/_livery/readyz')).status, 200, 'ready')

  // Fresh connections: the primary hands them to its workers in turn, so each check spans every process.
  const many = async (path: string, headers: Record<string, string> = {}): Promise<Array<Awaited<ReturnType<typeof gw.request>>>> => {
    const out = []
    for (let i = 0; i < processes * 2; i++) out.push(await gw.request(path, { headers }))
    return out
  }

  await t.test('an expired page is fetched again, never served stale (grace 0s)', async t => {
    const replies = await many('/expired')
    t.same(new Set(replies.map(r => r.headers['x-cache'])), new Set(['MISS']), 'every request: MISS')
    t.equal(up.hits('/expired'), replies.length, 'each went upstream')
  })

  await t.test('a response that sets a cookie is never shared', async t => {
    const replies = await many('/cookie')
    const cookies = replies.map(r => String(r.headers['set-cookie']))
    t.equal(new Set(cookies).size, replies.length, 'every client got its own cookie')
    t.equal(up.hits('/cookie'), replies.length, 'each went upstream')
  })

  await t.test('a page without caching headers is not shared', async t => {
    const replies = await many('/no-headers')
    t.equal(new Set(replies.map(r => r.body)).size, replies.length, 'every client got its own render')
  })

  await t.test('a WordPress session cookie passes the cache; an analytics cookie does not split it', async t => {
    await gw.request('/account', { headers: { cookie: '_ga=GA1.2.3' } })
    const anon = await many('/account', { cookie: '_ga=GA1.2.4' })
    t.ok(anon.slice(processes).every(r => r.headers['x-cache'] === 'HIT'), 'analytics cookies: hits')
    const before = up.hits('/account')
    const logged = await many('/account', { cookie: 'wordpress_logged_in_abc=admin' })
    t.same(new Set(logged.map(r => r.headers['x-cache'])), new Set(['BYPASS']), 'logged in: BYPASS')
    t.equal(up.hits('/account') - before, logged.length, 'each logged-in request went upstream')
  })

  await t.test('a Host that could run into the path gets 400 and reaches nothing', async t => {
    const before = up.hits('/x')
    const r = await gw.request('/x', { headers: { host: 'www.test/echo' } })
    t.equal(r.status, 400)
    t.equal(up.hits('/x'), before, 'the upstream never saw it')
  })

  await t.test('concurrent cold misses over every process make one upstream request', async t => {
    const n = processes * 10
    const all = Promise.all(Array.from({ length: n }, () => gw.request('/cold')))
    // Released once every request is in: at the upstream or on the gateway's waiting list (the scrape is one more).
    await until(async () => metricValue((await gw.request('/_livery/metrics')).body, 'livery_http_requests_active') >= n + 1, 90_000, 'every request to be waiting')
    for (const release of held.splice(0)) release()
    const replies = await all
    t.equal(up.hits('/cold'), 1, 'one upstream request for the gateway')
    t.same(new Set(replies.map(r => r.body)), new Set(['cold1']), 'every client got that response')
  })
})
