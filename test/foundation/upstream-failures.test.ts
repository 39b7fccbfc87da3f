// Upstream failures become clean answers, each logged with site, upstream and cause (issue 2).
import t, { type Test } from 'tap'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { request, errors } from 'undici'
import { readRequestHead, startGateway, startRawUpstream, startUpstream } from '../helpers/servers.ts'
import { startStalledListener } from '../helpers/stalled-listener.ts'
import { rawRequest } from '../helpers/raw-http.ts'
import { upstreamError } from '../../src/proxy/upstream-errors.ts'
import type { GatewayFixture } from '../helpers/servers.ts'

const fast = { connect: '1s', firstByte: '200ms', betweenBytes: '200ms' }

/** A port nobody listens on: bind one, then close it. */
async function closedPort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

async function checkLogged (t: Test, gw: GatewayFixture, code: string, upstream: string): Promise<void> {
  const line = await gw.logs.waitFor({ code })
  t.equal(line.site, 'test', `${code} logged with the site`)
  t.equal(line.upstream, upstream, `${code} logged with the upstream`)
  t.type(line.cause, 'string', `${code} logged with the cause`)
  t.not(line.cause, '', `${code} cause is not empty`)
}

t.test('connection refused → 502', async t => {
  const upstream = `http://127.0.0.1:${await closedPort()}`
  const gw = await startGateway(t, { upstream, site: { timeouts: fast } })
  const res = await request(`${gw.url}/x`, { dispatcher: gw.agent })
  t.equal(res.statusCode, 502)
  t.equal(res.headers['x-livery-error'], 'LIVERY_ERR_UPSTREAM_CONNECT')
  t.match(await res.body.text(), /ECONNREFUSED/)
  await checkLogged(t, gw, 'LIVERY_ERR_UPSTREAM_CONNECT', upstream)
  const line = await gw.logs.access('/x')
  t.equal(line.status, 502)
})

t.test('connect timeout → 504 (a listener whose accept queue is full drops the SYN)', async t => {
  const stalled = await startStalledListener(t)
  const gw = await startGateway(t, { upstream: stalled.url, site: { timeouts: { connect: '200ms', firstByte: '3s', betweenBytes: '3s' } } })
  const res = await request(`${gw.url}/slow-connect`, { dispatcher: gw.agent })
  t.equal(res.statusCode, 504)
  t.equal(res.headers['x-livery-error'], 'LIVERY_ERR_UPSTREAM_CONNECT_TIMEOUT')
  t.match(await res.body.text(), /connecting to upstream .* took longer than 200ms/)
  await checkLogged(t, gw, 'LIVERY_ERR_UPSTREAM_CONNECT_TIMEOUT', stalled.url)
})

t.test('undici errors map to coded errors', async t => {
  const timeouts = { connect: 3500, firstByte: 60000, betweenBytes: 60000 }
  const cases: [Error, string, number][] = [
    [new errors.ConnectTimeoutError(), 'LIVERY_ERR_UPSTREAM_CONNECT_TIMEOUT', 504],
    [new errors.HeadersTimeoutError(), 'LIVERY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT', 504],
    [new errors.BodyTimeoutError(), 'LIVERY_ERR_UPSTREAM_BETWEEN_BYTES_TIMEOUT', 504],
    [new errors.ResponseContentLengthMismatchError(), 'LIVERY_ERR_UPSTREAM_RESPONSE', 502],
    [Object.assign(new Error('getaddrinfo ENOTFOUND cms.invalid'), { code: 'ENOTFOUND' }), 'LIVERY_ERR_UPSTREAM_CONNECT', 502],
  ]
  for (const [cause, code, status] of cases) {
    const err = upstreamError(cause, 'http://cms', timeouts, false)
    t.equal(err.code, code, `${cause.name} → ${code}`)
    t.equal(err.status, status)
    t.equal(err.cause, cause, 'the cause is kept for the log')
  }
  t.equal(upstreamError(new errors.ConnectTimeoutError(), 'http://cms', timeouts, false).message, 'connecting to upstream http://cms took longer than 3.5s')
  t.equal(upstreamError(new errors.SocketError('other side closed'), 'http://cms', timeouts, true).code, 'LIVERY_ERR_UPSTREAM_RESET')
})

t.test('first-byte timeout → 504', async t => {
  const raw = await startRawUpstream(t, socket => { socket.resume() }) // accepts, reads, never answers
  const gw = await startGateway(t, { upstream: raw.url, site: { timeouts: fast } })
  const res = await request(`${gw.url}/never`, { dispatcher: gw.agent })
  t.equal(res.statusCode, 504)
  t.equal(res.headers['x-livery-error'], 'LIVERY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT')
  t.match(await res.body.text(), /no response headers within 200ms/)
  await checkLogged(t, gw, 'LIVERY_ERR_UPSTREAM_FIRST_BYTE_TIMEOUT', raw.url)
})

t.test('between-bytes timeout → client connection closed before the declared length', async t => {
  const raw = await startRawUpstream(t, socket => {
    readRequestHead(socket).then(() => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n0123456789')
    }, () => socket.destroy())
  })
  const gw = await startGateway(t, { upstream: raw.url, site: { timeouts: fast } })
  const res = await rawRequest(gw.port, 'GET /stall HTTP/1.1\r\nHost: a.test\r\n\r\n')
  t.equal(res.status, 200, 'headers went out before the stall')
  t.ok(res.closed, 'the gateway closed the connection')
  const [head, body] = res.text.split('\r\n\r\n')
  t.match(head, /content-length: 100/i)
  t.equal(body, '0123456789', 'only the bytes that came, never a complete-looking body')
  await checkLogged(t, gw, 'LIVERY_ERR_UPSTREAM_BETWEEN_BYTES_TIMEOUT', raw.url)
  const line = await gw.logs.access('/stall')
  t.equal(line.completed, false, 'the access log says the response did not complete')
})

t.test('reset after headers (Content-Length) → client connection closed', async t => {
  const raw = await startRawUpstream(t, socket => {
    readRequestHead(socket).then(() => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial', () => socket.resetAndDestroy())
    }, () => socket.destroy())
  })
  const gw = await startGateway(t, { upstream: raw.url, site: { timeouts: fast } })
  const res = await rawRequest(gw.port, 'GET /reset HTTP/1.1\r\nHost: a.test\r\n\r\n')
  t.equal(res.status, 200)
  t.ok(res.closed)
  t.ok(Buffer.byteLength(res.text.split('\r\n\r\n')[1], 'latin1') < 1000, 'fewer bytes than declared')
  await checkLogged(t, gw, 'LIVERY_ERR_UPSTREAM_RESET', raw.url)
})

t.test('reset after headers (chunked) → closed without the final chunk', async t => {
  const raw = await startRawUpstream(t, socket => {
    readRequestHead(socket).then(() => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\npartial\r\n', () => socket.resetAndDestroy())
    }, () => socket.destroy())
  })
  const gw = await startGateway(t, { upstream: raw.url, site: { timeouts: fast } })
  const res = await rawRequest(gw.port, 'GET /reset-chunked HTTP/1.1\r\nHost: a.test\r\n\r\n')
  t.equal(res.status, 200)
  t.ok(res.closed)
  t.notMatch(res.text, /\r\n0\r\n\r\n$/, 'no terminating chunk: the client knows the body is incomplete')
  await gw.logs.waitFor({ code: 'LIVERY_ERR_UPSTREAM_RESET' })
})

t.test('the gateway still serves after the failures', async t => {
  const good = await startUpstream(t, (_req, res) => res.end('fine'))
  const gw = await startGateway(t, { upstream: good.url })
  const res = await request(`${gw.url}/`, { dispatcher: gw.agent })
  t.equal(await res.body.text(), 'fine')
})
