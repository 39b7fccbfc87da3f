// Forwarding headers and trustedProxies (issue 11, item 11): X-Forwarded-*,
// Forwarded and X-Real-IP are believed only from trusted proxies; the
// private admin routes refuse anything that came through a proxy.
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { request } from 'undici'
import { startSafetyGateway } from './fixture.ts'
import { clientAddress } from '../../src/proxy/forwarded.ts'
import { parseConfig } from '../../src/config/load.ts'
import { until } from '../gateway-cache/fixture.ts'

const planted = {
  'x-forwarded-for': '203.0.113.7',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.test',
  'x-forwarded-port': '443',
  forwarded: 'for=203.0.113.7;proto=https;host=evil.test',
  'x-real-ip': '203.0.113.7',
}

/** Records clientAddress(req) for every request, after the gateway's own handler ran. */
function addresses (server: import('node:http').Server): string[] {
  const out: string[] = []
  server.on('request', (req: IncomingMessage) => { out.push(clientAddress(req)) })
  return out
}

t.test('an untrusted peer\'s forwarding headers are dropped and set afresh', async t => {
  const f = await startSafetyGateway(t, {})
  const seen = addresses(f.gateway.server)
  const res = await f.get('www.test', '/untrusted', planted)
  const h = res.seen!.headers
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is only the peer')
  t.equal(h['x-forwarded-proto'], 'http')
  t.equal(h['x-forwarded-host'], 'www.test')
  t.equal(h.forwarded, 'for=127.0.0.1;host=www.test;proto=http', 'Forwarded is rewritten like X-Forwarded-*')
  t.equal(h['x-forwarded-port'], undefined, 'other X-Forwarded-* are dropped')
  t.equal(h['x-real-ip'], undefined, 'X-Real-IP is dropped')
  t.same(seen, ['127.0.0.1'], 'the client address is the peer')
  // A planted proto must not choose the scheme of the key either.
  await f.untilStored('test', 'www.test', '/untrusted', 'http')
  t.equal((await f.get('www.test', '/untrusted')).headers['x-cache'], 'HIT', 'X-Forwarded-Proto from an untrusted peer does not split the key')
})

t.test('a trusted proxy\'s headers are kept and extended, and name the client and the scheme', async t => {
  const f = await startSafetyGateway(t, { trustedProxies: ['127.0.0.1/32', '10.0.0.0/8', '2001:db8::/32'] })
  const seen = addresses(f.gateway.server)

  const chain = await f.get('www.test', '/chain', {
    'x-forwarded-for': '198.51.100.1, 10.1.2.3',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'www.example.org',
    forwarded: 'for=198.51.100.1;proto=https, for=10.1.2.3',
    'x-real-ip': '198.51.100.1',
  })
  const h = chain.seen!.headers
  t.equal(h['x-forwarded-for'], '198.51.100.1, 10.1.2.3, 127.0.0.1', 'X-Forwarded-For extended')
  t.equal(h['x-forwarded-proto'], 'https', 'X-Forwarded-Proto kept')
  t.equal(h['x-forwarded-host'], 'www.example.org', 'X-Forwarded-Host kept')
  t.equal(h.forwarded, 'for=198.51.100.1;proto=https, for=10.1.2.3, for=127.0.0.1;host=www.test;proto=http', 'Forwarded extended with this hop')
  t.equal(h['x-real-ip'], '198.51.100.1', 'X-Real-IP kept')

  await f.get('www.test', '/v6', { 'x-forwarded-for': '198.51.100.2, 2001:db8::5' })
  await f.get('www.test', '/rfc7239', { forwarded: 'for="[2001:db8:cafe::17]:4711", for=192.0.2.43;proto=https' })
  await f.get('www.test', '/rfc7239-v6', { forwarded: 'for="[2001:db9::17]:4711";proto=https' })
  await f.get('www.test', '/untrusted-hop', { 'x-forwarded-for': '198.51.100.3, 192.0.2.99' })
  t.same(seen, ['198.51.100.1', '198.51.100.2', '192.0.2.43', '2001:db9::17', '192.0.2.99'],
    'the client is the rightmost address that is not a trusted proxy (IPv4 and IPv6 ranges)')
  await until(() => f.logs.find({ type: 'access', path: '/untrusted-hop' }).length === 1, 10_000, 'the access line')
  t.equal(f.logs.find({ type: 'access', path: '/chain' })[0]?.client, '198.51.100.1', 'the access log names that client')

  // The scheme a trusted proxy reports is part of the key: https and http pages never mix.
  const s1 = await f.get('www.test', '/scheme', { 'x-forwarded-proto': 'https' })
  t.equal(s1.headers['x-cache'], 'MISS')
  await f.untilStored('test', 'www.test', '/scheme', 'https')
  t.equal((await f.get('www.test', '/scheme')).headers['x-cache'], 'MISS', 'plain http is another key')
  t.equal((await f.get('www.test', '/scheme', { forwarded: 'for=198.51.100.1;proto=https' })).headers['x-cache'], 'HIT', 'https through Forwarded is the same key as through X-Forwarded-Proto')
})

t.test('metrics and status refuse whatever came through a proxy, trusted or not', async t => {
  const f = await startSafetyGateway(t, { trustedProxies: ['127.0.0.1'] })
  const get = async (path: string, headers: Record<string, string> = {}): Promise<number> => {
    const r = await request(f.url + path, { headers, dispatcher: f.agent })
    await r.body.dump()
    return r.statusCode
  }
  for (const path of ['/_livery/metrics', '/_livery/status']) {
    t.equal(await get(path), 200, `${path} without proxy headers`)
    for (const [name, value] of [['forwarded', 'for=192.0.2.1'], ['x-forwarded-for', '192.0.2.1'], ['x-forwarded-proto', 'https'], ['x-real-ip', '192.0.2.1'], ['via', '1.1 lb']]) {
      t.equal(await get(path, { [name]: value }), 403, `${path} with ${name} → 403`)
    }
  }
})

t.test('trustedProxies: addresses and CIDR ranges, anything else named in the error', async t => {
  const base = { listen: { port: 0 }, cache: { directory: '/tmp/livery-unused' }, sites: [{ name: 's', upstream: 'http://127.0.0.1:1' }] }
  t.same(parseConfig(base, {}, '/tmp').trustedProxies, [], 'none trusted by default')
  t.same(parseConfig({ ...base, trustedProxies: ['10.0.0.0/8', '192.0.2.7', 'fd00::/8', '::1'] }, {}, '/tmp').trustedProxies.length, 4)
  for (const bad of ['10.0.0.0/33', 'fd00::/129', 'proxy.local', '10.0.0.0/x']) {
    t.throws(() => parseConfig({ ...base, trustedProxies: [bad] }, {}, '/tmp'), /trustedProxies\[0\]/, `${bad} is refused`)
  }
  t.same(parseConfig(base, { LIVERY_TRUSTED_PROXIES: '10.0.0.0/8,fd00::/8' }, '/tmp').trustedProxies, ['10.0.0.0/8', 'fd00::/8'], 'from the environment')
})
