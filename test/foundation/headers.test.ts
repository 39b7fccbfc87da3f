// Hop-by-hop headers stripped both ways; X-Forwarded-* and Via set; Host preserved or rewritten (issue 2).
import t from 'tap'
import { request } from 'undici'
import { readRequestHead, startGateway, startRawUpstream } from '../helpers/servers.ts'
import { startEchoUpstream } from '../helpers/echo.ts'
import { rawRequest } from '../helpers/raw-http.ts'
import { upstreamRequestHeaders } from '../../src/proxy/headers.ts'

const hopRequestHeaders = [
  'Connection: keep-alive, X-Secret',
  'X-Secret: only-for-this-hop',
  'Keep-Alive: timeout=5',
  'TE: trailers',
  'Trailer: X-Checksum',
  'Upgrade: h2c',
  'Proxy-Authorization: Basic Zm9vOmJhcg==',
  'Proxy-Connection: keep-alive',
  'Proxy-Anything: y',
]

t.test('request: hop-by-hop stripped, X-Forwarded-* and Via set, Host preserved', async t => {
  const up = await startEchoUpstream(t)
  // The test client is the trusted proxy here, so its X-Forwarded-For chain is kept (issue 11, item 11).
  const gw = await startGateway(t, { upstream: up.url, raw: { trustedProxies: ['127.0.0.1'] } })
  const body = 'hello'
  const res = await rawRequest(gw.port, [
    'POST /hop?x=1 HTTP/1.1',
    'Host: www.site.test:8443',
    ...hopRequestHeaders,
    'X-Forwarded-For: 203.0.113.7, 10.0.0.1',
    'Via: 1.0 front',
    'X-Kept: yes',
    'Transfer-Encoding: chunked',
    '', `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
  ].join('\r\n'), { untilResponse: true })
  t.equal(res.status, 200)
  const h = up.received[0].headers
  for (const name of ['x-secret', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection', 'proxy-anything']) {
    t.equal(h[name], undefined, `${name} not forwarded`)
  }
  t.not(h.connection, 'keep-alive, X-Secret', 'the client\'s Connection header is not forwarded')
  t.equal(h['x-kept'], 'yes', 'end-to-end header forwarded')
  t.equal(h['x-forwarded-for'], '203.0.113.7, 10.0.0.1, 127.0.0.1', 'X-Forwarded-For appended to the chain')
  t.equal(h['x-forwarded-proto'], 'http')
  t.equal(h['x-forwarded-host'], 'www.site.test:8443')
  t.equal(h.via, '1.0 front, 1.1 livery', 'Via appended')
  t.equal(h.host, 'www.site.test:8443', 'Host preserved by default')
  t.equal(up.received[0].body, body, 'body reframed intact')
})

t.test('request: X-Forwarded-For and Via created when absent', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  const res = await request(`${gw.url}/plain`, { dispatcher: gw.agent, headers: { host: 'a.test' } })
  await res.body.text()
  const h = up.received[0].headers
  t.equal(h['x-forwarded-for'], '127.0.0.1')
  t.equal(h.via, '1.1 livery')
  t.equal(h['x-forwarded-host'], 'a.test')
})

t.test('request: Transfer-Encoding from the client is never copied upstream', async t => {
  // Over the wire undici frames the body itself, so check the header builder directly.
  const out = upstreamRequestHeaders({ 'transfer-encoding': 'chunked', 'content-type': 'text/plain', host: 'a.test' }, {
    remoteAddress: '127.0.0.1', peer: '127.0.0.1', trusted: false, proto: 'http', hopProto: 'http', host: 'a.test',
  }, { upstreamHost: 'up:1', preserveHost: true })
  t.equal(out['transfer-encoding'], undefined)
  t.equal(out['content-type'], 'text/plain')
})

t.test('preserveHost: false sends the upstream\'s own host', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url, site: { preserveHost: false } })
  const res = await request(`${gw.url}/h`, { dispatcher: gw.agent, headers: { host: 'www.site.test' } })
  await res.body.text()
  t.equal(up.received[0].headers.host, `127.0.0.1:${up.port}`)
  t.equal(up.received[0].headers['x-forwarded-host'], 'www.site.test', 'the client\'s host still travels in X-Forwarded-Host')
})

t.test('response: hop-by-hop stripped, Via appended', async t => {
  const raw = await startRawUpstream(t, socket => {
    readRequestHead(socket).then(() => {
      socket.write([
        'HTTP/1.1 200 OK',
        'Connection: X-Hop-Resp',
        'X-Hop-Resp: 1',
        'Keep-Alive: timeout=5, max=100',
        'Trailer: X-Trail',
        'Upgrade: foo',
        'Proxy-Authenticate: Basic realm="x"',
        'Proxy-Other: z',
        'Transfer-Encoding: chunked',
        'Via: 1.1 cms',
        'X-End: kept',
        '', '5\r\nhello\r\n0\r\nX-Trail: t\r\n\r\n',
      ].join('\r\n'))
    }, () => socket.destroy())
  })
  const gw = await startGateway(t, { upstream: raw.url })
  const res = await rawRequest(gw.port, 'GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
  t.equal(res.status, 200)
  const [head, rest] = res.text.split('\r\n\r\n')
  const names = head.split('\r\n').slice(1).map(l => l.slice(0, l.indexOf(':')).toLowerCase())
  for (const name of ['x-hop-resp', 'keep-alive', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-other']) {
    t.notOk(names.includes(name), `${name} not passed to the client`)
  }
  t.match(head, /\r\nx-end: kept\r\n/i)
  t.match(head, /\r\nvia: 1\.1 cms, 1\.1 livery\r\n/i)
  t.match(head, /\r\nconnection: close\r\n/i, 'Connection is the gateway\'s own')
  t.notMatch(rest, /X-Trail/, 'upstream trailers are not forwarded')
  t.match(rest, /hello/)
})
