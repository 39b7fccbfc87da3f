// Smaller protocol points found by probing (issue 11, item 12).
import t from 'tap'
import { connect, type Socket } from 'node:net'
import type { ServerResponse } from 'node:http'
import { request } from 'undici'
import { startSafetyGateway } from './fixture.ts'
import { startRawUpstream } from '../helpers/servers.ts'
import { rawRequest } from '../helpers/raw-http.ts'

/** One kept-alive raw connection: send a request, read exactly one response (Content-Length framed). */
function rawConnection (port: number): { socket: Socket, exchange: (bytes: string) => Promise<{ head: string, body: string, closed: boolean }> } {
  const socket = connect(port, '127.0.0.1')
  let buf = ''
  let closed = false
  let wake: () => void = () => {}
  socket.on('data', (c: Buffer) => { buf += c.toString('latin1'); wake() })
  socket.on('close', () => { closed = true; wake() })
  socket.on('error', () => { closed = true; wake() })
  const exchange = async (bytes: string): Promise<{ head: string, body: string, closed: boolean }> => {
    socket.write(bytes)
    for (;;) {
      const end = buf.indexOf('\r\n\r\n')
      if (end !== -1) {
        const head = buf.slice(0, end)
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
        if (buf.length >= end + 4 + length) {
          const body = buf.slice(end + 4, end + 4 + length)
          buf = buf.slice(end + 4 + length)
          return { head, body, closed }
        }
      }
      if (closed) return { head: buf, body: '', closed }
      await new Promise<void>(resolve => { wake = resolve })
    }
  }
  return { socket, exchange }
}

t.test('protocol points', async t => {
  const big = await startRawUpstream(t, socket => {
    socket.once('data', () => {
      socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'b'.repeat(1024 * 1024)}\r\ncontent-length: 2\r\n\r\nok`)
    })
  })
  const f = await startSafetyGateway(t, {
    sites: [
      { name: 'test', hosts: ['*'] },
      { name: 'big', hosts: ['big.test'], upstream: big.url },
    ],
  }, (req, res, seen) => {
    const body = JSON.stringify(seen)
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=600', etag: '"e1"' }
    if (seen.url === '/latin1') headers['x-up'] = 'caf\xe9 \xc3\xa9'
    if (seen.url === '/via-up') headers.via = '1.0 origin-cache'
    res.writeHead(200, headers)
    // A Buffer: with a string body Node writes the head in the body's encoding (UTF-8), not latin1.
    res.end(Buffer.from(body))
  })

  t.test('an Upgrade that is not websocket (h2c, as curl --http2 sends) is ignored and the request served', async t => {
    const before = f.received.length
    const res = await rawRequest(f.port, 'GET /h2c HTTP/1.1\r\nHost: www.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n', { untilResponse: true })
    t.equal(res.status, 200)
    t.equal(f.received.length, before + 1, 'served from the upstream')
    t.equal(f.received.at(-1)?.headers.upgrade, undefined, 'Upgrade is hop-by-hop and not forwarded')
    t.notMatch(res.text, /^HTTP\/1\.1 101/, 'no switch of protocols')
  })

  t.test('CONNECT → 405 with Allow, nothing forwarded', async t => {
    const before = f.received.length
    const res = await rawRequest(f.port, 'CONNECT www.test:443 HTTP/1.1\r\nHost: www.test:443\r\n\r\n')
    t.equal(res.status, 405)
    t.match(res.text, /\r\nallow: GET, HEAD, /i)
    t.match(res.text, /\r\nx-livery-error: LIVERY_ERR_METHOD_NOT_ALLOWED\r\n/i)
    t.equal(f.received.length, before)
  })

  t.test('an overlong request line → 414, overlong headers stay 431', async t => {
    for (const size of [64 * 1024, 20 * 1024]) {
      const res = await rawRequest(f.port, `GET /${'a'.repeat(size)} HTTP/1.1\r\nHost: www.test\r\n\r\n`)
      t.equal(res.status, 414, `a ${size / 1024} KB URL → 414`)
    }
    const after = await rawRequest(f.port, `GET / HTTP/1.1\r\nHost: www.test\r\n\r\nGET /${'a'.repeat(64 * 1024)} HTTP/1.1\r\nHost: www.test\r\n\r\n`)
    t.match(after.text, /HTTP\/1\.1 414 /, 'also for the second request on a connection')
    const headers = await rawRequest(f.port, `GET / HTTP/1.1\r\nHost: www.test\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`)
    t.equal(headers.status, 431)
  })

  t.test('header bytes ≥ 0x80 travel as the same bytes both ways, on a miss and on a hit', async t => {
    const bytes = Buffer.from('caf\xe9 \xc3\xa9', 'latin1')
    const send = (): Promise<{ text: string }> => rawRequest(f.port, Buffer.concat([Buffer.from('GET /latin1 HTTP/1.1\r\nHost: www.test\r\nX-Name: '), bytes, Buffer.from('\r\nConnection: close\r\n\r\n')]))
    const miss = await send()
    t.same(Buffer.from(f.received.at(-1)?.headers['x-name'] as string, 'latin1'), bytes, 'the request header reached the upstream byte for byte')
    t.ok(Buffer.from(miss.text, 'latin1').includes(Buffer.concat([Buffer.from('x-up: '), bytes])), 'the response header reached the client byte for byte')
    await f.untilStored('test', 'www.test', '/latin1')
    const hit = await send()
    t.match(hit.text, /x-cache: HIT/)
    t.ok(Buffer.from(hit.text, 'latin1').includes(Buffer.concat([Buffer.from('x-up: '), bytes])), 'and from the cache')
  })

  t.test('a 1 MB upstream response header → 502 that says the header was too large', async t => {
    const res = await f.get('big.test', '/big')
    t.equal(res.status, 502)
    t.equal(res.headers['x-livery-error'], 'LIVERY_ERR_UPSTREAM_HEADER_TOO_LARGE')
    t.match(res.body, /header/i)
    t.notMatch(res.body, /connect/i, 'not reported as a connect error')
  })

  t.test('cache hits (and 304s from the cache) carry Via', async t => {
    const miss = await f.get('www.test', '/via')
    t.equal(miss.headers.via, '1.1 livery')
    await f.untilStored('test', 'www.test', '/via')
    const hit = await f.get('www.test', '/via')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.headers.via, '1.1 livery', 'a hit says it came through Livery')
    const nm = await f.get('www.test', '/via', { 'if-none-match': '"e1"' })
    t.equal(nm.status, 304)
    t.equal(nm.headers.via, '1.1 livery')
    await f.get('www.test', '/via-up')
    await f.untilStored('test', 'www.test', '/via-up')
    const chained = await f.get('www.test', '/via-up')
    t.equal(chained.headers['x-cache'], 'HIT')
    t.equal(chained.headers.via, '1.0 origin-cache, 1.1 livery', 'appended to the upstream\'s Via, once')
  })
})

t.test('during a drain: responses say Connection: close, a reused connection gets 503 + Connection: close', async t => {
  let hold: ServerResponse | undefined
  let arrived: () => void = () => {}
  const slowArrived = new Promise<void>(resolve => { arrived = resolve })
  const f = await startSafetyGateway(t, {}, (req, res, seen) => {
    if (seen.url === '/slow') { hold = res; arrived(); return }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2, 'cache-control': 'no-store' })
    res.end('ok')
  })
  const idle = rawConnection(f.port)
  t.teardown(() => { idle.socket.destroy() })
  const first = await idle.exchange('GET /a HTTP/1.1\r\nHost: www.test\r\n\r\n')
  t.match(first.head, /^HTTP\/1\.1 200/)
  t.match(first.head, /\r\nconnection: keep-alive/i, 'before the drain the connection is kept alive')

  const slow = request(`${f.url}/slow`, { headers: { host: 'www.test' }, dispatcher: f.agent })
  await slowArrived
  const closed = f.gateway.close()

  const reused = await idle.exchange('GET /b HTTP/1.1\r\nHost: www.test\r\n\r\n')
  t.match(reused.head, /^HTTP\/1\.1 503/, 'a new request on the kept-alive connection gets the 503, not EOF or RST')
  t.match(reused.head, /\r\nconnection: close/i)

  hold!.writeHead(200, { 'content-type': 'text/plain', 'content-length': 4, 'cache-control': 'no-store' })
  hold!.end('slow')
  const res = await slow
  t.equal(res.statusCode, 200)
  t.equal(res.headers.connection, 'close', 'the in-flight response says Connection: close')
  t.equal(await res.body.text(), 'slow')
  await closed
})
