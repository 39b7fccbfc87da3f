// Cache poisoning through Host (issue 11, item 10): a Host that is not a
// valid host[:port] never reaches the cache or the upstream, and cache keys
// are built from parts that cannot run into each other.
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startGateway, startUpstream } from '../helpers/servers.ts'
import { rawRequest } from '../helpers/raw-http.ts'
import { cacheKey } from '../../src/cache/key.ts'
import { startSafetyGateway } from './fixture.ts'

interface Seen { readonly host: string, readonly url: string }

/** A cacheable upstream whose body says which request produced it. */
async function startCacheableUpstream (t: Test): Promise<{ url: string, received: Seen[] }> {
  const received: Seen[] = []
  const up = await startUpstream(t, (req, res) => {
    const seen = { host: req.headers.host ?? '', url: req.url ?? '' }
    received.push(seen)
    const body = JSON.stringify(seen)
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=600', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  return { url: up.url, received }
}

t.test('a Host carrying a path cannot choose the page another site\'s visitor gets (hosts: ["*"])', async t => {
  const up = await startCacheableUpstream(t)
  const gw = await startGateway(t, {
    raw: {
      sites: [
        { name: 'any', hosts: ['*'], upstream: up.url },
        { name: 'echo', hosts: ['www.test'], pathPrefix: '/echo', upstream: up.url },
      ],
    },
  })
  const attack = await rawRequest(gw.port, 'GET /x HTTP/1.1\r\nHost: www.test/echo\r\nConnection: close\r\n\r\n')
  t.equal(attack.status, 400, 'Host with a path → 400')
  t.equal(up.received.length, 0, 'the attack reached no upstream')
  const victim = await request(`${gw.url}/echo/x`, { dispatcher: gw.agent, headers: { host: 'www.test' } })
  const body = JSON.parse(await victim.body.text()) as Seen
  t.equal(victim.headers['x-cache'], 'MISS', 'the victim\'s request is not answered from an entry the attacker made')
  t.equal(body.url, '/echo/x')
})

const badHosts: [name: string, head: string][] = [
  ['a path', 'Host: www.test/echo'],
  ['a query', 'Host: www.test?x'],
  ['a fragment', 'Host: www.test#x'],
  ['userinfo', 'Host: user@www.test'],
  ['a space', 'Host: www test'],
  ['a backslash', 'Host: www.test\\x'],
  ['a double quote', 'Host: "www.test"'],
  ['a bad percent-encoding', 'Host: www%zz.test'],
  ['an empty value', 'Host: '],
  ['a non-numeric port', 'Host: www.test:80x'],
  ['a port above 65535', 'Host: www.test:65536'],
  ['two ports', 'Host: www.test:80:80'],
  ['an unterminated IP literal', 'Host: [::1'],
  ['an IP literal that is not IPv6', 'Host: [zz::1]'],
  ['text after an IP literal', 'Host: [::1]x'],
  ['a control byte', 'Host: www\x01test'],
  ['two Host headers', 'Host: www.test\r\nHost: other.test'],
  ['two identical Host headers', 'Host: www.test\r\nHost: www.test'],
  ['no Host on HTTP/1.1', 'X-No-Host: 1'],
]

t.test('an invalid Host → 400 before the cache or the upstream', async t => {
  const up = await startCacheableUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  for (const [name, head] of badHosts) {
    const res = await rawRequest(gw.port, Buffer.from(`GET /page HTTP/1.1\r\n${head}\r\nConnection: close\r\n\r\n`, 'latin1'))
    t.equal(res.status, 400, `${name} → 400`)
  }
  t.equal(up.received.length, 0, 'none reached the upstream')
  const absolute: [name: string, line: string, host: string, status: number][] = [
    ['absolute form that disagrees with Host', 'GET http://other.test/page HTTP/1.1', 'www.test', 400],
    ['absolute form with userinfo', 'GET http://u:p@www.test/page HTTP/1.1', 'www.test', 400],
    ['absolute form that agrees (case and default port aside)', 'GET http://WWW.Test:80/page HTTP/1.1', 'www.test', 200],
  ]
  for (const [name, line, host, status] of absolute) {
    const res = await rawRequest(gw.port, `${line}\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, status, `${name} → ${status}`)
  }
  t.equal(up.received.length, 1, 'only the agreeing absolute-form request went upstream')
  const fine: string[] = ['www.test', 'www.test:8080', '127.0.0.1:80', '[::1]:8080', '[v1.fe80::a]', 'my_host.test', 'xn--bcher-kva.test.']
  for (const host of fine) {
    const res = await rawRequest(gw.port, `GET /fine HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, 200, `Host ${host} is served`)
  }
  const http10 = await rawRequest(gw.port, 'GET /old HTTP/1.0\r\n\r\n')
  t.equal(http10.status, 200, 'HTTP/1.0 without Host is served')
})

t.test('the key normalises case and the default port, and keeps other ports apart', async t => {
  const f = await startSafetyGateway(t, {})
  t.equal((await f.get('www.test', '/n')).headers['x-cache'], 'MISS')
  await f.untilStored('test', 'www.test', '/n')
  t.equal((await f.get('WWW.Test:80', '/n')).headers['x-cache'], 'HIT', 'upper case and :80 are the same origin')
  t.equal((await f.get('www.test:8080', '/n')).headers['x-cache'], 'MISS', 'another port is another origin')
  t.equal(f.received.length, 2)
})

t.test('cacheKey: different parts never make one key', async t => {
  const base = { site: 'a', scheme: 'http', host: 'www.test', target: '/x', extra: '' }
  const variants = [
    base,
    { ...base, site: 'b' },
    { ...base, scheme: 'https' },
    { ...base, host: 'www.test:8080' },
    { ...base, target: '/x?y' },
    { ...base, extra: 'v1' },
    { ...base, host: 'www.tes', target: 't/x' },
    { ...base, site: 'aw', host: 'ww.test' },
  ]
  const keys = new Set(variants.map(v => cacheKey(v)))
  t.equal(keys.size, variants.length, 'every request has its own key')
})
