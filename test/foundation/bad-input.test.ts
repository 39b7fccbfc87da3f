// Bad client input is answered cleanly, never forwarded, and never crashes the gateway (issue 2, "Bad input").
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { request } from 'undici'
import { startGateway, type GatewayFixture } from '../helpers/servers.ts'
import { startEchoUpstream, type EchoUpstream } from '../helpers/echo.ts'
import { rawRequest } from '../helpers/raw-http.ts'

async function stillServes (t: Test, gw: GatewayFixture, up: EchoUpstream): Promise<void> {
  const before = up.received.length
  const res = await request(`${gw.url}/after`, { dispatcher: gw.agent })
  t.equal(res.statusCode, 200, 'the gateway still answers a normal request')
  await res.body.text()
  t.equal(up.received.length, before + 1)
}

const cases: [name: string, bytes: string, status: number][] = [
  ['request line without a target', 'GET\r\nHost: a\r\n\r\n', 400],
  ['request line with garbage after the version', 'GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n', 400],
  ['invalid method characters', 'G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['not HTTP at all', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', 400],
  ['unknown HTTP version', 'GET / HTTP/9.9\r\nHost: a\r\n\r\n', 400],
  ['a target that is not a path', 'GET foo HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['headers over 16 KB', `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431],
  ['many headers over 16 KB', `GET / HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'b'.repeat(40)}\r\n`).join('')}\r\n`, 431],
  ['Content-Length and Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['Transfer-Encoding and Content-Length (other order)', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['two different Content-Lengths', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
  ['a Content-Length list with different values', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!', 400],
  ['Transfer-Encoding that does not end in chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400],
  ['NUL byte in the path', 'GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['raw control character (0x01) in the path', 'GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['raw escape (0x1b) in the path', 'GET /a\x1b[2J HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['DEL (0x7f) in the path', 'GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['tab in the path', 'GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['NUL byte in a header value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n', 400],
]

t.test('each bad request gets its status, nothing is forwarded, the gateway keeps serving', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  for (const [name, bytes, status] of cases) {
    const before = up.received.length
    const res = await rawRequest(gw.port, Buffer.from(bytes, 'latin1'))
    t.equal(res.status, status, `${name} → ${status}`)
    t.equal(up.received.length, before, `${name}: nothing forwarded`)
    t.notMatch(res.text, /smuggled/, `${name}: no second request was read from the body`)
    await stillServes(t, gw, up)
  }
  t.equal(gw.gateway.server.listening, true)
})

t.test('a bad request on a kept-alive connection gets a 400 and the connection is closed', async t => {
  const up = await startEchoUpstream(t)
  const gw = await startGateway(t, { upstream: up.url })
  const socket = connect(gw.port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  const chunks: Buffer[] = []
  const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
  let firstDone: () => void = () => {}
  const first = new Promise<void>(resolve => { firstDone = resolve })
  socket.on('data', (c: Buffer) => {
    chunks.push(c)
    if (/\r\n\r\n[\s\S]*"url":"\/ok"/.test(Buffer.concat(chunks).toString('latin1'))) firstDone()
  })
  socket.on('error', () => socket.destroy())
  socket.write('GET /ok HTTP/1.1\r\nHost: a\r\n\r\n')
  await first
  t.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 200 /, 'the good request is answered')
  socket.write('GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n')
  await closed
  t.match(Buffer.concat(chunks).toString('latin1'), /HTTP\/1\.1 400 [^]*connection: close/i, 'the bad one gets a 400 with Connection: close')
  t.equal(up.received.length, 1)
  t.equal(up.received[0].url, '/ok')
})
