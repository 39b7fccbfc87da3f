import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import { PassThrough } from 'node:stream'
import { Agent, request } from 'undici'
import { createPurgeRoute } from '../../src/cache/purge-api.ts'
import { runPurgeCommand } from '../../src/cache/purge-cli.ts'
import type { PurgeSelector } from '../../src/cache/store.ts'

interface Api { url: string, origin: string, calls: Array<{ sel: PurgeSelector, soft: boolean }>, agent: Agent }

async function startApi (t: Test, token: string, fail?: Error): Promise<Api> {
  const calls: Api['calls'] = []
  const route = createPurgeRoute({
    token,
    purge: async (sel, { soft }) => {
      if (fail !== undefined) throw fail
      calls.push({ sel, soft })
      return 3
    }
  })
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x')
    if (u.pathname === '/_livery/purge') { void route(req, res); return }
    if (req.method === 'PURGE') { void route.handlePurgeMethod(req, res, `http://demo.test${u.pathname}${u.search}`, 'demo'); return }
    res.writeHead(404).end()
  })
  server.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', resolve))
  const agent = new Agent()
  t.teardown(async () => {
    await agent.close()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url: origin + '/_livery/purge', origin, calls, agent }
}

async function post (api: Api, body: string | Buffer, headers: Record<string, string> = { authorization: 'Bearer s3cret' }, method = 'POST'): Promise<{ status: number, json: Record<string, unknown> }> {
  const res = await request(api.url, { method, body: method === 'GET' ? undefined : body, headers: { 'content-type': 'application/json', ...headers }, dispatcher: api.agent })
  const text = await res.body.text()
  return { status: res.statusCode, json: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
}

t.test('a valid purge answers the count and passes the selector', async (t) => {
  const api = await startApi(t, 's3cret')
  const r = await post(api, JSON.stringify({ urls: ['http://demo.test/a'], tags: ['news'], soft: true }))
  t.equal(r.status, 200)
  t.same(r.json, { purged: 3, soft: true })
  t.same(api.calls, [{ sel: { urls: ['http://demo.test/a'], prefixes: [], tags: ['news'] }, soft: true }])
  const all = await post(api, JSON.stringify({ all: true }))
  t.same(all.json, { purged: 3, soft: false })
  t.same(api.calls[1].sel, { all: true })
  const site = await post(api, JSON.stringify({ site: 'demo', urls: [], prefixes: ['https://demo.test/blog/'] }))
  t.equal(site.status, 200)
  t.same(api.calls[2].sel, { urls: [], prefixes: ['https://demo.test/blog/'], tags: [], site: 'demo' })
})

t.test('a missing or wrong token never purges', async (t) => {
  const api = await startApi(t, 's3cret')
  const body = JSON.stringify({ all: true })
  const cases: Array<[string, Record<string, string>]> = [
    ['no header', {}],
    ['wrong token', { authorization: 'Bearer nope' }],
    ['token prefix', { authorization: 'Bearer s3cre' }],
    ['token plus more', { authorization: 'Bearer s3cretX' }],
    ['basic auth', { authorization: 'Basic czNjcmV0' }],
    ['empty bearer', { authorization: 'Bearer ' }]
  ]
  for (const [label, headers] of cases) {
    const r = await post(api, body, headers)
    t.equal(r.status, 401, `${label}: 401`)
    t.equal(r.json.error, 'LIVERY_ERR_UNAUTHORIZED', `${label}: coded`)
  }
  t.same(api.calls, [], 'nothing purged')
})

t.test('with no token configured purging is off', async (t) => {
  const api = await startApi(t, '')
  const r = await post(api, JSON.stringify({ all: true }), { authorization: 'Bearer ' + '' })
  t.equal(r.status, 403)
  t.match(r.json.message, /purging is disabled.*admin\.token or LIVERY_ADMIN_TOKEN/)
  const r2 = await post(api, JSON.stringify({ all: true }), { authorization: 'Bearer anything' })
  t.equal(r2.status, 403)
  t.same(api.calls, [])
})

t.test('every malformed body gets 400 with a message naming the problem', async (t) => {
  const api = await startApi(t, 's3cret')
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"urls": [', /not valid JSON/],
    ['empty body', '', /not valid JSON/],
    ['array', '[]', /must be a JSON object/],
    ['string', '"all"', /must be a JSON object/],
    ['null', 'null', /must be a JSON object/],
    ['unknown field', '{"all": true, "purge": 1}', /unknown field "purge"/],
    ['urls not array', '{"urls": "http://a.test/"}', /"urls" must be an array/],
    ['url not string', '{"urls": [1]}', /"urls\[0\]" must be a non-empty string/],
    ['relative url', '{"urls": ["/a"]}', /"urls\[0\]" must be an absolute URL/],
    ['prefix relative', '{"prefixes": ["blog/"]}', /"prefixes\[0\]" must be an absolute URL/],
    ['tags not array', '{"tags": {"a": 1}}', /"tags" must be an array/],
    ['empty tag', '{"tags": [""]}', /"tags\[0\]" must be a non-empty string/],
    ['site not string', '{"site": 5}', /"site" must be a string/],
    ['all not boolean', '{"all": "yes"}', /"all" must be true or false/],
    ['soft not boolean', '{"tags": ["a"], "soft": 1}', /"soft" must be true or false/],
    ['empty selector', '{}', /selector is empty/],
    ['all-empty selector', '{"urls": [], "prefixes": [], "tags": [], "site": "", "all": false, "soft": true}', /selector is empty/]
  ]
  for (const [label, body, msg] of cases) {
    const r = await post(api, body)
    t.equal(r.status, 400, `${label}: 400`)
    t.equal(r.json.error, 'LIVERY_ERR_PURGE_REQUEST', `${label}: coded`)
    t.match(r.json.message, msg, `${label}: message`)
  }
  t.same(api.calls, [], 'nothing purged')
})

t.test('a body over 1 MiB gets 413, declared or streamed', async (t) => {
  const api = await startApi(t, 's3cret')
  const big = JSON.stringify({ tags: ['x'.repeat(1024 * 1024)] })
  const r = await post(api, big)
  t.equal(r.status, 413)
  t.equal(r.json.error, 'LIVERY_ERR_PURGE_TOO_LARGE')
  // Chunked, so the limit is found while reading rather than from Content-Length.
  const stream = new PassThrough()
  const pending = request(api.url, { method: 'POST', body: stream, headers: { authorization: 'Bearer s3cret' }, dispatcher: api.agent })
  stream.write('{"tags": ["')
  for (let i = 0; i < 20; i++) stream.write('y'.repeat(64 * 1024))
  stream.end('"]}')
  const res = await pending
  t.equal(res.statusCode, 413, 'streamed body over the limit')
  await res.body.text()
  t.same(api.calls, [])
})

t.test('other methods get 405 with Allow', async (t) => {
  const api = await startApi(t, 's3cret')
  const res = await request(api.url, { method: 'GET', dispatcher: api.agent })
  t.equal(res.statusCode, 405)
  t.equal(res.headers.allow, 'POST')
  t.match(JSON.parse(await res.body.text()).message, /use POST, not GET/)
})

t.test('a failing purge answers its error status and message', async (t) => {
  const err = Object.assign(new Error('cache tier redis failed: not connected'), {})
  const api = await startApi(t, 's3cret', err)
  const r = await post(api, JSON.stringify({ all: true }))
  t.equal(r.status, 500)
  t.match(r.json.message, /redis failed/)
})

t.test('the PURGE method purges one URL, with the same token', async (t) => {
  const api = await startApi(t, 's3cret')
  const denied = await request(api.origin + '/page?x=1', { method: 'PURGE', dispatcher: api.agent })
  t.equal(denied.statusCode, 401)
  await denied.body.text()
  const ok = await request(api.origin + '/page?x=1', { method: 'PURGE', headers: { authorization: 'Bearer s3cret', 'soft-purge': '1' }, dispatcher: api.agent })
  t.equal(ok.statusCode, 200)
  t.same(JSON.parse(await ok.body.text()), { purged: 3, soft: true })
  t.same(api.calls, [{ sel: { urls: ['http://demo.test/page?x=1'] }, soft: true }])
})

t.test('a raw request with a wrong token and a body still gets a clean 401', async (t) => {
  const api = await startApi(t, 's3cret')
  const port = Number(new URL(api.origin).port)
  const sock = connect(port, '127.0.0.1')
  t.teardown(() => sock.destroy())
  const body = '{"all":true}'
  sock.end(`POST /_livery/purge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bad\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  let text = ''
  for await (const chunk of sock) text += String(chunk)
  t.match(text, /^HTTP\/1\.1 401/)
  t.same(api.calls, [])
})

// --- livery purge ----------------------------------------------------------

function io (env: Record<string, string> = {}): { io: Parameters<typeof runPurgeCommand>[1], out: () => string, err: () => string } {
  let out = ''
  let err = ''
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  stdout.on('data', (d: Buffer) => { out += d.toString() })
  stderr.on('data', (d: Buffer) => { err += d.toString() })
  return { io: { stdout, stderr, env }, out: () => out, err: () => err }
}

t.test('livery purge calls the API', async (t) => {
  const api = await startApi(t, 's3cret')
  const a = io()
  t.equal(await runPurgeCommand(['--tag', 'news', '--tag', 'home', '--soft', '--server', api.origin, '--token', 's3cret'], a.io), 0)
  t.match(a.out(), /soft-purged 3 entries/)
  t.same(api.calls[0], { sel: { urls: [], prefixes: [], tags: ['news', 'home'] }, soft: true })

  const b = io({ LIVERY_URL: api.origin, LIVERY_ADMIN_TOKEN: 's3cret' })
  t.equal(await runPurgeCommand(['--url', 'http://demo.test/a', '--prefix', 'http://demo.test/b/'], b.io), 0, 'server and token from env')
  t.same(api.calls[1].sel, { urls: ['http://demo.test/a'], prefixes: ['http://demo.test/b/'], tags: [] })

  const c = io({ LIVERY_URL: api.origin, LIVERY_ADMIN_TOKEN: 's3cret' })
  t.equal(await runPurgeCommand(['--all'], c.io), 0)
  t.equal(await runPurgeCommand(['--site', 'demo'], c.io), 0)
  t.same(api.calls.slice(2).map((x) => x.sel), [{ all: true }, { urls: [], prefixes: [], tags: [], site: 'demo' }])
})

t.test('livery purge exits 1 with the API message on an API error', async (t) => {
  const api = await startApi(t, 's3cret')
  const a = io()
  t.equal(await runPurgeCommand(['--all', '--server', api.origin, '--token', 'wrong'], a.io), 1)
  t.match(a.err(), /401: the admin token is wrong/)
  const b = io()
  t.equal(await runPurgeCommand(['--url', '/relative', '--server', api.origin, '--token', 's3cret'], b.io), 1)
  t.match(b.err(), /400: .*absolute URL/)
  t.same(api.calls, [])
  const closed = io()
  t.equal(await runPurgeCommand(['--all', '--server', 'http://127.0.0.1:1', '--token', 'x'], closed.io), 1, 'unreachable server')
  t.match(closed.err(), /cannot reach http:\/\/127\.0\.0\.1:1/)
})

t.test('livery purge exits 2 on usage errors', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /say what to purge/],
    [['--bogus'], /Unknown option/],
    [['--all', '--tag', 'x', '--token', 't'], /do not combine/],
    [['--all'], /no admin token/],
    [['--all', '--token', 't', '--server', 'ftp://x'], /--server must be an http/],
    [['--tag'], /argument missing/]
  ]
  for (const [argv, msg] of cases) {
    const x = io()
    t.equal(await runPurgeCommand(argv, x.io), 2, argv.join(' ') || '(none)')
    t.match(x.err(), msg)
  }
  const h = io()
  t.equal(await runPurgeCommand(['--help'], h.io), 0)
  t.match(h.out(), /usage: livery purge/)
})
