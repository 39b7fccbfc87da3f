// Every method passes through with body, status and headers intact (issue 2, acceptance).
import t from 'tap'
import { request } from 'undici'
import { startGateway } from '../helpers/servers.ts'
import { startEchoUpstream, type Echo } from '../helpers/echo.ts'
import { rawRequest } from '../helpers/raw-http.ts'

const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'M-SEARCH']
// Statuses with a body (not 204/205/304), errors included: those must pass through too.
const statuses = [200, 203, 201, 202, 207, 404, 409, 500]

t.test('each method passes through', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  for (const [i, method] of methods.entries()) {
    const status = statuses[i]
    const sendsBody = method !== 'GET' && method !== 'HEAD'
    const body = sendsBody ? `body of ${method} ` + 'x'.repeat(1000 * i) : undefined
    const res = await request(`${gw.url}/echo/${method.toLowerCase()}?q=1&r=${i}`, {
      method,
      headers: { 'x-want-status': String(status), 'x-custom': `v-${i}`, 'content-type': 'text/plain', host: 'site.test' },
      body,
      dispatcher: gw.agent,
    })
    t.equal(res.statusCode, status, `${method}: status passes through`)
    const text = await res.body.text()
    const seen = up.received.at(-1) as Echo
    // A caching proxy may fill a HEAD miss with a GET (as Varnish does); the client still gets HEAD semantics.
    if (method === 'HEAD') t.ok(seen.method === 'HEAD' || seen.method === 'GET', 'HEAD: upstream saw HEAD (or GET for a cache fill)')
    else t.equal(seen.method, method, `${method}: upstream saw the method`)
    t.equal(res.headers['x-echo-method'], seen.method, `${method}: response header passes through`)
    t.same(res.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/'], `${method}: repeated response headers stay separate`)
    if (method === 'GET' || method === 'HEAD') t.match(res.headers['x-cache'], /^(MISS|BYPASS)$/, `${method}: X-Cache set`)
    else t.equal(res.headers['x-cache'], 'BYPASS', `${method}: uncacheable method, X-Cache BYPASS`)
    t.equal(seen.url, `/echo/${method.toLowerCase()}?q=1&r=${i}`, `${method}: path and query intact`)
    t.equal(seen.headers['x-custom'], `v-${i}`, `${method}: request header intact`)
    t.equal(seen.headers.host, 'site.test', `${method}: Host preserved`)
    t.equal(seen.body, body ?? '', `${method}: request body intact`)
    if (method === 'HEAD') {
      t.equal(text, '', 'HEAD: no body')
      t.equal(res.headers['content-length'], String(Buffer.byteLength(JSON.stringify(seen))), 'HEAD: Content-Length of the GET passes through')
    } else {
      t.same(JSON.parse(text), seen, `${method}: response body intact`)
    }
  }
  t.equal(up.received.length, methods.length, 'one upstream request per client request')
})

t.test('a chunked request body passes through (no Content-Length)', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  const res = await rawRequest(gw.port,
    'POST /chunked HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
    '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')
  t.equal(res.status, 200)
  t.equal(up.received[0].body, 'hello world')
  t.equal(up.received[0].method, 'POST')
})

t.test('an unknown method token over a raw socket', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  const res = await rawRequest(gw.port, 'M-SEARCH * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
  // `*` is not a path: refused cleanly, never forwarded.
  t.equal(res.status, 400)
  const ok = await rawRequest(gw.port, 'M-SEARCH /ssdp HTTP/1.1\r\nHost: a.test\r\nMan: "ssdp:discover"\r\nConnection: close\r\n\r\n')
  t.equal(ok.status, 200)
  t.equal(up.received.length, 1)
  t.equal(up.received[0].method, 'M-SEARCH')
  t.equal(up.received[0].headers.man, '"ssdp:discover"')
})
